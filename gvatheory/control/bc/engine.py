"""Deep behavior cloning in one jitted scan: training, raw + averaged iterates, and closed-loop evaluation.

``run = make_run(cfg); out = run(key)``: the whole run — minibatch steps, EMA and BEMA of the
iterates, and at every checkpoint the validation BC loss and the rollouts that the backend runs inside
the scan — is a single ``jax.lax.scan`` under one ``jit`` (purejaxrl style). ``run`` is a pure function
of the key, so ``jax.vmap(run)(keys)`` trains several seeds at once, and it holds no host callback, so
JAX's persistent compilation cache can store it. :func:`finish` then runs the rollouts that happen on
the host (C MuJoCo) and adds the bookkeeping; :func:`run_seeds` does both, with timing, a progress bar
and the result cache. ``key`` varies the initialisation and the minibatch order; the demonstrations and
the evaluation starts depend on ``cfg.data_seed`` only.

References: Block et al., Butterfly Effects of SGD Noise (ICLR 2024): GVA in behavior cloning, and the
EMA of the iterates that removes it.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from gvatheory.control import policies
from gvatheory.control.bc import backends
from gvatheory.control.bc.config import BCConfig
from gvatheory.control.bc.data import demonstrations
from gvatheory.core import averaging
from gvatheory.core.schedules import make_schedule
from gvatheory.infra import cache


# Fields that change a run's numbers but not its program's shapes: they enter the compiled program as
# arguments (``hyperparameters``), so configurations that differ only in them share one executable (the
# learning-rate arms of notebook 07, the state-noise arms of 08). Whether each is on (> 0) stays part of
# the program's structure: off, its code is not there at all.
TRACED = ("lr", "weight_decay", "grad_clip", "state_noise", "dropout", "ema_decay")


def structure(cfg: BCConfig) -> BCConfig:
    """``cfg`` with every traced field set to a canonical value of the same on/off state: the key of its program."""
    on = lambda v: 0.5 if v > 0 else 0.0
    return dataclasses.replace(cfg, lr=1.0, ema_decay=0.5, **{f: on(getattr(cfg, f)) for f in ("weight_decay", "grad_clip", "state_noise", "dropout")})


def hyperparameters(cfg: BCConfig) -> dict:
    """The traced fields of ``cfg`` as float32 scalars; 1 − x is formed in float64 first, as a constant would be."""
    f32 = lambda v: np.float32(v)
    return {"lr": f32(cfg.lr), "weight_decay": f32(cfg.weight_decay), "grad_clip": f32(cfg.grad_clip), "state_noise": f32(cfg.state_noise),
            "keep": f32(1.0 - cfg.dropout), "ema_beta": f32(1.0 - cfg.ema_decay)}


def _optimizer(cfg: BCConfig, h: dict):
    """The optimiser of ``cfg``'s structure with the (traced) hyperparameters ``h``."""
    lr = make_schedule(cfg.schedule, h["lr"], cfg.steps, cfg.decay_steps)
    if cfg.optimizer == "adam":
        opt = optax.adamw(lr, weight_decay=h["weight_decay"]) if cfg.weight_decay else optax.adam(lr)
    else:
        opt = optax.chain(optax.add_decayed_weights(h["weight_decay"]), optax.sgd(lr)) if cfg.weight_decay else optax.sgd(lr)
    return optax.chain(optax.clip_by_global_norm(h["grad_clip"]), opt) if cfg.grad_clip else opt


class Evaluator(NamedTuple):
    """What a configuration needs to score a parameter pytree (see :func:`make_evaluator`)."""

    backend: object  # the rollout backend (gvatheory.control.bc.backends)
    norm: policies.Normalizer
    data: dict  # the demonstrations (see gvatheory.control.bc.data.demonstrations)
    loss: Callable  # loss(params, X, U) -> mean squared error in normalised action units
    evaluate: Callable  # evaluate(params) -> dict: val_loss, expert_gap and the backend's in-scan rollouts (jit-able)
    policy: Callable  # policy(params, x) -> action, physical units
    unravel: Callable  # flat parameter vector [P] -> parameter pytree

    @property
    def system(self):
        """The JAX system (for the JAX backend; None for a MuJoCo task)."""
        return getattr(self.backend, "system", None)


