"""Policy networks for behavior cloning: an MLP and a residual MLP with LayerNorm, with data normalisation."""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gvatheory.infra.validate import require_int

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu, "silu": jax.nn.silu}


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """Architecture of the policy network."""

    arch: str = "mlp"  # "mlp" (plain) or "resmlp" (pre-LayerNorm residual blocks), the comparison architecture
    depth: int = 2  # hidden layers (mlp) or residual blocks (resmlp)
    width: int = 256  # hidden units
    activation: str = "relu"  # relu | tanh | gelu | silu

    def __post_init__(self):
        if self.arch not in ("mlp", "resmlp"):
            raise ValueError(f"arch must be 'mlp' or 'resmlp', got {self.arch!r}")
        require_int("depth", self.depth, 1)
        require_int("width", self.width, 1)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")


class Normalizer(NamedTuple):
    """Affine input/output normalisation computed from the demonstrations (constants, not trained)."""

    x_mean: jax.Array  # [n]
    x_std: jax.Array  # [n]
    u_mean: jax.Array  # [m]
    u_std: jax.Array  # [m]

    @staticmethod
    def from_data(X, U) -> "Normalizer":
        """Mean and standard deviation of states X [N, n] and actions U [N, m].

        A feature that is constant in the data (std < 1e-6, e.g. a contact force that never fired) is
        centred but not scaled (std 1), so that a nonzero value at test time is not multiplied by 1e6.
        """
        X, U = np.asarray(X, np.float64), np.asarray(U, np.float64)
        f = lambda a: jnp.asarray(a, jnp.float32)
        scale = lambda s: f(np.where(s < 1e-6, 1.0, s))
        return Normalizer(f(X.mean(0)), scale(X.std(0)), f(U.mean(0)), scale(U.std(0)))


def _dense(key, n_in, n_out):
    # LeCun-normal weights, zero bias
    return {"w": jax.random.normal(key, (n_in, n_out)) / np.sqrt(n_in), "b": jnp.zeros(n_out)}


def init(cfg: PolicyConfig, n_in: int, n_out: int, *, key) -> dict:
    """Parameters of the network mapping normalised states [n_in] to normalised actions [n_out]."""
    keys = jax.random.split(key, cfg.depth + 2)
    if cfg.arch == "mlp":
        sizes = [n_in] + [cfg.width] * cfg.depth
        return {"hidden": [_dense(k, a, b) for k, a, b in zip(keys, sizes[:-1], sizes[1:])], "out": _dense(keys[-1], cfg.width, n_out)}
    blocks = [{"ln": {"g": jnp.ones(cfg.width), "b": jnp.zeros(cfg.width)}, "fc": _dense(k, cfg.width, cfg.width)} for k in keys[1:-1]]
    return {"inp": _dense(keys[0], n_in, cfg.width), "blocks": blocks, "out": _dense(keys[-1], cfg.width, n_out)}


def apply(cfg: PolicyConfig, params: dict, x, *, dropout: float = 0.0, key=None, keep=None):
    """Network output for normalised inputs x [..., n_in] -> [..., n_out].

    With ``dropout`` > 0 and a ``key`` (training only), each hidden activation (mlp) or residual branch
    (resmlp) is zeroed with probability ``dropout`` and the rest scaled by 1 / (1 − dropout) (inverted
    dropout: the expected output equals the deterministic one's input to the next layer). ``keep`` =
    1 − dropout may be given instead, as a traced scalar, so that the rate is an argument of a compiled
    program rather than a constant in it.
    """
    if keep is None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        keep = 1.0 - dropout if dropout > 0 else None
    act = ACTIVATIONS[cfg.activation]
    lin = lambda p, h: h @ p["w"] + p["b"]
    n_layers = len(params["hidden"]) if cfg.arch == "mlp" else len(params["blocks"])
    keys = jax.random.split(key, n_layers) if (keep is not None and key is not None) else [None] * n_layers

    def drop(h, k):
        if k is None:
            return h
        # h × (1 / keep), the reciprocal formed once: what XLA makes of h / keep for a constant keep
        return jnp.where(jax.random.bernoulli(k, keep, h.shape), h * (1.0 / jnp.asarray(keep, h.dtype)), 0.0)

    if cfg.arch == "mlp":
        h = x
        for p, k in zip(params["hidden"], keys):
            h = drop(act(lin(p, h)), k)
        return lin(params["out"], h)
    h = lin(params["inp"], x)
    for blk, k in zip(params["blocks"], keys):
        mu = h.mean(-1, keepdims=True)
        z = (h - mu) / jnp.sqrt(((h - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * blk["ln"]["g"] + blk["ln"]["b"]
        h = h + drop(act(lin(blk["fc"], z)), k)
    return lin(params["out"], h)


def act(cfg: PolicyConfig, params: dict, norm: Normalizer, x):
    """The policy's action in physical units for states x [..., n] -> [..., m]."""
    y = apply(cfg, params, (x - norm.x_mean) / norm.x_std)
    return norm.u_mean + norm.u_std * y


def n_params(params) -> int:
    """Number of scalar parameters of a pytree."""
    return int(sum(np.size(p) for p in jax.tree.leaves(params)))


def flops_per_action(cfg: PolicyConfig, n_in: int, n_out: int) -> int:
    """Multiply–adds × 2 of one forward pass (the dense layers; activations and LayerNorm not counted)."""
    if cfg.arch == "mlp":
        sizes = [n_in] + [cfg.width] * cfg.depth + [n_out]
    else:
        sizes = [n_in] + [cfg.width] * (cfg.depth + 1) + [n_out]
    return int(2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:])))
