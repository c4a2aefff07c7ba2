"""Iterate averaging for JAX pytrees: constant EMA, polynomial-decay EMA and BEMA.

Every averager is a pair of pure functions ``(init, update)`` in the style of optax: the state is a
pytree (a NamedTuple holding the step counter), so it can be carried through ``lax.scan``, vmapped,
checkpointed and resumed. Read the average with ``state.average``.

The recursion (Block et al. 2024: the EMA of the iterates removes GVA) is

    θ̄_k = (1 − β_k) θ̄_{k−1} + β_k θ_k,        β_k = max(β_min, (ρ + γ k)^(−p)),

with k counted from the end of a burn-in of ``burn_in`` iterates (during which the average is reset
to the iterate), and applied only every ``every`` iterates. A constant EMA of decay d is β_k = 1 − d.
BEMA (Block & Zhang 2025, Algorithm 1) adds a bias correction that removes the EMA's lag:

    θ̂_k = α_k (θ_k − θ_anchor) + θ̄_k,          α_k = (ρ + γ k)^(−η),

where θ_anchor is the iterate at the end of burn-in (``anchor="burn_in"``) or the initial iterate θ_0
(``anchor="init"``). EDM2's power-function EMA (Karras et al. 2024, Eq. 127) is the schedule
β_k = 1 − (1 − 1/k)^(γ+1) of exponent γ (``exponent``), whose weights grow like t^γ.

Conventions of the reference implementations, checked number for number in tests/test_averaging.py:

* TRL's ``BEMACallback`` (β_t = max(β_min, (ρ + γ t)^(−κ)), α_t = (ρ + γ t)^(−η), θ_0 and the EMA
  snapshot at step τ = ``update_after``, updates every φ = ``update_freq`` steps after it) is
  ``bema(lag=ρ + γτ, gamma=γ, burn_in=τ, every=φ)``: TRL counts t from the start of training, this
  package from the end of burn-in, so its ρ absorbs γτ. With τ = 0 the parameters are the same.
* The authors' reference (``abblock/bema``, ``src/core_online.py``) reads ρ as a delay: β_t = γ(1 +
  max(0, t − ρ))^(−κ), α_t the same with η, θ_0 the weights at the start of training, updates at the
  steps t with (t + 1) divisible by φ. With γ = 1 and φ = 1 it is ``averager(AveragingConfig(power=κ,
  bias_power=η, lag=1, burn_in=ρ, anchor="init"))`` from step ρ + 1 on (during its first ρ steps it
  outputs 2θ_t − θ_0, this package the iterate); with φ > 1 its updates fall on other steps.
* ``ema-pytorch``'s warm-up EMA (decay 1 − (1 + e/inv_gamma)^(−power), clamped to [min_value, beta], e the
  steps after ``update_after_step``) is ``polynomial_ema(power, gamma=1/inv_gamma, lag=1, beta_min=1 −
  beta, burn_in=update_after_step)`` when min_value = 0, from the end of burn-in on (with
  ``update_every`` = E dividing the burn-in, ``every=E``).

This package's BEMA defaults differ from both references in one place: ``every=1`` (the paper updates
the average at every step, and the runs here are short), where TRL defaults to 400 and the authors to 100.

References:
    Block, Foster, Krishnamurthy, Simchowitz, Zhang. Butterfly Effects of SGD Noise. ICLR 2024.
    Block & Zhang. EMA Without the Lag: Bias-Corrected Iterate Averaging Schemes. 2025.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gvatheory.infra.validate import require_int

PyTree = Any


@dataclasses.dataclass(frozen=True)
class AveragingConfig:
    """Hyperparameters of one averager. Use :func:`ema`, :func:`polynomial_ema` or :func:`bema`."""

    decay: float | None = None  # constant EMA decay d (β = 1 − d); None selects the polynomial schedule
    power: float = 1.0  # p: β_k = (ρ + γ k)^(−p); 1 with ρ = γ = 1 is the uniform (Polyak) average
    gamma: float = 1.0  # γ: how fast β_k decays; larger γ forgets the start sooner
    lag: float = 1.0  # ρ: offset so that β_1 = (ρ + γ)^(−p) < 1 keeps some memory from the start
    beta_min: float = 0.0  # floor on β_k: a long run ends as a constant EMA of decay 1 − beta_min
    burn_in: int = 0  # iterates during which the average is reset to the iterate (the paper ablates this)
    every: int = 1  # update the average only every this many iterates (the paper: rarely hurts)
    bias_power: float | None = None  # η of BEMA's correction α_k = (ρ + γ k)^(−η); None = plain EMA
    anchor: str = "burn_in"  # BEMA's θ_anchor: "burn_in" (the iterate at its end; TRL) or "init" (θ_0; the authors' code)
    exponent: float | None = None  # γ of EDM2's power-function EMA β_k = 1 − (1 − 1/k)^(γ+1); replaces decay/power

    def __post_init__(self):
        if self.decay is not None and not 0.0 <= self.decay < 1.0:
            raise ValueError(f"decay must lie in [0, 1), got {self.decay}")
        if self.power < 0:
            raise ValueError(f"power must be >= 0, got {self.power}")
        if self.gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma}")
        if self.lag < 0:
            raise ValueError(f"lag must be >= 0, got {self.lag}")
        if self.decay is None and self.lag + self.gamma < 1.0 and self.power > 0:
            raise ValueError(f"lag + gamma must be >= 1 so that beta_1 <= 1, got {self.lag + self.gamma}")
        if not 0.0 <= self.beta_min <= 1.0:
            raise ValueError(f"beta_min must lie in [0, 1], got {self.beta_min}")
        require_int("burn_in", self.burn_in, 0)
        require_int("every", self.every, 1)
        if self.bias_power is not None and self.bias_power < 0:
            raise ValueError(f"bias_power must be >= 0, got {self.bias_power}")
        if self.anchor not in ("burn_in", "init"):
            raise ValueError(f"anchor must be 'burn_in' or 'init', got {self.anchor!r}")
        if self.exponent is not None and (self.decay is not None or not self.exponent >= 0):
            raise ValueError(f"exponent must be >= 0 and excludes decay, got exponent={self.exponent}, decay={self.decay}")

    def beta(self, k):
        """β_k for update number k >= 1 (array in, array out)."""
        k = jnp.asarray(k, jnp.float32)
        if self.decay is not None:
            return jnp.full_like(k, 1.0 - self.decay)
        if self.exponent is not None:
            return jnp.clip(1.0 - (1.0 - 1.0 / k) ** (self.exponent + 1.0), self.beta_min, 1.0)
        return jnp.clip((self.lag + self.gamma * k) ** (-self.power), self.beta_min, 1.0)

    def alpha(self, k):
        """BEMA's bias-correction weight α_k for update number k >= 1 (zero for a plain EMA)."""
        k = jnp.asarray(k, jnp.float32)
        if self.bias_power is None:
            return jnp.zeros_like(k)
        return (self.lag + self.gamma * k) ** (-self.bias_power)


