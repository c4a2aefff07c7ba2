"""Vignette 2, CliffLQR: a convex BC loss whose rollout cost falls off a cliff outside a halfspace.

The system is upper triangular with a single input acting on the first state:

    A = [[a, c, c, ...], [0, a_2, c, ...], ..., [0, ..., a_n]],   B = e_1,

so A + B K stays upper triangular with eigenvalues (a + K_1, a_2, ..., a_n): the closed loop is
unstable exactly when K_1 >= 1 − a (or K_1 <= −1 − a, far away). The cliff is that halfspace — not
an approximation of it — so for Gaussian SGD iterates K ~ N(K̂, S) the off-cliff fraction is the tail
Φ̄((1 − a − K̂_1) / √S_11), with S from the exact stationary covariance (gvatheory.theory.sgd). The BC loss
is the convex least-squares loss on the LQR expert's demonstrations (Block et al. 2024, theory vignette 2).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.stats

from gvatheory.theory import linear
from gvatheory.infra.validate import require_int, require_ints


@dataclasses.dataclass(frozen=True)
class CliffConfig:
    """The CliffLQR system and its expert."""

    a: float = 1.02  # open-loop eigenvalue of the actuated state (> 1: unstable without control)
    passive: tuple = (0.9, 0.7)  # eigenvalues a_2.. of the unactuated, stable states
    coupling: float = 0.5  # upper off-diagonal entries: the passive states push the actuated one
    input_cost: float = 100.0  # R: a dear input makes the LQR expert stop close to the cliff
    process_noise: float = 0.1  # std of w_t on every state
    horizon: int = 100  # H of the rollout cost J_H (the "reward" is −J_H)

    def __post_init__(self):
        if not self.a > 0:
            raise ValueError(f"a must be > 0, got {self.a}")
        if len(self.passive) < 1 or any(not -1 < p < 1 for p in self.passive):
            raise ValueError(f"passive eigenvalues must lie in (-1, 1), got {self.passive}")
        if self.input_cost <= 0:
            raise ValueError(f"input_cost must be > 0, got {self.input_cost}")
        if self.process_noise < 0:
            raise ValueError(f"process_noise must be >= 0, got {self.process_noise}")
        require_int("horizon", self.horizon, 1)


def cliff_system(cfg: CliffConfig) -> linear.LinearSystem:
    """The upper-triangular CliffLQR system described in the module docstring."""
    n = 1 + len(cfg.passive)
    A = np.triu(np.full((n, n), cfg.coupling), 1) + np.diag((cfg.a,) + tuple(cfg.passive))
    B = np.eye(n)[:, :1]
    return linear.LinearSystem(
        A=A, B=B, Q=np.eye(n), R=cfg.input_cost * np.eye(1), W=cfg.process_noise**2 * np.eye(n), Sigma0=np.eye(n)
    )


def cliff_edge(sys: linear.LinearSystem) -> float:
    """The value of K_1 at which the closed loop's actuated eigenvalue a + K_1 reaches 1."""
    return 1.0 - sys.A[0, 0]


def off_cliff(sys: linear.LinearSystem, K) -> np.ndarray:
    """True where u = K x destabilises the system (spectral radius of A + BK >= 1); K [..., 1, n]."""
    return linear.spectral_radius(linear.closed_loop(sys, K)) >= 1.0


def predicted_off_cliff(sys: linear.LinearSystem, K_mean, cov) -> float:
    """P(K_1 >= 1 − a) for K ~ N(K_mean, cov): the Gaussian tail on the cliff's normal direction.

    Args:
        K_mean: [1, n] mean gain (the least-squares minimiser K̂). cov: [n, n] covariance of vec K
            (its [0, 0] entry is the variance along the cliff normal).
    """
    sd = float(np.sqrt(np.asarray(cov)[0, 0]))
    margin = cliff_edge(sys) - float(np.asarray(K_mean)[0, 0])
    return float(scipy.stats.norm.sf(margin / sd)) if sd > 0 else float(margin <= 0)


