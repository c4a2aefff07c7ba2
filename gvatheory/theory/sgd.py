"""Noisy SGD on a least-squares BC loss, many runs at once, with iterate averaging; exact moments.

The BC loss of a linear policy K [m, n] on demonstrations (x_i, y_i), i < N, is

    L(K) = (1/N) Σ_i ‖K x_i − y_i‖²,    minimiser K̂,  residuals r_i = y_i − K̂ x_i.

SGD with step η_t and minibatch size b (indices drawn with replacement) moves e = vec(K − K̂) by

    e_{t+1} = (I − 2η_t H) e_t − η_t ξ_t,    H = I_m ⊗ (1/N) Σ x_i x_iᵀ,

where ξ_t is the minibatch noise. Its conditional covariance is exact and linear in e eᵀ
(vignette 2, CliffLQR), so the stationary covariance of e — and of the joint (raw, EMA) process —
solves a generalised discrete Lyapunov equation, solved here in Kronecker form.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gvatheory.core.averaging import Averager
from gvatheory.core.schedules import SCHEDULES, make_schedule
from gvatheory.infra.validate import require_int, require_ints


@dataclasses.dataclass(frozen=True, eq=False)
class LeastSquares:
    """A least-squares BC problem: states X [N, n], action labels Y [N, m]."""

    X: np.ndarray  # [N, n] states
    Y: np.ndarray  # [N, m] action labels

    def __post_init__(self):
        X = np.asarray(self.X, dtype=np.float64)
        Y = np.asarray(self.Y, dtype=np.float64)
        if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0] or X.shape[0] == 0:
            raise ValueError(f"X [N, n] and Y [N, m] must share N >= 1, got {X.shape} and {Y.shape}")
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Y))):
            raise ValueError("X and Y must be finite")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "Y", Y)

    @property
    def shape(self) -> tuple[int, int]:
        """(m, n): the shape of the gain K."""
        return self.Y.shape[1], self.X.shape[1]

    @property
    def covariance(self) -> np.ndarray:
        """Empirical second moment (1/N) Σ x xᵀ, [n, n]."""
        return self.X.T @ self.X / len(self.X)

    @property
    def minimiser(self) -> np.ndarray:
        """K̂ = argmin L, [m, n] (normal equations)."""
        return np.linalg.solve(self.covariance, self.X.T @ self.Y / len(self.X)).T

    def loss(self, K) -> np.ndarray:
        """L(K) for K [..., m, n]."""
        R = np.einsum("...ij,nj->...ni", np.asarray(K, np.float64), self.X) - self.Y
        return np.mean(np.sum(R**2, -1), -1)

    def hessian(self) -> np.ndarray:
        """H = I_m ⊗ Σ̂ in row-major vec(K) coordinates, [d, d] with d = m n; ∇L = 2 H vec(K − K̂)."""
        return np.kron(np.eye(self.shape[0]), self.covariance)

    def noise_at_minimiser(self) -> np.ndarray:
        """C0 = 4 (1/N) Σ z_i z_iᵀ, z_i = r_i ⊗ x_i, [d, d]: b × the minibatch-gradient covariance at K̂."""
        m, n = self.shape
        r = self.Y - self.X @ self.minimiser.T
        z = np.einsum("ni,nj->nij", r, self.X).reshape(len(self.X), m * n)
        return 4 * z.T @ z / len(z)

    def multiplicative_noise(self) -> np.ndarray:
        """M4 [d², d²]: the map S ↦ 4 ((1/N) Σ Φ_i S Φ_i − H S H), Φ_i = I_m ⊗ x_i x_iᵀ (row-major vec).

        With E e eᵀ = S, b × the minibatch-gradient covariance averaged over e is C0 + M4[S].
        """
        m, n = self.shape
        Phi = np.einsum("ab,ncd->nacbd", np.eye(m), np.einsum("ni,nj->nij", self.X, self.X)).reshape(-1, m * n, m * n)
        H = self.hessian()
        d = m * n
        return 4 * (np.einsum("nac,nbd->abcd", Phi, Phi).reshape(d * d, d * d) / len(Phi) - np.kron(H, H))


def _lyapunov_general(G, J, C0, M, d):
    """Solves S = G S Gᵀ + J (C0 + M[S_11]) Jᵀ for S [D, D], with S_11 its top-left [d, d] block."""
    D = G.shape[0]
    P = np.eye(D)[:d]  # selects the raw-iterate block
    JJ = np.kron(J, J)
    lhs = np.eye(D * D) - np.kron(G, G) - JJ @ M @ np.kron(P, P)
    if np.max(np.abs(np.linalg.eigvals(np.eye(D * D) - lhs))) >= 1:
        raise ValueError("learning rate too large: the second moments of SGD diverge (not mean-square stable)")
    S = np.linalg.solve(lhs, JJ @ C0.reshape(-1)).reshape(D, D)
    return (S + S.T) / 2


def stationary_covariance(problem: LeastSquares, lr: float, batch_size: int, *, noise: str = "minibatch", ema_decay: float | None = None):
    """Exact stationary covariance of constant-step SGD iterates around K̂ (and of their EMA).

    Args:
        problem: the least-squares BC problem.
        lr: constant step η > 0.
        batch_size: b >= 1.
        noise: "minibatch" (exact with-replacement sampling, noise grows with the error) or "gaussian"
            (additive N(0, C0 / b), the minibatch covariance at K̂, independent of the error).
        ema_decay: if given, the constant EMA decay d; returns the joint covariance of (e, ē).

    Returns:
        [d, d] covariance of vec(K_t − K̂), or [2d, 2d] of (vec(K_t − K̂), vec(K̄_t − K̂)) with the EMA
        updated after each step with the new iterate, as :func:`gvatheory.core.averaging.ema` does.

    References: Block et al. 2024, theory vignette 2 (the cliff LQR): stationary spread ~ η σ².
    """
    _check_lr_batch(lr, batch_size, noise)
    H = problem.hessian()
    d = H.shape[0]
    C0 = problem.noise_at_minimiser()
    M = problem.multiplicative_noise() / batch_size if noise == "minibatch" else np.zeros((d * d, d * d))
    F = np.eye(d) - 2 * lr * H
    if ema_decay is None:
        return _lyapunov_general(F, lr * np.eye(d), C0 / batch_size, M, d)
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay}")
    beta = 1.0 - ema_decay
    G = np.block([[F, np.zeros((d, d))], [beta * F, (1 - beta) * np.eye(d)]])
    J = np.vstack([lr * np.eye(d), beta * lr * np.eye(d)])
    return _lyapunov_general(G, J, C0 / batch_size, M, d)


def _check_lr_batch(lr, batch_size, noise):
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    require_int("batch_size", batch_size, 1)
    if noise not in ("minibatch", "gaussian"):
        raise ValueError(f"noise must be 'minibatch' or 'gaussian', got {noise!r}")


@dataclasses.dataclass(frozen=True)
class SGDConfig:
    """One batch of independent SGD runs on a least-squares BC loss."""

    lr: float = 0.05  # initial step size η_0
    steps: int = 10_000  # SGD steps per run
    batch_size: int = 8  # minibatch size b (with replacement)
    n_runs: int = 256  # independent runs, vmapped
    record_every: int = 50  # record raw and averaged iterates every this many steps
    noise: str = "minibatch"  # "minibatch" or "gaussian" (additive, matched to the minibatch noise at K̂)
    schedule: str = "constant"  # one of SCHEDULES, see make_schedule
    decay_steps: int = 1000  # time scale τ of the schedule; cosine reaches 0 at max(steps, τ)

    def __post_init__(self):
        _check_lr_batch(self.lr, self.batch_size, self.noise)
        require_ints(self, ("steps", "n_runs", "record_every", "decay_steps"))
        if self.steps % self.record_every:
            raise ValueError(f"steps ({self.steps}) must be a multiple of record_every ({self.record_every})")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")

    def learning_rate(self) -> optax.Schedule:
        """The step-size schedule η_t (optax)."""
        return make_schedule(self.schedule, self.lr, self.steps, self.decay_steps)

    def learning_rates(self) -> np.ndarray:
        """η_t for t = 0..steps−1 as a float64 array [steps] (the values optax.sgd will use)."""
        t = np.arange(self.steps)
        return np.broadcast_to(np.asarray(self.learning_rate()(t), np.float64), t.shape).copy()


class SGDTrace(NamedTuple):
    """Recorded iterates of :func:`run_sgd`."""

    steps: np.ndarray  # [R] step index of each record
    raw: jax.Array  # [n_runs, R, m, n] raw iterates
    averages: dict  # name -> [n_runs, R, m, n] averaged iterates


def run_sgd(problem: LeastSquares, cfg: SGDConfig, K0, averagers: dict[str, Averager] | None = None, *, key) -> SGDTrace:
    """Runs ``cfg.n_runs`` independent SGD runs on a least-squares BC loss from K0 (see :func:`run_noisy_sgd`).

    Args:
        problem: data and loss. cfg: see :class:`SGDConfig` (``cfg.noise`` picks minibatch sampling or
            additive Gaussian noise with the minibatch covariance at K̂). K0: [m, n] initial gain.
        averagers: name -> :class:`~gvatheory.core.averaging.Averager`, each updated after every step.
        key: PRNG key.
    """
    m, n = problem.shape
    X = jnp.asarray(problem.X, jnp.float32)
    Y = jnp.asarray(problem.Y, jnp.float32)
    if cfg.noise == "minibatch":

        def grad(K, key):
            idx = jax.random.randint(key, (cfg.batch_size,), 0, X.shape[0])
            return jax.grad(lambda K: jnp.mean(jnp.sum((X[idx] @ K.T - Y[idx]) ** 2, -1)))(K)

    else:
        H = jnp.asarray(problem.hessian(), jnp.float32)
        K_hat = jnp.asarray(problem.minimiser, jnp.float32)
        L = jnp.asarray(np.linalg.cholesky(problem.noise_at_minimiser() / cfg.batch_size + 1e-12 * np.eye(m * n)), jnp.float32)

        def grad(K, key):
            g = 2 * H @ (K - K_hat).reshape(-1) + L @ jax.random.normal(key, (m * n,))
            return g.reshape(m, n)

    return run_noisy_sgd(grad, K0, cfg, averagers, key=key)


def run_noisy_sgd(grad, params0, cfg: SGDConfig, averagers: dict[str, Averager] | None = None, *, key) -> SGDTrace:
    """Runs ``cfg.n_runs`` independent runs of SGD with a stochastic-gradient oracle, averagers inside.

    One jitted ``lax.scan`` per run (records outside, ``record_every`` steps inside), vmapped over
    runs; the step size follows ``cfg.learning_rate()`` through ``optax.sgd``.

    Args:
        grad: ``grad(params, key) -> stochastic gradient`` (a pure JAX function, same pytree as params).
        params0: initial parameters (array or pytree), shared by all runs.
        cfg: see :class:`SGDConfig` (``batch_size`` and ``noise`` are the oracle's business).
        averagers: name -> :class:`~gvatheory.core.averaging.Averager`, each updated after every step.
        key: PRNG key; run i uses ``jax.random.split(key, n_runs)[i]``.

    Returns:
        :class:`SGDTrace`; leaves gain a leading [n_runs, R] pair of axes.
    """
    averagers = dict(averagers or {})
    names = sorted(averagers)
    params0 = jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), params0)
    opt = optax.sgd(cfg.learning_rate())

    def one_run(key):
        carry = (params0, opt.init(params0), tuple(averagers[k].init(params0) for k in names), key)

        def step(carry, _):
            p, s, avg, key = carry
            key, sub = jax.random.split(key)
            upd, s = opt.update(grad(p, sub), s, p)
            p = optax.apply_updates(p, upd)
            avg = tuple(averagers[k].update(a, p) for k, a in zip(names, avg))
            return (p, s, avg, key), None

        def block(carry, _):
            carry, _ = jax.lax.scan(step, carry, None, length=cfg.record_every)
            return carry, (carry[0], tuple(a.average for a in carry[2]))

        _, (raw, avg) = jax.lax.scan(block, carry, None, length=cfg.steps // cfg.record_every)
        return raw, avg

    raw, avg = jax.jit(jax.vmap(one_run))(jax.random.split(key, cfg.n_runs))
    steps = np.arange(1, cfg.steps // cfg.record_every + 1) * cfg.record_every
    return SGDTrace(steps=steps, raw=raw, averages=dict(zip(names, avg)))