def make_evaluator(cfg: BCConfig) -> Evaluator:
    """The BC loss and the closed-loop evaluation of ``cfg``, as pure functions of the policy parameters."""
    d = demonstrations(cfg)
    backend = backends.make(cfg, d)
    Xv, Uv, Uc = (jnp.asarray(d[k]) for k in ("X_val", "U_val", "U_val_clean"))
    norm = policies.Normalizer.from_data(d["X"], d["U"])
    pcfg = cfg.policy
    template = policies.init(pcfg, *backends.dims(cfg), key=jax.random.key(0))
    unravel = jax.flatten_util.ravel_pytree(template)[1]

    def loss(params, x, u):
        pred = policies.apply(pcfg, params, (x - norm.x_mean) / norm.x_std)
        return jnp.mean(jnp.sum((pred - (u - norm.u_mean) / norm.u_std) ** 2, -1))

    def policy(params, x):
        return policies.act(pcfg, params, norm, x)

    def evaluate(params):
        return {"val_loss": loss(params, Xv, Uv), "expert_gap": loss(params, Xv, Uc), **backend.in_scan(lambda x: policy(params, x))}

    return Evaluator(backend, norm, d, loss, evaluate, policy, unravel)


def evaluate_flat(cfg: BCConfig, flats, *, ev: Evaluator | None = None, batch: int | None = None, progress: bool = False) -> dict:
    """Scores K flat parameter vectors [K, P] on either backend: ``val_loss``, ``expert_gap`` [K] and
    ``ret``, ``failed``, ``diverged`` [K, N].

    ``batch``: evaluate that many vectors per compiled call (default: all at once).
    """
    ev = ev or make_evaluator(cfg)
    flats = np.asarray(flats, np.float32)
    batch = batch or len(flats)
    f = jax.jit(jax.vmap(lambda p: ev.evaluate(ev.unravel(p))))
    pad = (-len(flats)) % batch
    padded = np.concatenate([flats, np.repeat(flats[-1:], pad, 0)]) if pad else flats
    parts = [f(jnp.asarray(padded[i : i + batch])) for i in range(0, len(padded), batch)]
    out = {k: np.concatenate([np.asarray(p[k]) for p in parts])[: len(flats)] for k in parts[0]}
    out.update(ev.backend.after(batched_policy(ev), flats, progress=progress))
    return out


def batched_policy(ev: Evaluator):
    """act(flat [K, P], obs [K, N, d]) -> actions [K, N, m], jitted: the policy call of host rollouts."""
    return jax.jit(jax.vmap(lambda p, obs: ev.policy(ev.unravel(p), obs)))


def make_run(cfg: BCConfig):
    """Builds the pure ``run(key) -> dict`` of ``cfg`` (see the module docstring): one call of the jitted
    program of ``cfg``'s structure with ``cfg``'s traced hyperparameters (:data:`TRACED`), so configurations
    that differ only in those share one compiled executable. ``jax.jit`` and ``jax.vmap`` apply to it.

    The returned dict holds, per checkpoint c < C (``cfg.checkpoints``) and variant v (``cfg.variants``:
    raw, ema, then bema and the ``extra_averages`` when configured): ``train_loss`` [C] (mean minibatch
    loss of the raw iterate over the block), ``val_loss`` [V, C] (BC loss on held-out demonstrations,
    labelled like the training set), ``expert_gap`` [V, C] (the same states labelled with the clean expert
    action, in normalised units), the backend's in-scan rollouts ``ret``, ``failed``, ``diverged``
    [V, C, N] (JAX systems), ``dparam`` [V, C] (‖θ_c − θ_{c−1}‖₂), and if ``grad_samples`` > 0,
    ``grad_trace`` [C] and ``grad_top`` [C, 5]: trace and top eigenvalues of the per-example gradient
    covariance at the raw iterate (divide by the batch size for the minibatch-gradient covariance).
    Also ``final_params`` [V, P] (flat; :func:`unravel` restores the pytree) and ``params`` [S, C, P]
    at every checkpoint: the S variants of ``cfg.stored``, or every variant when the backend rolls out
    after the scan (:func:`finish` then keeps only ``cfg.stored``).
    """
    program, h = _program(structure(cfg)), hyperparameters(cfg)

    def run(key):
        return program(key, h)

    run.program, run.hyperparameters = program, h  # for ahead-of-time compilation (run_seeds)
    return run