class AveragerState(NamedTuple):
    """State of an averager. ``count`` is the index of the last iterate seen (0 after ``init``)."""

    count: jax.Array  # int32 scalar
    ema: PyTree  # θ̄: the exponential moving average
    anchor: PyTree  # θ_anchor for BEMA; None for a plain EMA
    corrected: PyTree  # θ̂ for BEMA; None for a plain EMA

    @property
    def average(self) -> PyTree:
        """The averaged parameters to evaluate: θ̂ for BEMA, θ̄ otherwise."""
        return self.ema if self.corrected is None else self.corrected


class Averager(NamedTuple):
    """A pure averaging transformation: ``state = init(params)``, ``state = update(state, params)``."""

    init: Callable[[PyTree], AveragerState]
    update: Callable[[AveragerState, PyTree], AveragerState]
    config: AveragingConfig


def averager(config: AveragingConfig) -> Averager:
    """Builds the ``(init, update)`` pair for ``config``.

    Args:
        config: the schedule; see :class:`AveragingConfig`.

    Returns:
        An :class:`Averager`. ``init(params)`` takes θ_0 (iterate 0); ``update(state, params)`` takes
        the next iterate θ_n and returns the state whose ``.average`` is the average up to θ_n.
        Both are jit-able and vmap-able; nothing is done in Python per step. ``update(state, params,
        beta=b)`` replaces the schedule's β_k by ``b`` (a traced scalar: a constant-decay EMA whose decay
        is an argument of the compiled program rather than a constant in it).

    References: Block et al. (2024); Block & Zhang (2025), Algorithm 1.
    """
    corrected = config.bias_power is not None

    def init(params):
        params = jax.tree.map(jnp.asarray, params)
        return AveragerState(
            count=jnp.zeros((), jnp.int32),
            ema=params,
            anchor=params if corrected else None,
            corrected=params if corrected else None,
        )

    def update(state, params, beta=None):
        n = state.count + 1
        k = n - config.burn_in  # update number after burn-in
        in_burn_in = k <= 0
        do_update = jnp.logical_and(~in_burn_in, k % config.every == 0)
        beta = jnp.where(do_update, config.beta(jnp.maximum(k, 1)) if beta is None else beta, 0.0)
        beta = jnp.where(in_burn_in, 1.0, beta)  # burn-in: the average is the iterate

        def mix(avg, p):
            b = beta.astype(jnp.result_type(avg))
            return (1 - b) * avg + b * p

        ema = jax.tree.map(mix, state.ema, params)
        anchor = corr = None
        if corrected:
            anchor = state.anchor
            if config.anchor == "burn_in":  # "init" keeps θ_0 from init()
                anchor = jax.tree.map(lambda a, p: jnp.where(in_burn_in, p, a), state.anchor, params)
            alpha = config.alpha(jnp.maximum(k, 1))

            def correct(old, e, p, a):
                new = e + alpha.astype(jnp.result_type(e)) * (p - a)
                return jnp.where(in_burn_in, p, jnp.where(do_update, new, old))

            corr = jax.tree.map(correct, state.corrected, ema, params, anchor)
        return AveragerState(count=n, ema=ema, anchor=anchor, corrected=corr)

    return Averager(init, update, config)


