"""Vignette 3, the SDE / Ornstein–Uhlenbeck limit: SGD on a quadratic, last iterate vs EMA vs LR decay.

Model (Block et al. 2024, theory vignette 3): f(θ) = ½ Σ_i λ_i θ_i², stochastic gradient λθ + σξ with
ξ ~ N(0, I). SGD θ_{t+1} = (1 − η_t λ) θ_t − η_t σ ξ_t is linear and Gaussian, so the mean and
covariance of (θ_t, θ̄_t, θ̂_t) — raw, EMA and BEMA — follow exact recursions, coordinate by coordinate.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from gvatheory.core import averaging
from gvatheory.theory import sgd
from gvatheory.infra.validate import require_ints


@dataclasses.dataclass(frozen=True)
class QuadraticConfig:
    """A diagonal quadratic with additive Gaussian gradient noise."""

    lambdas: tuple = (0.01, 0.1, 1.0)  # curvatures λ_i (eigenvalues of the Hessian)
    sigma: float = 1.0  # gradient-noise standard deviation per coordinate
    theta0: float = 1.0  # initial distance from the optimum in every coordinate

    def __post_init__(self):
        lam = np.asarray(self.lambdas, dtype=float)
        if lam.ndim != 1 or lam.size == 0 or np.any(lam <= 0):
            raise ValueError(f"lambdas must be a non-empty sequence of positive numbers, got {self.lambdas}")
        if self.sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")

    @property
    def lam(self) -> np.ndarray:
        """Curvatures as an array [d]."""
        return np.asarray(self.lambdas, dtype=np.float64)


def stationary_variance(lam, sigma, lr):
    """Var θ_∞ = η σ² / (λ (2 − η λ)) for constant-step SGD (requires 0 < ηλ < 2)."""
    lam, lr = np.asarray(lam, float), np.asarray(lr, float)
    if np.any(lr * lam <= 0) or np.any(lr * lam >= 2):
        raise ValueError("need 0 < lr * lambda < 2 for a stationary distribution")
    return lr * sigma**2 / (lam * (2 - lr * lam))


def stationary_ema_variance(lam, sigma, lr, decay):
    """Var θ̄_∞ of a constant EMA (decay d = 1 − β) of constant-step SGD iterates, closed form.

    θ_t is AR(1) with coefficient q = 1 − ηλ, so Var θ̄ = β² V Σ_{j,k} a^{j+k} q^{|j−k|} with a = 1 − β,
    V = Var θ_∞: Var θ̄ = β² V (1 + a q) / ((1 − a²)(1 − a q)).
    """
    V = stationary_variance(lam, sigma, lr)
    q = 1 - np.asarray(lr, float) * np.asarray(lam, float)
    a = np.asarray(decay, float)
    beta = 1 - a
    return beta**2 * V * (1 + a * q) / ((1 - a**2) * (1 - a * q))


def moments(cfg: QuadraticConfig, lrs, avg: averaging.AveragingConfig | None = None):
    """Exact means and variances of raw, averaged (and BEMA) iterates after each step.

    Args:
        cfg: the quadratic. lrs: [..., T] step sizes η_0..η_{T−1} (leading axes broadcast, e.g. a grid
            of schedules). avg: the averager (β, α, burn-in, update frequency as
            :func:`gvatheory.core.averaging.averager` applies them); None tracks the raw iterate only.

    Returns:
        dict of arrays [..., T, d] for t = 1..T: ``mean``/``var`` (raw), ``ema_mean``/``ema_var``, and
        for BEMA ``bema_mean``/``bema_var``. MSE = mean² + var.
    """
    lrs = np.asarray(lrs, np.float64)
    T = lrs.shape[-1]
    lam = cfg.lam
    if avg is None:
        beta = alpha = np.zeros(T)
        refresh = reset = np.zeros(T, bool)
    else:
        beta, alpha, refresh, reset = averaging.schedule(avg, T)
    lead = lrs.shape[:-1]
    shape = lead + (lam.size,)
    m = np.full(shape, cfg.theta0)  # E θ
    v = np.zeros(shape)  # Var θ
    me, ve, c = m.copy(), v.copy(), v.copy()  # EMA mean, var, Cov(θ, θ̄)
    m0, c0, ce0 = m.copy(), v.copy(), v.copy()  # anchor mean; Cov(θ, anchor); Cov(θ̄, anchor)
    v0 = v.copy()
    mb, vb = m.copy(), v.copy()
    out = {k: np.empty(lead + (T, lam.size)) for k in ("mean", "var", "ema_mean", "ema_var", "bema_mean", "bema_var")}
    s2 = cfg.sigma**2
    for t in range(T):  # exact float64 recursion on [..., d] arrays; T <= ~1e5 runs in well under a second
        q = 1 - lrs[..., t, None] * lam
        noise = lrs[..., t, None] ** 2 * s2
        b = beta[t]
        # joint second moments after the SGD step (θ' = qθ − ησξ, independent of θ̄ and the anchor)
        m, v, c, c0 = q * m, q * q * v + noise, q * c, q * c0
        # EMA with the new iterate: θ̄' = (1 − b) θ̄ + b θ'
        me, ve, c, ce0 = (
            (1 - b) * me + b * m,
            (1 - b) ** 2 * ve + 2 * (1 - b) * b * c + b * b * v,
            (1 - b) * c + b * v,
            (1 - b) * ce0 + b * c0,
        )
        if reset[t]:  # burn-in: the anchor is the current iterate
            m0, v0, c0, ce0 = m, v, v, c
        if refresh[t] or reset[t]:
            a = alpha[t]
            # θ̂ = θ̄ + a (θ − θ_anchor)
            mb = me + a * (m - m0)
            vb = ve + a * a * (v + v0 - 2 * c0) + 2 * a * (c - ce0)
        for k, x in (("mean", m), ("var", v), ("ema_mean", me), ("ema_var", ve), ("bema_mean", mb), ("bema_var", vb)):
            out[k][..., t, :] = x
    if avg is None or avg.bias_power is None:
        del out["bema_mean"], out["bema_var"]
    if avg is None:
        del out["ema_mean"], out["ema_var"]
    return out


def simulate(cfg: QuadraticConfig, sgd_cfg: sgd.SGDConfig, averagers=None, *, key) -> sgd.SGDTrace:
    """Monte-Carlo SGD on the quadratic (``sgd_cfg.n_runs`` runs at once), averagers tracked in-scan."""
    lam = jnp.asarray(cfg.lam, jnp.float32)

    def grad(theta, key):
        return lam * theta + cfg.sigma * jax.random.normal(key, theta.shape)

    return sgd.run_noisy_sgd(grad, np.full(cfg.lam.shape, cfg.theta0), sgd_cfg, averagers, key=key)


@dataclasses.dataclass(frozen=True)
class OUExperiment:
    """Notebook 03: raw vs tuned EMA vs tuned LR decay vs BEMA on one quadratic direction."""

    quad: QuadraticConfig = QuadraticConfig(lambdas=(0.1,), sigma=1.0, theta0=3.0)
    lr: float = 0.5  # constant step η (and η_0 of the decay)
    steps: int = 1000  # budget T of the example and of the tuning (MSE at every T' <= T is reported)
    n_runs: int = 2000  # Monte-Carlo runs overlaid on the closed form
    record_every: int = 10  # Monte-Carlo record interval
    grid: int = 40  # hyperparameter grid size (EMA window, decay time scale, burn-in)

    def __post_init__(self):
        require_ints(self, ("steps", "n_runs", "record_every", "grid"))
        if self.steps % self.record_every:
            raise ValueError(f"steps ({self.steps}) must be a multiple of record_every ({self.record_every})")
        if not 0 < self.lr * self.quad.lam.max() < 2:
            raise ValueError(f"lr must satisfy 0 < lr * max(lambdas) < 2, got lr={self.lr}")


def _mse(mo, prefix=""):
    return np.sum(mo[prefix + "mean"] ** 2 + mo[prefix + "var"], axis=-1)  # [T]


def tune(exp: OUExperiment) -> dict:
    """MSE E‖θ_T − θ*‖² of each family for every budget T <= steps and every grid value (exact).

    Families (each a grid): ``ema`` (constant decay, over the window 1/(1 − d)); ``decay``
    (η_0 / (1 + t/τ), over τ); ``polyak`` (uniform average after a burn-in b, over b); ``bema``
    (BEMA on a uniform-type average, κ = 1, ρ = 10, over the bias power η_B). Returns the grids
    ``windows``, ``taus``, ``burn_ins``, ``bias_powers`` [G] and ``mse_<family>`` [G, T]; and [T]
    curves ``mse_raw``, ``mse_poly`` (that average without correction) and ``mse_bema_default``
    (Block & Zhang's defaults κ = 0.5, η_B = 0.2, ρ = 10).
    """
    from tqdm import tqdm

    T, q = exp.steps, exp.quad
    const = np.full(T, exp.lr)
    grids = dict(
        ema=np.unique(np.logspace(0.3, np.log10(4 * T), exp.grid)),
        decay=np.unique(np.logspace(0, np.log10(4 * T), exp.grid).astype(int)),
        polyak=np.unique(np.logspace(0, np.log10(T - 1), exp.grid).astype(int)),
        bema=np.linspace(0.0, 2.0, exp.grid),
    )

    def mse_of(family, x):
        if family == "ema":
            return _mse(moments(q, const, averaging.ema(1 - 1 / x).config), "ema_")
        if family == "decay":
            return _mse(moments(q, sgd.SGDConfig(lr=exp.lr, steps=T, schedule="inverse_time", decay_steps=int(x)).learning_rates()))
        if family == "polyak":
            return _mse(moments(q, const, averaging.polynomial_ema(1.0, burn_in=int(x)).config), "ema_")
        return _mse(moments(q, const, averaging.bema(ema_power=1.0, bias_power=float(x)).config), "bema_")

    out = {
        "windows": grids["ema"], "taus": grids["decay"], "burn_ins": grids["polyak"], "bias_powers": grids["bema"],
        "mse_raw": _mse(moments(q, const)),
        "mse_poly": _mse(moments(q, const, averaging.polynomial_ema(1.0, lag=10.0).config), "ema_"),
        "mse_bema_default": _mse(moments(q, const, averaging.bema().config), "bema_"),
    }
    with tqdm(total=sum(map(len, grids.values())), desc="exact moments", mininterval=1.0, leave=False) as bar:
        for family, grid in grids.items():
            rows = []
            for x in grid:
                rows.append(mse_of(family, x))
                bar.update()
            out[f"mse_{family}"] = np.array(rows)
    return out