def fraction_with_error(flags: np.ndarray) -> tuple[float, float]:
    """Mean of boolean flags [runs, records] and its standard error across independent runs.

    Records within one run are correlated, so the error is the spread of per-run fractions / √runs.
    """
    per_run = np.asarray(flags, float).mean(axis=1)
    return float(per_run.mean()), float(per_run.std(ddof=1) / np.sqrt(len(per_run)))


def upper_bound_zero(n: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound on a rate when 0 of n independent trials succeeded: 1 − (1−c)^(1/n)."""
    return 1.0 - (1.0 - confidence) ** (1.0 / n)


@dataclasses.dataclass(frozen=True)
class CliffExperiment:
    """Constant-step SGD, its EMA and LR decay on CliffLQR's BC loss (notebook 02)."""

    system: CliffConfig = CliffConfig()
    n_traj: int = 20  # expert demonstrations
    demo_horizon: int = 100  # steps per demonstration
    label_noise: float = 0.5  # std of the expert's executed-action noise (the labels)
    lr: float = 0.05  # constant SGD step η
    batch_size: int = 4  # minibatch size b
    steps: int = 10_000  # SGD steps per run
    n_runs: int = 1000  # independent runs (vmapped)
    record_every: int = 50  # record iterates every this many steps
    ema_decay: float = 0.99  # EMA decay d at the same η
    schedule: str = "cosine"  # the LR-decay comparison (an SGDConfig schedule)
    lr_grid: tuple = (0.02, 0.05, 0.1)  # constant steps compared with the prediction
    decay_grid: tuple = (0.5, 0.8, 0.9)  # EMA decays compared with the prediction (at η = lr)

    def __post_init__(self):
        require_ints(self, ("n_traj", "demo_horizon", "steps", "n_runs", "record_every", "batch_size"))
        if self.label_noise < 0:
            raise ValueError(f"label_noise must be >= 0, got {self.label_noise}")
        if self.n_runs < 2:
            raise ValueError(f"n_runs must be >= 2 to estimate an error bar, got {self.n_runs}")
        if self.steps % (2 * self.record_every):
            raise ValueError("steps must be a multiple of 2 * record_every (the second half is the stationary window)")
        for d in (self.ema_decay,) + tuple(self.decay_grid):
            if not 0 <= d < 1:
                raise ValueError(f"EMA decays must lie in [0, 1), got {d}")
        if any(lr <= 0 for lr in (self.lr,) + tuple(self.lr_grid)):
            raise ValueError("learning rates must be > 0")

    def sgd(self, lr=None, schedule="constant"):
        """The :class:`gvatheory.theory.sgd.SGDConfig` of one arm of the experiment."""
        from gvatheory.theory import sgd

        return sgd.SGDConfig(
            lr=self.lr if lr is None else lr,
            steps=self.steps,
            batch_size=self.batch_size,
            n_runs=self.n_runs,
            record_every=self.record_every,
            schedule=schedule,
            decay_steps=self.steps,
        )


def run_experiment(exp: CliffExperiment, *, key) -> dict:
    """Runs notebook 02's experiment and returns every number it plots (a dict of numpy arrays).

    Keys: ``steps`` [R]; ``K1_raw``/``K1_ema``/``K1_decay`` [runs, R] (the gain on the cliff normal);
    ``off_raw``/``off_ema``/``off_decay`` [runs, R] (destabilising, by spectral radius); ``cost_raw``/
    ``cost_ema`` [R] (J_H of run 0's iterates, inf past the cliff); ``pred_raw``/``pred_ema``
    (stationary Gaussian-tail predictions); ``K_hat``, ``K_star``, ``edge``; and for the prediction
    panel ``grid_lr``/``grid_pred``/``grid_sim``/``grid_err`` and ``grid_decay``/``grid_ema_pred``/...
    """
    import jax
    from tqdm import tqdm

    from gvatheory.core import averaging
    from gvatheory.theory import sgd

    sys = cliff_system(exp.system)
    K_star, _ = linear.lqr_gain(sys)
    k_data, k_sgd, k_decay, k_grid = jax.random.split(key, 4)
    X, Y = linear.bc_dataset(sys, K_star, exp.demo_horizon, exp.n_traj, key=k_data, label_noise=exp.label_noise)
    problem = sgd.LeastSquares(np.asarray(X), np.asarray(Y))
    K_hat = problem.minimiser
    K0 = np.zeros_like(K_hat)  # start from "no control": the open loop is past the cliff
    half = exp.steps // exp.record_every // 2

    decays = tuple(exp.decay_grid) + (exp.ema_decay,)
    avgs = {f"ema{d}": averaging.ema(d) for d in decays}
    tr = sgd.run_sgd(problem, exp.sgd(), K0, avgs, key=k_sgd)
    dec = sgd.run_sgd(problem, exp.sgd(schedule=exp.schedule), K0, key=k_decay)
    raw, ema_ = np.asarray(tr.raw), np.asarray(tr.averages[f"ema{exp.ema_decay}"])
    S = sgd.stationary_covariance(problem, exp.lr, exp.batch_size, ema_decay=exp.ema_decay)
    d = S.shape[0] // 2
    out = dict(
        steps=tr.steps,
        K1_raw=raw[:, :, 0, 0],
        K1_ema=ema_[:, :, 0, 0],
        K1_decay=np.asarray(dec.raw)[:, :, 0, 0],
        off_raw=off_cliff(sys, raw),
        off_ema=off_cliff(sys, ema_),
        off_decay=off_cliff(sys, np.asarray(dec.raw)),
        cost_raw=linear.cost_exact(sys, raw[0], exp.system.horizon).sum(-1),
        cost_ema=linear.cost_exact(sys, ema_[0], exp.system.horizon).sum(-1),
        cost_star=linear.cost_exact(sys, K_star, exp.system.horizon).sum(),
        pred_raw=predicted_off_cliff(sys, K_hat, S[:d, :d]),
        pred_ema=predicted_off_cliff(sys, K_hat, S[d:, d:]),
        K_hat=K_hat,
        K_star=K_star,
        edge=cliff_edge(sys),
    )
    # prediction vs simulation over step sizes (raw) and EMA decays (at η = lr), stationary window
    sims, errs, preds = [], [], []
    for i, lr in enumerate(tqdm(exp.lr_grid, desc="step-size grid", leave=False)):
        if lr == exp.lr:
            flags = out["off_raw"]
        else:
            flags = off_cliff(sys, np.asarray(sgd.run_sgd(problem, exp.sgd(lr=lr), K0, key=jax.random.fold_in(k_grid, i)).raw))
        m, e = fraction_with_error(flags[:, half:])
        sims.append(m), errs.append(e)
        preds.append(predicted_off_cliff(sys, K_hat, sgd.stationary_covariance(problem, lr, exp.batch_size)))
    out.update(grid_lr=np.array(exp.lr_grid), grid_pred=np.array(preds), grid_sim=np.array(sims), grid_err=np.array(errs))
    sims, errs, preds = [], [], []
    for dcy in decays:
        m, e = fraction_with_error(off_cliff(sys, np.asarray(tr.averages[f"ema{dcy}"]))[:, half:])
        Sj = sgd.stationary_covariance(problem, exp.lr, exp.batch_size, ema_decay=dcy)
        sims.append(m), errs.append(e), preds.append(predicted_off_cliff(sys, K_hat, Sj[d:, d:]))
    out.update(grid_decay=np.array(decays), grid_ema_pred=np.array(preds), grid_ema_sim=np.array(sims), grid_ema_err=np.array(errs))
    return out