def ema(decay: float, *, burn_in: int = 0, every: int = 1) -> Averager:
    """Constant-decay EMA, θ̄ ← d θ̄ + (1 − d) θ.

    Args:
        decay: d in [0, 1); the average remembers about 1 / (1 − d) iterates.
        burn_in: iterates during which the average is reset to the iterate.
        every: update only every this many iterates.
    """
    return averager(AveragingConfig(decay=decay, burn_in=burn_in, every=every))


def polynomial_ema(
    power: float, *, gamma: float = 1.0, lag: float = 1.0, beta_min: float = 0.0, burn_in: int = 0, every: int = 1
) -> Averager:
    """EMA with the paper's polynomial schedule β_k = max(β_min, (ρ + γ k)^(−p)).

    ``power=1, gamma=1, lag=1`` is the uniform (Polyak–Ruppert) average of the iterates since burn-in;
    ``power < 1`` forgets the start polynomially fast.
    """
    return averager(AveragingConfig(power=power, gamma=gamma, lag=lag, beta_min=beta_min, burn_in=burn_in, every=every))


def power_function_ema(exponent: float, *, burn_in: int = 0, every: int = 1) -> Averager:
    """EDM2's power-function EMA of exponent γ: θ̄_k = (1 − β_k) θ̄_{k−1} + β_k θ_k, β_k = 1 − (1 − 1/k)^(γ+1).

    Its weights grow like t^γ; the relative width of that profile is σ_rel = √((γ+1) / ((γ+2)² (γ+3)))
    (Karras et al. 2024, Eqs. 123 and 127; tests/test_averaging.py checks both).
    """
    return averager(AveragingConfig(exponent=exponent, burn_in=burn_in, every=every))


def bema(
    *,
    ema_power: float = 0.5,
    bias_power: float = 0.2,
    lag: float = 10.0,
    gamma: float = 1.0,
    beta_min: float = 0.0,
    burn_in: int = 0,
    every: int = 1,
) -> Averager:
    """BEMA: polynomial EMA plus the bias correction α_k (θ_k − θ_anchor) (Block & Zhang 2025).

    Defaults are Block & Zhang's (κ = 0.5, η = 0.2, ρ = 10, γ = 1). With ``bias_power = 1 − ema_power``
    the correction cancels the EMA's lag on a linear trend up to O(1) steps (tests/test_averaging.py).
    """
    return averager(
        AveragingConfig(
            power=ema_power, bias_power=bias_power, lag=lag, gamma=gamma, beta_min=beta_min, burn_in=burn_in, every=every
        )
    )


def schedule(config: AveragingConfig, n_steps: int):
    """The weights that :func:`averager`'s ``update`` applies at iterates n = 1..T, as numpy arrays.

    For exact moment recursions (gvatheory.theory.ou): θ̄_n = (1 − β_n) θ̄_{n−1} + β_n θ_n, and where
    ``refresh_n`` the BEMA output is set to θ̄_n + α_n (θ_n − θ_anchor) (held otherwise); the anchor is
    reset to θ_n while ``reset_n`` (burn-in) unless ``config.anchor == "init"``.

    Returns:
        beta [T], alpha [T], refresh [T] (bool), reset [T] (bool).
    """
    n = np.arange(1, int(n_steps) + 1)
    k = n - config.burn_in
    reset = k <= 0
    refresh = ~reset & (k % config.every == 0)
    kk = np.maximum(k, 1).astype(np.float64)
    if config.decay is not None:
        b = np.full(kk.shape, 1.0 - config.decay)
    elif config.exponent is not None:
        b = np.clip(1.0 - (1.0 - 1.0 / kk) ** (config.exponent + 1.0), config.beta_min, 1.0)
    else:
        b = np.clip((config.lag + config.gamma * kk) ** (-config.power), config.beta_min, 1.0)
    a = np.zeros_like(kk) if config.bias_power is None else (config.lag + config.gamma * kk) ** (-config.bias_power)
    beta = np.where(reset, 1.0, np.where(refresh, b, 0.0))
    return beta, np.where(refresh, a, 0.0), refresh, reset
