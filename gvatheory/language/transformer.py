"""A small decoder-only transformer in JAX (pre-LayerNorm, rotary positions) with jitted batched generation.

Every layer attends to the last ``context`` tokens (sliding-window attention, as in Mistral), and
rotary position embeddings make attention scores depend only on the distance between tokens. Together
they make the model translation invariant: generation runs far beyond the training length with a
ring-buffer key/value cache of ``context`` slots, in O(context) work per token, and computes exactly
what :func:`apply` computes on the whole sequence (tests/test_lm.py). Train on sequences a little
longer than ``context`` so that the model sees tokens whose window starts mid-stream, as it does when
generating 1024 tokens.

References: Vaswani et al. 2017; Radford et al. 2019 (pre-LN GPT-2 block; nanoGPT's init);
Su et al. 2021 (RoFormer: rotary position embedding).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from gvatheory.infra.validate import require_ints


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Architecture of the language model."""

    vocab: int = 5  # token ids 0..vocab−1
    d_model: int = 64  # residual stream width
    n_layers: int = 2  # transformer blocks
    n_heads: int = 4  # attention heads; d_model must be a multiple
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * d_model
    context: int = 128  # attention window of every layer, and the size of the generation cache

    def __post_init__(self):
        require_ints(self, ("vocab", "d_model", "n_layers", "n_heads", "mlp_ratio", "context"))
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(f"d_model ({self.d_model}) must be n_heads ({self.n_heads}) times an even head size")

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_heads


def init(cfg: TransformerConfig, *, key) -> dict:
    """Parameters: token embedding, stacked blocks (leading axis n_layers), final LayerNorm, output head.

    Weights are N(0, 0.02²); the two projections into the residual stream are scaled by 1/√(2 n_layers)
    so the stream's variance does not grow with depth (GPT-2 / nanoGPT).
    """
    d, L, f = cfg.d_model, cfg.n_layers, cfg.mlp_ratio * cfg.d_model
    k = jax.random.split(key, 6)
    n = lambda key, shape, s=0.02: s * jax.random.normal(key, shape)
    out_s = 0.02 / np.sqrt(2 * L)
    blocks = {
        "ln1": {"g": jnp.ones((L, d)), "b": jnp.zeros((L, d))},
        "qkv": n(k[0], (L, d, 3 * d)),
        "proj": n(k[1], (L, d, d), out_s),
        "ln2": {"g": jnp.ones((L, d)), "b": jnp.zeros((L, d))},
        "fc": n(k[2], (L, d, f)),
        "fc_b": jnp.zeros((L, f)),
        "out": n(k[3], (L, f, d), out_s),
        "out_b": jnp.zeros((L, d)),
    }
    return {"embed": n(k[4], (cfg.vocab, d)), "blocks": blocks, "ln_f": {"g": jnp.ones(d), "b": jnp.zeros(d)}, "head": n(k[5], (d, cfg.vocab))}


def n_params(params) -> int:
    """Number of scalar parameters."""
    return int(sum(np.size(x) for x in jax.tree.leaves(params)))


def _ln(p, x):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + 1e-5) * p["g"] + p["b"]