@functools.lru_cache(maxsize=32)
def _program(cfg: BCConfig):
    """The jitted ``program(key, hyperparameters)`` of one structure (see :func:`structure`), built once per process."""
    ev = make_evaluator(cfg)
    d, loss_fn = ev.data, ev.loss
    X, U = jnp.asarray(d["X"]), jnp.asarray(d["U"])
    # a backend that rolls out on the host needs every variant's parameters at every checkpoint
    keep = cfg.variants if ev.backend.after_scan else cfg.stored
    pcfg = cfg.policy
    n_in, n_out = backends.dims(cfg)
    avgs = {"ema": averaging.ema(cfg.ema_decay)}  # its decay is the traced h["ema_beta"]
    if cfg.bema:
        avgs["bema"] = averaging.bema()
    avgs.update({name: averaging.averager(c) for name, c in cfg.extra_averages})
    n_blocks = (cfg.steps - cfg.eval_start) // cfg.eval_every

    def grad_stats(params, key):
        idx = jax.random.choice(key, X.shape[0], (cfg.grad_samples,), replace=False)
        g = jax.vmap(lambda x, u: jax.flatten_util.ravel_pytree(jax.grad(loss_fn)(params, x[None], u[None]))[0])(X[idx], U[idx])
        g = g - g.mean(0)
        gram = g @ g.T / cfg.grad_samples
        top = jnp.linalg.eigvalsh(gram)[::-1][:5]
        return jnp.trace(gram), jnp.pad(top, (0, 5 - top.shape[0]))

    norm = ev.norm

    def train_loss(params, x, u, key, h):
        # the training objective: the BC loss with the configured state noise and dropout (both off by default)
        k_noise, k_drop = jax.random.split(key)
        z = (x - norm.x_mean) / norm.x_std
        if cfg.state_noise:
            z = z + h["state_noise"] * jax.random.normal(k_noise, z.shape)
        pred = policies.apply(pcfg, params, z, keep=h["keep"] if cfg.dropout else None, key=k_drop if cfg.dropout else None)
        return jnp.mean(jnp.sum((pred - (u - norm.u_mean) / norm.u_std) ** 2, -1))

    def run(key, h):
        opt = _optimizer(cfg, h)
        k_init, k_data = jax.random.split(key)
        if cfg.init_seed is not None:
            k_init = jax.random.split(jax.random.key(cfg.init_seed))[0]
        params = policies.init(pcfg, n_in, n_out, key=k_init)
        state = (params, opt.init(params), {k: a.init(params) for k, a in avgs.items()})

        def train_step(state, t):
            params, opt_state, avg = state
            k_t = jax.random.fold_in(k_data, t)
            if cfg.batch_size:
                idx = jax.random.randint(k_t, (cfg.batch_size,), 0, X.shape[0])
                x, u = X[idx], U[idx]
            else:  # full-batch gradient descent: no sampling noise at all
                x, u = X, U
            if cfg.state_noise or cfg.dropout:
                loss, g = jax.value_and_grad(train_loss)(params, x, u, jax.random.fold_in(k_t, 1), h)
            else:
                loss, g = jax.value_and_grad(loss_fn)(params, x, u)
            upd, opt_state = opt.update(g, opt_state, params)
            params = optax.apply_updates(params, upd)
            avg = {k: avgs[k].update(s, params, **({"beta": h["ema_beta"]} if k == "ema" else {})) for k, s in avg.items()}
            return (params, opt_state, avg), loss

        if cfg.eval_start:
            state, _ = jax.lax.scan(train_step, state, jnp.arange(cfg.eval_start))

        def variants(state):
            return {"raw": state[0], **{k: s.average for k, s in state[2].items()}}

        def block(carry, c):
            state, prev = carry
            t0 = cfg.eval_start + c * cfg.eval_every
            state, losses = jax.lax.scan(train_step, state, t0 + jnp.arange(cfg.eval_every))
            now = variants(state)
            out = {"train_loss": losses.mean()}
            # all variants evaluated at once: one vmapped evaluation, so compile time does not grow with V
            stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[now[v] for v in cfg.variants])
            out.update(jax.vmap(ev.evaluate)(stacked))
            out["dparam"] = jnp.stack(
                [jnp.sqrt(sum(jnp.sum((a - b) ** 2) for a, b in zip(jax.tree.leaves(now[v]), jax.tree.leaves(prev[v])))) for v in cfg.variants]
            )
            if cfg.grad_samples:
                out["grad_trace"], out["grad_top"] = grad_stats(state[0], jax.random.fold_in(k_data, -1 - c))
            if keep:
                out["params"] = jnp.stack([jax.flatten_util.ravel_pytree(now[v])[0] for v in keep])
            return (state, now), out

        (state, last), out = jax.lax.scan(block, (state, variants(state)), jnp.arange(n_blocks))
        # final parameters of each variant, flattened (unravel() restores the pytree)
        out["final_params"] = jnp.stack([jax.flatten_util.ravel_pytree(last[v])[0] for v in cfg.variants])
        for k in ("val_loss", "expert_gap", "dparam", "params") + backends.ROLLOUT_KEYS:
            if k in out:
                out[k] = jnp.moveaxis(out[k], 0, 1)  # [V, C, ...]
        return out

    return jax.jit(run)


