"""Linear closed-loop systems: LQR expert, exact (Lyapunov) and Monte-Carlo rollout cost, BC loss.

The model of all three theory vignettes of Block et al. 2024 (notebooks 01-03):

    x_{t+1} = A x_t + B u_t + w_t,   w_t ~ N(0, W),   x_0 ~ N(0, Σ_0),   u_t = K x_t,
    J_H(K) = E Σ_{t<H} x_tᵀ (Q + Kᵀ R K) x_t.

Exact quantities are float64 numpy/scipy; simulation is float32 JAX (vmapped rollouts in one scan).
"""
from __future__ import annotations

import dataclasses
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from gvatheory.control import lqr
from gvatheory.control.rollout import Rollout
from gvatheory.infra.validate import require_int


def _matrix(name, value, shape):
    a = np.asarray(value, dtype=np.float64)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a


def _psd(name, a, strict=False):
    if not np.allclose(a, a.T, atol=1e-10):
        raise ValueError(f"{name} must be symmetric")
    lo = np.linalg.eigvalsh(a).min()
    if lo < -1e-10 or (strict and lo <= 0):
        raise ValueError(f"{name} must be positive {'definite' if strict else 'semi-definite'}, min eigenvalue {lo:.3g}")


@dataclasses.dataclass(frozen=True, eq=False)
class LinearSystem:
    """A discrete-time linear system with quadratic cost and Gaussian noise.

    Shapes: A [n, n], B [n, m], Q [n, n] (PSD), R [m, m] (PD), W [n, n] process-noise covariance (PSD),
    Sigma0 [n, n] covariance of the initial state (PSD). Missing W and Sigma0 default to 0 and I.
    """

    A: np.ndarray  # [n, n] open-loop dynamics
    B: np.ndarray  # [n, m] input matrix
    Q: np.ndarray  # [n, n] state cost
    R: np.ndarray  # [m, m] input cost
    W: np.ndarray | None = None  # [n, n] process-noise covariance; None = noise-free
    Sigma0: np.ndarray | None = None  # [n, n] initial-state covariance; None = identity

    def __post_init__(self):
        A = np.asarray(self.A, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
            raise ValueError(f"A must be a non-empty square matrix, got shape {A.shape}")
        n = A.shape[0]
        B = np.asarray(self.B, dtype=np.float64)
        if B.ndim != 2 or B.shape[0] != n or B.shape[1] == 0:
            raise ValueError(f"B must have shape ({n}, m) with m >= 1, got {B.shape}")
        m = B.shape[1]
        fields = dict(
            A=_matrix("A", A, (n, n)),
            B=_matrix("B", B, (n, m)),
            Q=_matrix("Q", self.Q, (n, n)),
            R=_matrix("R", self.R, (m, m)),
            W=_matrix("W", np.zeros((n, n)) if self.W is None else self.W, (n, n)),
            Sigma0=_matrix("Sigma0", np.eye(n) if self.Sigma0 is None else self.Sigma0, (n, n)),
        )
        _psd("Q", fields["Q"])
        _psd("R", fields["R"], strict=True)
        _psd("W", fields["W"])
        _psd("Sigma0", fields["Sigma0"])
        for k, v in fields.items():
            v.setflags(write=False)
            object.__setattr__(self, k, v)

    @property
    def n(self) -> int:
        """State dimension."""
        return self.A.shape[0]

    @property
    def m(self) -> int:
        """Input dimension."""
        return self.B.shape[1]

    def check_gain(self, K) -> np.ndarray:
        """Returns K as a float64 [m, n] array, or raises ValueError naming the expected shape."""
        return _matrix("K", K, (self.m, self.n))


def psd_sqrt(S) -> np.ndarray:
    """A square root L with L Lᵀ = S of a PSD matrix (eigendecomposition; works when S is singular)."""
    w, V = np.linalg.eigh(np.asarray(S, dtype=np.float64))
    return V * np.sqrt(np.clip(w, 0.0, None))


def lqr_gain(sys: LinearSystem) -> tuple[np.ndarray, np.ndarray]:
    """Infinite-horizon LQR gain of ``sys`` (:func:`gvatheory.control.lqr.lqr_gain`: u = K x, K [m, n]; P [n, n])."""
    return lqr.lqr_gain(sys.A, sys.B, sys.Q, sys.R)


def closed_loop(sys: LinearSystem, K) -> np.ndarray:
    """Closed-loop matrix A + B K, [..., n, n] for K [..., m, n]."""
    return sys.A + sys.B @ _gains(sys, K)


def _gains(sys, K):
    K = np.asarray(K, dtype=np.float64)
    if K.shape[-2:] != (sys.m, sys.n):
        raise ValueError(f"K must have shape [..., {sys.m}, {sys.n}], got {K.shape}")
    return K


def spectral_radius(M) -> np.ndarray:
    """Largest eigenvalue modulus of a square matrix (batched over leading axes)."""
    return np.max(np.abs(np.linalg.eigvals(np.asarray(M, dtype=np.float64))), axis=-1)


def state_covariances(sys: LinearSystem, K, horizon: int) -> np.ndarray:
    """Exact state covariances Σ_t = E x_t x_tᵀ, t = 0..H−1, under u = K x (Lyapunov recursion).

    Σ_{t+1} = M Σ_t Mᵀ + W with M = A + BK. K may be batched, [..., m, n]; returns [..., H, n, n]
    in float64, with inf where the closed loop overflows (:func:`cost_exact` then reports inf).
    """
    require_int("horizon", horizon, 1)
    M = closed_loop(sys, K)
    out = np.empty(M.shape[:-2] + (horizon, sys.n, sys.n))
    S = np.broadcast_to(sys.Sigma0, M.shape).copy()
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(horizon):  # exact float64 recursion, batched over gains: H <= 1e4 is milliseconds
            out[..., t, :, :] = S
            S = M @ S @ np.swapaxes(M, -1, -2) + sys.W
    return out


def cost_exact(sys: LinearSystem, K, horizon: int) -> np.ndarray:
    """Exact expected cost per step, E x_tᵀ (Q + Kᵀ R K) x_t for t < H: [..., H] for K [..., m, n].

    ``cost_exact(...).sum(-1)`` is J_H(K); the cumulative sum gives J_h for every h <= H at once.
    A closed loop that overflows float64 gives inf, never NaN.
    """
    K = _gains(sys, K)
    C = sys.Q + np.swapaxes(K, -1, -2) @ sys.R @ K
    S = state_covariances(sys, K, horizon)
    with np.errstate(over="ignore", invalid="ignore"):
        c = np.einsum("...ij,...tji->...t", C, S)
    return np.where(np.isfinite(c), c, np.inf)


def stationary_covariance(M, W) -> np.ndarray:
    """Σ = M Σ Mᵀ + W (scipy's discrete Lyapunov solver). Requires spectral radius of M < 1."""
    M = np.asarray(M, dtype=np.float64)
    if spectral_radius(M) >= 1:
        raise ValueError(f"M must be stable (spectral radius < 1), got {spectral_radius(M):.4g}")
    return scipy.linalg.solve_discrete_lyapunov(M, np.asarray(W, dtype=np.float64))


def bc_loss(K, K_star, Sigma) -> np.ndarray:
    """Population BC loss E‖(K − K*) x‖² = tr((K − K*) Σ (K − K*)ᵀ) for states x with E xxᵀ = Σ.

    K may carry leading batch axes ([..., m, n]); K_star [m, n], Sigma [n, n].
    """
    D = np.asarray(K, dtype=np.float64) - np.asarray(K_star, dtype=np.float64)
    return np.einsum("...ij,jk,...ik->...", D, np.asarray(Sigma, dtype=np.float64), D)


def simulate(sys: LinearSystem, K, horizon: int, n_rollouts: int, *, key, threshold: float = 1e6) -> Rollout:
    """Monte-Carlo rollouts of u = K x, all at once (one vmapped ``lax.scan``).

    A rollout whose state norm exceeds ``threshold`` is marked diverged and frozen there: its cost
    stops accumulating, so nothing overflows to inf or NaN. Count ``diverged`` rather than averaging
    a cost that would be meaningless.

    Args:
        sys: the system; K: [m, n] gain; horizon: H >= 1; n_rollouts: N >= 1; key: PRNG key.
        threshold: divergence radius.

    Returns:
        :class:`gvatheory.control.rollout.Rollout` with arrays of shape [N] (``ret`` = −``cost``; ``failed`` = ``diverged``).
    """
    K = sys.check_gain(K)
    require_int("horizon", horizon, 1)
    require_int("n_rollouts", n_rollouts, 1)
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    M = jnp.asarray(sys.A + sys.B @ K, jnp.float32)
    C = jnp.asarray(sys.Q + K.T @ sys.R @ K, jnp.float32)
    LW, L0 = (jnp.asarray(psd_sqrt(S), jnp.float32) for S in (sys.W, sys.Sigma0))
    k0, kw = jax.random.split(key)
    x0 = jax.random.normal(k0, (n_rollouts, sys.n)) @ L0.T
    noise = jax.random.normal(kw, (horizon, n_rollouts, sys.n)) @ LW.T
    return _simulate(M, C, x0, noise, threshold)


@jax.jit
def _simulate(M, C, x0, noise, threshold):
    def step(carry, w):
        x, cost, alive, steps = carry
        ok = alive & jnp.all(jnp.isfinite(x), -1) & (jnp.linalg.norm(x, axis=-1) <= threshold)
        cost = cost + jnp.where(ok, jnp.einsum("ni,ij,nj->n", x, C, x), 0.0)
        x_next = x @ M.T + w
        x = jnp.where(ok[:, None], x_next, x)  # a diverged rollout stays frozen: no inf, no NaN
        return (x, cost, ok, steps + ok), None

    n = x0.shape[0]
    init = (x0, jnp.zeros(n), jnp.ones(n, bool), jnp.zeros(n, jnp.int32))
    (x, cost, alive, steps), _ = jax.lax.scan(step, init, noise)
    return Rollout(ret=-cost, cost=cost, failed=~alive, diverged=~alive, steps=steps)


def bc_dataset(sys: LinearSystem, K_star, horizon: int, n_traj: int, *, key, label_noise: float = 0.0):
    """Expert demonstrations: states visited by u = K* x (+ executed action noise) and action labels.

    The expert executes u = K* x + ε with ε ~ N(0, label_noise² I); the labels are the executed actions,
    so the least-squares fit is unbiased and label_noise sets the gradient noise floor.

    Returns:
        X: [n_traj * H, n] states, Y: [n_traj * H, m] action labels (float32 JAX arrays).
    """
    K_star = sys.check_gain(K_star)
    if label_noise < 0:
        raise ValueError(f"label_noise must be >= 0, got {label_noise}")
    require_int("n_traj", n_traj, 1)
    require_int("horizon", horizon, 1)
    A, B, K = (jnp.asarray(a, jnp.float32) for a in (sys.A, sys.B, K_star))
    LW, L0 = (jnp.asarray(psd_sqrt(S), jnp.float32) for S in (sys.W, sys.Sigma0))
    k0, kw, ke = jax.random.split(key, 3)
    x0 = jax.random.normal(k0, (n_traj, sys.n)) @ L0.T
    w = jax.random.normal(kw, (horizon, n_traj, sys.n)) @ LW.T
    eps = label_noise * jax.random.normal(ke, (horizon, n_traj, sys.m))

    def step(x, we):
        w_t, e_t = we
        u = x @ K.T + e_t
        return x @ A.T + u @ B.T + w_t, (x, u)

    _, (X, Y) = jax.lax.scan(step, x0, (w, eps))
    return X.reshape(-1, sys.n), Y.reshape(-1, sys.m)
