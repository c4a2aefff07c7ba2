"""Next-token training of a small transformer on a synthetic language (or a text file), with raw, EMA
and BEMA iterates scored at every checkpoint by validation loss *and* by the exact validity of long
generations.

``out = run(cfg, seed)`` trains with a constant learning rate (after a warm-up) and, from the step
where the cooldown would start, a second branch whose learning rate falls linearly to zero; both are
evaluated at the same checkpoints. One jitted function trains ``eval_every`` steps and evaluates all
variants; a Python loop over checkpoints calls it (compiled once), which is what lets the cooldown
branch resume from the stored state at its start instead of recomputing it.

Every checkpoint's generations use the same prompts and the same random numbers (common random
numbers), so two iterates produce the same text until their distributions differ enough to flip a
sample: adjacent-checkpoint differences measure the model's change, not the sampling noise.

References: Block et al. 2024 (GVA in autoregressive language models; the EMA against a learning-rate cooldown).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gvatheory.core import averaging
from gvatheory.language import languages
from gvatheory.language import transformer as tf
from gvatheory.infra import cache
from gvatheory.infra.cache import cached
from gvatheory.infra.validate import require_int, require_ints

VARIANTS = ("raw", "ema", "bema")


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """One language-model experiment: data, model, optimiser, averaging and evaluation."""

    # data: a synthetic language (exact validity and probabilities) or, if text_file is set, a text
    lang: object = languages.Automaton()  # languages.Automaton(...) | Dyck(...) | FlipFlop(...)
    text_file: str | None = None  # train on this plain-text file instead (characters; no validity metrics)
    n_train_tokens: int = 1_000_000  # tokens sampled once from the generator: the fixed training set
    stream_len: int = 4096  # training text is cut into streams of this length; batches are random windows
    n_val: int = 64  # held-out sequences (from the start of a stream) for the validation loss
    data_seed: int = 0  # training text, validation text, prompts and sampling keys depend on this only
    # model (its vocab is set from the data)
    model: tf.TransformerConfig = tf.TransformerConfig()
    # optimisation: AdamW, gradient clipping, linear warm-up, then constant
    seq_len: int = 160  # training window (> model.context: windows then start mid-stream, as in generation)
    batch_size: int = 16
    steps: int = 3000  # steps of the constant-learning-rate run
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.0
    clip: float = 1.0  # global gradient-norm clip
    cooldown: float = 0.2  # fraction of steps: the cooldown branch starts at (1 − cooldown) · steps, ends at steps
    # averaging
    ema_decay: float = 0.99
    # evaluation
    eval_every: int = 100  # steps between checkpoints
    n_gen: int = 64  # sampled generations per variant and checkpoint
    n_greedy: int = 8  # greedy (argmax) generations per variant and checkpoint
    prompt_len: int = 8  # tokens of generator text each generation starts from
    gen_len: int = 1024  # generated tokens after the prompt (the longest horizon H)
    horizons: tuple = (64, 256, 1024)  # H at which validity is reported (≤ gen_len)
    temperature: float = 1.0  # sampling temperature
    n_examples: int = 4  # sampled generations per variant stored at each checkpoint

    def __post_init__(self):
        require_ints(self, ("n_train_tokens", "stream_len", "n_val", "seq_len", "batch_size", "steps", "eval_every", "n_gen", "prompt_len", "gen_len"))
        require_ints(self, ("data_seed", "warmup", "n_greedy", "n_examples"), minimum=0)
        if self.text_file is None and not isinstance(self.lang, languages.LANGUAGES):
            raise ValueError(f"lang must be a languages.Automaton, Dyck or FlipFlop, got {self.lang!r}")
        if self.seq_len < self.model.context:
            raise ValueError(f"seq_len ({self.seq_len}) must be >= model.context ({self.model.context})")
        if self.stream_len <= self.seq_len:
            raise ValueError(f"stream_len ({self.stream_len}) must exceed seq_len ({self.seq_len})")
        if self.steps % self.eval_every:
            raise ValueError(f"steps ({self.steps}) must be a multiple of eval_every ({self.eval_every})")
        if not 0 <= self.cooldown < 1 or round(self.cooldown * self.steps) % self.eval_every:
            raise ValueError(f"cooldown must lie in [0, 1) with cooldown * steps a multiple of eval_every, got {self.cooldown}")
        if not (self.lr > 0 and self.temperature > 0 and self.clip > 0 and self.weight_decay >= 0):
            raise ValueError("lr, temperature and clip must be > 0 and weight_decay >= 0")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        if not self.horizons or any(int(h) != h or not 1 <= h <= self.gen_len for h in self.horizons):
            raise ValueError(f"horizons must be integers in [1, gen_len = {self.gen_len}], got {self.horizons}")
        if self.n_examples > self.n_gen:
            raise ValueError(f"n_examples ({self.n_examples}) must be <= n_gen ({self.n_gen})")

    @property
    def checkpoints(self) -> np.ndarray:
        """Training step of each checkpoint of the constant-rate run, [C]."""
        return np.arange(self.eval_every, self.steps + 1, self.eval_every)

    @property
    def cooldown_start(self) -> int:
        """Step at which the cooldown branch leaves the constant-rate run."""
        return self.steps - round(self.cooldown * self.steps)


# --------------------------------------------------------------------------------------------- data


def load_text(path) -> tuple[np.ndarray, str]:
    """A plain-text file as character ids: (tokens [N] int32, alphabet), ids indexing the sorted alphabet."""
    text = Path(path).read_text(encoding="utf-8")
    if len(text) < 2:
        raise ValueError(f"{path} holds {len(text)} characters; need a text to train on")
    alphabet = "".join(sorted(set(text)))
    table = {c: i for i, c in enumerate(alphabet)}
    return np.array([table[c] for c in text], np.int32), alphabet


def _file_digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dataset(cfg: LMConfig) -> dict:
    """Training streams [S, stream_len], validation sequences [n_val, seq_len + 1], prompts [n, P] (cached).

    Validation windows are the second halves of held-out sequences (mid-stream, like training windows).
    For a language also ``val_logp_true`` [n_val, seq_len]: the generator's exact log-probability of each
    validation token after the first given the *whole* sequence; its negative mean (the generator's
    entropy rate) is a floor on the loss that a window-limited model approaches. For a
    text the last 10% of the file is held out: validation windows and prompts come from it.
    """
    fields = ("lang", "text_file", "n_train_tokens", "stream_len", "n_val", "data_seed", "seq_len", "prompt_len", "n_gen", "n_greedy")
    parts = {f: getattr(cfg, f) for f in fields}
    if cfg.text_file is not None:
        parts["text_sha256"] = _file_digest(cfg.text_file)
    n_prompts = cfg.n_gen + cfg.n_greedy
    k_tr, k_val, k_pr = jax.random.split(jax.random.key(cfg.data_seed), 3)

    def compute():
        if cfg.text_file is not None:
            tokens, alphabet = load_text(cfg.text_file)
            cut = int(0.9 * len(tokens))
            train, held = tokens[:cut], tokens[cut:]
            n_streams = len(train) // cfg.stream_len
            if n_streams < 1 or len(held) < cfg.seq_len + 1:
                raise ValueError(
                    f"{cfg.text_file}: {len(tokens)} characters are too few for stream_len = {cfg.stream_len} "
                    f"and seq_len = {cfg.seq_len} (90% / 10% split)"
                )
            starts = np.asarray(jax.random.randint(k_val, (cfg.n_val + n_prompts,), 0, len(held) - cfg.seq_len))
            val = np.stack([held[s : s + cfg.seq_len + 1] for s in starts[: cfg.n_val]])
            prompts = np.stack([held[s : s + cfg.prompt_len] for s in starts[cfg.n_val :]])
            streams = train[: n_streams * cfg.stream_len].reshape(n_streams, cfg.stream_len)
            return dict(streams=streams, val=val, prompts=prompts, vocab=len(alphabet), alphabet=np.array(alphabet))
        n_streams = max(1, cfg.n_train_tokens // cfg.stream_len)
        streams = languages.sample(cfg.lang, n_streams, cfg.stream_len, key=k_tr)
        # validation windows start mid-stream, like the training windows and like long generations
        full = languages.sample(cfg.lang, cfg.n_val, 2 * (cfg.seq_len + 1), key=k_val)
        p = languages.next_token_probs(cfg.lang, full)
        logp_true = jnp.log(jnp.take_along_axis(p, full[..., None], -1)[..., 0])[:, cfg.seq_len + 2 :]
        val = full[:, cfg.seq_len + 1 :]
        prompts = languages.sample(cfg.lang, n_prompts, cfg.prompt_len, key=k_pr)
        return dict(streams=streams, val=val, prompts=prompts, vocab=cfg.lang.vocab, val_logp_true=logp_true)

    return cached("lm-data", compute, parts, code=__name__)


# ------------------------------------------------------------------------------------------ metrics


def generation_metrics(lang, tokens, logp, prompt_len: int):
    """Per-token KL(generator ‖ model) and forbidden mass along generations, up to the first error.

    Args:
        tokens: [B, L] generations; logp: [B, L − 1, V] the model's log-probabilities (row t: token t + 1).

    Returns:
        kl [B] and forbidden [B]: means over generated positions j ≥ prompt_len up to and including the
        first invalid token (where the generator's distribution is still defined) of
        Σ_v p(v | x_<j) log(p(v | x_<j) / q(v | x_<j)) and of Σ_{v : p(v | x_<j) = 0} q(v | x_<j). A
        sampled generation survives position j with probability 1 − forbidden mass, so validity over H
        tokens is about (1 − forbidden)^H.
    """
    p = languages.next_token_probs(lang, tokens)[:, 1:]  # [B, L − 1, V], row t: token t + 1
    kl = jnp.sum(jnp.where(p > 0, p * (jnp.log(jnp.where(p > 0, p, 1.0)) - logp), 0.0), -1)
    forbidden = jnp.sum(jnp.where(p > 0, 0.0, jnp.exp(logp)), -1)
    _, first = languages.check(lang, tokens)
    j = jnp.arange(1, tokens.shape[1])
    use = (j >= prompt_len) & (j <= first[:, None])
    n = jnp.maximum(use.sum(-1), 1)
    return jnp.sum(kl * use, -1) / n, jnp.sum(forbidden * use, -1) / n


# -------------------------------------------------------------------------------------------- train


def _lr_schedule(cfg: LMConfig, cooldown: bool) -> np.ndarray:
    """Learning rate at steps 0..steps−1: linear warm-up, constant, and (cooldown branch) linear decay to 0."""
    t = np.arange(cfg.steps, dtype=np.float64)
    lr = cfg.lr * np.minimum(1.0, (t + 1) / max(cfg.warmup, 1))
    if cooldown:
        c0 = cfg.cooldown_start
        lr = np.where(t >= c0, lr * (cfg.steps - t) / max(cfg.steps - c0, 1), lr)
    return lr.astype(np.float32)


def make_chunk(cfg: LMConfig, data: dict):
    """Builds ``init(key) -> state`` and ``chunk(state, t0, lrs, key) -> (state, metrics)`` (jitted parts).

    ``chunk`` takes ``eval_every`` AdamW steps from step t0 with learning rates ``lrs`` [eval_every] and
    minibatches drawn from ``key`` folded with t0 (so a branch resumed at t0 sees the same batches),
    updating the EMA and BEMA every step, then evaluates raw, EMA and BEMA (in that order, axis 0 of
    every metric): ``val_loss`` [3]; for a language ``first_error`` [3, n_gen + n_greedy] (index of the
    first invalid token, sampled generations first), ``kl`` and ``forbidden`` [3, n_gen];
    ``examples`` [3, n_examples, L]; and ``train_loss`` (mean minibatch loss over the chunk).
    """
    mcfg = dataclasses.replace(cfg.model, vocab=int(data["vocab"]))
    streams, val, prompts = (jnp.asarray(data[k]) for k in ("streams", "val", "prompts"))
    opt = optax.chain(optax.clip_by_global_norm(cfg.clip), optax.scale_by_adam())
    avgs = {"ema": averaging.ema(cfg.ema_decay), "bema": averaging.bema()}
    greedy = jnp.arange(prompts.shape[0]) >= cfg.n_gen
    length = cfg.prompt_len + cfg.gen_len
    k_sample = jax.random.fold_in(jax.random.key(cfg.data_seed), 7)  # the same at every checkpoint
    lang = None if cfg.text_file is not None else cfg.lang

    def init(key):
        params = tf.init(mcfg, key=key)
        return params, opt.init(params), {k: a.init(params) for k, a in avgs.items()}

    def batch(key):
        ks, ko = jax.random.split(key)
        s = jax.random.randint(ks, (cfg.batch_size,), 0, streams.shape[0])
        o = jax.random.randint(ko, (cfg.batch_size,), 0, streams.shape[1] - cfg.seq_len)
        return jax.vmap(lambda s, o: jax.lax.dynamic_slice(streams[s], (o,), (cfg.seq_len + 1,)))(s, o)

    def train_step(state, inp):
        (params, opt_state, avg), (key, lr) = state, inp
        loss, g = jax.value_and_grad(lambda p: tf.loss(mcfg, p, batch(key)))(params)
        upd, opt_state = opt.update(g, opt_state, params)
        params = jax.tree.map(lambda p, u: p - lr * (u + cfg.weight_decay * p), params, upd)  # AdamW
        avg = {k: avgs[k].update(s, params) for k, s in avg.items()}
        return (params, opt_state, avg), loss

    def evaluate(params):
        out = {"val_loss": tf.loss(mcfg, params, val)}
        toks, logp = tf.generate(mcfg, params, prompts, length, key=k_sample, greedy=greedy, temperature=cfg.temperature)
        out["examples"] = toks[: cfg.n_examples]
        if lang is not None:
            out["first_error"] = languages.check(lang, toks)[1]
            out["kl"], out["forbidden"] = generation_metrics(lang, toks[: cfg.n_gen], logp[: cfg.n_gen], cfg.prompt_len)
        return out

    @jax.jit
    def train(state, t0, lrs, key):
        keys = jax.random.split(jax.random.fold_in(key, t0), cfg.eval_every)
        return jax.lax.scan(train_step, state, (keys, lrs))

    evaluate = jax.jit(evaluate)

    def chunk(state, t0, lrs, key):
        state, losses = train(state, t0, lrs, key)
        params, _, avg = state
        # a Python loop over the three variants: generation inside lax.map or vmap over parameters runs 2-3x slower on CPU
        evals = [evaluate(p) for p in (params, avg["ema"].average, avg["bema"].average)]
        out = {k: jnp.stack([e[k] for e in evals]) for k in evals[0]}
        out["train_loss"] = losses.mean()
        return state, out

    return init, chunk


@functools.lru_cache(maxsize=2)
def _compiled(cfg: LMConfig, text_digest: str | None):
    # one compilation serves every seed of a configuration (the seed enters as an argument); the
    # text's digest is part of the key so that an edited file is read again
    data = dataset(cfg)
    return data, *make_chunk(cfg, data)


def _train(cfg: LMConfig, seed: int, progress: bool) -> dict:
    from tqdm import tqdm

    data, init, chunk = _compiled(cfg, None if cfg.text_file is None else _file_digest(cfg.text_file))
    k_init, k_data = jax.random.split(jax.random.key(seed))
    const_lr, cool_lr = _lr_schedule(cfg, False), _lr_schedule(cfg, True)
    n_cool = (cfg.steps - cfg.cooldown_start) // cfg.eval_every
    total = len(cfg.checkpoints) + n_cool
    bar = tqdm(total=total, desc=f"LM seed {seed}", disable=not progress, mininterval=2.0)
    state, records, branch = init(k_init), [], None
    for t in cfg.checkpoints - cfg.eval_every:
        if t == cfg.cooldown_start:
            branch = state
        state, out = chunk(state, t, const_lr[t : t + cfg.eval_every], k_data)
        records.append(jax.device_get(out))
        bar.update()
    cool = []
    if n_cool:
        state = branch if branch is not None else state
        for t in range(cfg.cooldown_start, cfg.steps, cfg.eval_every):
            state, out = chunk(state, t, cool_lr[t : t + cfg.eval_every], k_data)  # same minibatches as the constant run
            cool.append(jax.device_get(out))
            bar.update()
    bar.close()
    res = {k: np.stack([r[k] for r in records], 1 if np.ndim(records[0][k]) else 0) for k in records[0]}
    if cool:
        res |= {f"cool_{k}": np.stack([r[k] for r in cool], 1 if np.ndim(cool[0][k]) else 0) for k in cool[0]}
    res["steps"] = cfg.checkpoints
    res["cool_steps"] = np.arange(cfg.cooldown_start + cfg.eval_every, cfg.steps + 1, cfg.eval_every)
    if "val_logp_true" in data:
        res["val_entropy"] = -np.mean(data["val_logp_true"])
    return res


def run(cfg: LMConfig, seed: int = 0, *, progress: bool = True) -> dict:
    """Trains ``cfg`` from ``seed`` (initialisation and minibatch order) and evaluates every checkpoint (cached).

    Returns a dict of numpy arrays; axis 0 of each per-variant array is raw, EMA, BEMA (``VARIANTS``):
    ``steps`` [C]; ``val_loss`` [3, C] (nats per token); ``train_loss`` [C]; for a language
    ``first_error`` [3, C, n_gen + n_greedy] (sampled first; see :func:`gvatheory.core.diagnostics.valid_fraction`), ``kl`` [3, C,
    n_gen], ``forbidden`` [3, C, n_gen] (see :func:`generation_metrics`) and ``val_entropy`` (the generator's entropy on the validation text: the loss floor);
    ``examples`` [3, C, n_examples, prompt_len + gen_len]; and the same with a ``cool_`` prefix for the
    cooldown branch at ``cool_steps`` [C'].
    """
    require_int("seed", seed, 0)
    return cached("lm", lambda: _train(cfg, seed, progress), *_key_parts(cfg, seed), code=__name__)


def is_cached(cfg: LMConfig, seed: int) -> bool:
    """Whether :func:`run` would load (cfg, seed) from the cache."""
    return cache.is_cached("lm", *_key_parts(cfg, seed), code=__name__)


def _key_parts(cfg: LMConfig, seed: int) -> tuple:
    # a text run also depends on the file's contents, not only on its path
    return (cfg, seed) if cfg.text_file is None else (cfg, seed, _file_digest(cfg.text_file))