def _rotate(x, pos):
    """Rotary embedding of x [..., T, H, dh] at integer positions pos [T] (pairs (i, i + dh/2) rotate)."""
    dh = x.shape[-1]
    freq = 10000.0 ** (-jnp.arange(dh // 2) / (dh // 2))
    ang = pos[:, None].astype(jnp.float32) * freq  # [T, dh/2]
    cos, sin = jnp.cos(ang)[:, None, :], jnp.sin(ang)[:, None, :]
    x1, x2 = x[..., : dh // 2], x[..., dh // 2 :]
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


def _mlp(b, x):
    h = _ln(b["ln2"], x)
    return x + jax.nn.gelu(h @ b["fc"] + b["fc_b"]) @ b["out"] + b["out_b"]


def apply(cfg: TransformerConfig, params, tokens):
    """Next-token logits [..., T, vocab] for tokens [..., T]: causal attention to the last ``context`` tokens.

    Costs O(T²) memory; for long sequences use :func:`generate`, which computes the same thing.
    """
    tokens = jnp.asarray(tokens)
    T = tokens.shape[-1]
    H, dh = cfg.n_heads, cfg.head_dim
    pos = jnp.arange(T)
    lag = pos[:, None] - pos[None, :]
    mask = (lag >= 0) & (lag < cfg.context)
    x = params["embed"][tokens]

    def block(x, b):
        q, k, v = jnp.split(_ln(b["ln1"], x) @ b["qkv"], 3, -1)
        q, k, v = (a.reshape(a.shape[:-1] + (H, dh)) for a in (q, k, v))
        q, k = _rotate(q, pos), _rotate(k, pos)
        s = jnp.einsum("...thd,...shd->...hts", q, k) / np.sqrt(dh)
        s = jnp.where(mask, s, -1e30)
        a = jnp.einsum("...hts,...shd->...thd", jax.nn.softmax(s, -1), v).reshape(x.shape)
        return _mlp(b, x + a @ b["proj"]), None

    x, _ = jax.lax.scan(block, x, params["blocks"])
    return _ln(params["ln_f"], x) @ params["head"]


def loss(cfg: TransformerConfig, params, tokens):
    """Mean next-token cross-entropy (nats) of windows tokens [B, T+1]: predict tokens[:, 1:] from tokens[:, :-1]."""
    logits = apply(cfg, params, tokens[:, :-1])
    logp = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(logp, tokens[:, 1:, None], -1).mean()


def generate(cfg: TransformerConfig, params, prompt, length: int, *, key, greedy=False, temperature: float = 1.0):
    """Continues prompts [B, P] to [B, length] tokens and returns the model's next-token log-probabilities.

    Args:
        prompt: [B, P] token ids, P ≥ 1 (teacher-forced). length: total tokens, ≥ P; any length (the
            ring-buffer cache keeps the last ``context`` keys and values).
        greedy: bool or [B] bool: argmax decoding for those sequences, sampling for the rest.
        temperature: sampling temperature (> 0).

    Returns:
        tokens [B, length] int32 and logp [B, length − 1, vocab]: row t is the model's distribution of
        token t + 1 given tokens 0..t (float32).
    """
    prompt = jnp.asarray(prompt, jnp.int32)
    B, P = prompt.shape
    if not 1 <= P <= length:
        raise ValueError(f"need 1 <= prompt length ({P}) <= length ({length})")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    greedy = jnp.broadcast_to(jnp.asarray(greedy, bool), (B,))
    W, H, dh, L = cfg.context, cfg.n_heads, cfg.head_dim, cfg.n_layers
    # one (keys, values) buffer per layer, carried and updated in place (a Python loop over the few
    # layers: stacking the caches for a scan over layers would copy them at every token)
    cache = tuple(jnp.zeros((2, B, W, H, dh)) for _ in range(L))
    slot_pos = jnp.full((W,), -1, jnp.int32)  # absolute position held by each slot (−1: empty)
    prompt_pad = jnp.pad(prompt, ((0, 0), (0, length - P)))
    blocks = [jax.tree.map(lambda a: a[i], params["blocks"]) for i in range(L)]

    def step(carry, inp):
        (tok, cache, slot_pos), (t, gumbel) = carry, inp
        slot = t % W
        slot_pos = slot_pos.at[slot].set(t)
        x = params["embed"][tok]  # [B, d]
        new_cache = []
        for b, kv in zip(blocks, cache):
            q, k, v = jnp.split(_ln(b["ln1"], x) @ b["qkv"], 3, -1)
            q, k, v = (a.reshape(B, 1, H, dh) for a in (q, k, v))
            q, k = _rotate(q, t[None])[:, 0], _rotate(k, t[None])
            kv = jax.lax.dynamic_update_slice(kv, jnp.stack([k, v.reshape(B, 1, H, dh)]), (0, 0, slot, 0, 0))
            s = jnp.einsum("bhd,bwhd->bhw", q, kv[0]) / np.sqrt(dh)
            s = jnp.where(slot_pos >= 0, s, -1e30)
            a = jnp.einsum("bhw,bwhd->bhd", jax.nn.softmax(s, -1), kv[1]).reshape(B, -1)
            x = _mlp(b, x + a @ b["proj"])
            new_cache.append(kv)
        logp = jax.nn.log_softmax(_ln(params["ln_f"], x) @ params["head"])
        # Gumbel-max sampling with noise drawn for all steps at once (one RNG call, not one per token)
        choice = jnp.argmax(jnp.where(greedy[:, None], logp, logp / temperature + gumbel), -1).astype(jnp.int32)
        nxt = jnp.where(t + 1 < P, prompt_pad[:, jnp.minimum(t + 1, length - 1)], choice)
        return (nxt, tuple(new_cache), slot_pos), (nxt, logp)

    gumbels = jax.random.gumbel(key, (length - 1, B, cfg.vocab))
    _, (toks, logp) = jax.lax.scan(step, (prompt[:, 0], cache, slot_pos), (jnp.arange(length - 1), gumbels))
    tokens = jnp.concatenate([prompt[:, :1], toks.T], 1)
    return tokens, jnp.moveaxis(logp, 0, 1)