def finish(cfg: BCConfig, out: dict, *, ev: Evaluator | None = None, progress: bool = False) -> dict:
    """Completes a run's result on the host: the backend's after-scan rollouts (``ret``, ``failed``,
    ``diverged`` [V, C, N] and their time ``eval_s``), ``steps`` [C] and ``expert_ret`` [N]."""
    ev = ev or make_evaluator(cfg)
    out = _after_scan(cfg, out, ev, progress)
    out["steps"] = cfg.checkpoints
    out["expert_ret"] = ev.backend.expert_returns()
    return out


def _after_scan(cfg: BCConfig, out: dict, ev: Evaluator, progress: bool) -> dict:
    out = {k: np.asarray(v) for k, v in out.items()}
    if ev.backend.after_scan:
        params = out.pop("params")
        t1 = time.perf_counter()
        r = ev.backend.after(batched_policy(ev), params.reshape(-1, params.shape[-1]), progress=progress)
        out["eval_s"] = np.asarray(time.perf_counter() - t1)
        out.update({k: v.reshape(params.shape[:2] + (cfg.n_eval,)) for k, v in r.items()})
        if cfg.stored:
            out["params"] = params[[cfg.variants.index(v) for v in cfg.stored]]
    return out


def run_seeds(cfg: BCConfig, seeds, *, desc: str | None = None) -> list[dict]:
    """``finish(cfg, make_run(cfg)(jax.random.key(seed)))`` for each seed, each cached under (cfg, seed).

    Compiles once (outside the timed call) for all seeds that are not cached yet, and shows a progress
    bar over them. Each result also holds ``wall_s``: seconds the compiled run and its host rollouts
    took, compilation excluded (a cached result keeps the time of the machine that computed it).
    """
    from tqdm import tqdm

    seeds = list(seeds)
    todo = [s for s in seeds if not is_cached(cfg, s)]
    run = ev = expert_ret = None
    if todo:
        ev = make_evaluator(cfg)
        r = make_run(cfg)
        compiled = r.program.lower(jax.random.key(todo[0]), r.hyperparameters).compile()  # outside the timed calls
        run = lambda key: compiled(key, r.hyperparameters)
        expert_ret = ev.backend.expert_returns()
    bar = tqdm(total=len(todo), desc=desc or f"{cfg.system}: {len(todo)} run(s)", disable=not todo)

    def compute(s):
        t0 = time.perf_counter()
        out = _after_scan(cfg, jax.block_until_ready(run(jax.random.key(s))), ev, progress=True)
        out["wall_s"] = np.asarray(time.perf_counter() - t0)  # execution and host rollouts, this machine
        out["steps"], out["expert_ret"] = cfg.checkpoints, expert_ret
        bar.update()
        return out

    outs = [cache.cached(f"bc-{cfg.system}", lambda s=s: compute(s), cfg, s, code=__name__) for s in seeds]
    bar.close()
    return outs


def is_cached(cfg: BCConfig, seed: int) -> bool:
    """Whether :func:`run_seeds` would load (cfg, seed) from the cache."""
    return cache.is_cached(f"bc-{cfg.system}", cfg, seed, code=__name__)


def unravel(cfg: BCConfig, flat) -> dict:
    """The policy parameter pytree of ``cfg`` from a flat vector (e.g. ``out["final_params"][v]``)."""
    template = policies.init(cfg.policy, *backends.dims(cfg), key=jax.random.key(0))
    return jax.flatten_util.ravel_pytree(template)[1](jnp.asarray(flat))
