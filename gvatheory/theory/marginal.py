"""Vignette 1, marginal stability (Proposition 3.1): tiny BC loss, exponentially large rollout gap.

The expert closes the loop on a rotation: A + B K* = blockdiag(R(ω_1), R(ω_2), ...), spectral radius
exactly 1, while the open loop A is unstable and the input reaches only every second state. Perturb
the gain, K = K* + δ D with ‖D‖_F = 1. Then (Block et al. 2024, theory vignette 1)

    BC gap     Σ_{t<H} tr(δD Σ_t δDᵀ)   = O(H δ²),
    rollout gap J_H(K) − J_H(K*)        ≈ e^{2 g δ H} / (4 g δ)   for a destabilising D,

with g = ⟨∇_K ρ(A + BK), D⟩ the first-order growth of the spectral radius ρ. Directions with
ρ(A + BK) < 1 form the "good subset": they stabilise, and their rollout gap is negative.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg

from gvatheory.theory import linear
from gvatheory.infra.validate import require_ints


@dataclasses.dataclass(frozen=True)
class MarginalConfig:
    """The marginally stable system and the perturbation sweep of notebook 01."""

    omegas: tuple = (0.3, 1.1)  # rotation angle (rad / step) of each 2x2 block of the expert closed loop
    instability: float = 0.5  # added to the actuated rows of A: the open loop is unstable
    process_noise: float = 0.01  # std of w_t on every state
    horizons: tuple = (10, 20, 50, 100, 200, 400)  # H for the sweep over horizon
    deltas: tuple = (0.005, 0.01, 0.02)  # δ for the sweep over horizon
    delta_grid: tuple = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)  # δ for the sweep over δ (at H = horizon)
    horizon: int = 200  # H for the sweeps over δ and over random directions
    n_random: int = 500  # random unit directions D
    random_delta: float = 0.02  # δ for the random directions
    n_rollouts: int = 2000  # Monte-Carlo rollouts per overlay point

    def __post_init__(self):
        if len(self.omegas) < 1 or any(not 0 < w < np.pi for w in self.omegas):
            raise ValueError(f"omegas must lie in (0, pi), got {self.omegas}")
        if self.process_noise < 0:
            raise ValueError(f"process_noise must be >= 0, got {self.process_noise}")
        for name in ("horizons", "deltas", "delta_grid"):
            if len(getattr(self, name)) == 0 or any(v <= 0 for v in getattr(self, name)):
                raise ValueError(f"{name} must be a non-empty tuple of positive numbers, got {getattr(self, name)}")
        if any(int(h) != h for h in self.horizons):
            raise ValueError(f"horizons must be integers, got {self.horizons}")
        require_ints(self, ("horizon", "n_random", "n_rollouts"))
        if self.random_delta <= 0:
            raise ValueError(f"random_delta must be > 0, got {self.random_delta}")


def marginal_system(cfg: MarginalConfig) -> tuple[linear.LinearSystem, np.ndarray]:
    """The system and its expert gain K* [m, n], with A + B K* orthogonal (spectral radius 1).

    Each 2x2 block has state (p, v); the input drives v only. A's p-row is the rotation's, A's v-row
    is the rotation's plus ``instability``, and K* removes that excess.
    """
    blocks = [np.array([[np.cos(w), -np.sin(w)], [np.sin(w), np.cos(w)]]) for w in cfg.omegas]
    M = scipy.linalg.block_diag(*blocks)
    n, m = M.shape[0], len(blocks)
    B = np.zeros((n, m))
    B[1::2, :] = np.eye(m)
    A = M.copy()
    A[1::2, :] += cfg.instability * B[1::2, :] @ np.ones((m, n)) / m
    K_star = np.linalg.lstsq(B, M - A, rcond=None)[0]
    sys = linear.LinearSystem(A=A, B=B, Q=np.eye(n), R=np.eye(m), W=cfg.process_noise**2 * np.eye(n))
    return sys, K_star


def spectral_radius_gradient(sys: linear.LinearSystem, K) -> np.ndarray:
    """∇_K ρ(A + BK) [m, n] at K, from first-order eigenvalue perturbation.

    For a simple eigenvalue λ with right/left eigenvectors v, w (wᴴM = λwᴴ): dλ = wᴴ B dK v / (wᴴ v),
    and d|λ| = Re(λ̄ dλ) / |λ|, so ∇_K |λ| = Re(λ̄ / |λ| · (Bᵀ w̄) vᵀ / (wᴴ v)).
    When several eigenvalues share the top modulus (a rotation has them all), the steepest is returned.
    """
    M = linear.closed_loop(sys, K)
    lam, vl, vr = scipy.linalg.eig(M, left=True, right=True)
    top = np.isclose(np.abs(lam), np.abs(lam).max(), rtol=1e-9, atol=1e-12)
    best, best_norm = None, -1.0
    for i in np.flatnonzero(top):
        w, v = vl[:, i], vr[:, i]
        dlam = np.outer(sys.B.T @ np.conj(w), v) / (np.conj(w) @ v)
        g = np.real(np.conj(lam[i]) / abs(lam[i]) * dlam)
        if np.linalg.norm(g) > best_norm:
            best, best_norm = g, np.linalg.norm(g)
    return best


def worst_direction(sys: linear.LinearSystem, K_star) -> np.ndarray:
    """The unit-Frobenius direction D [m, n] along which ρ(A + B(K* + δD)) grows fastest."""
    g = spectral_radius_gradient(sys, K_star)
    return g / np.linalg.norm(g)


def bc_gap(sys: linear.LinearSystem, K_star, D, deltas, horizon: int) -> np.ndarray:
    """Σ_{t<H} E‖δ D x_t‖² on the expert's states: the BC loss of K* + δD summed over the horizon.

    Returns [len(deltas), H]: entry [i, h−1] is the gap accumulated over the first h steps.
    """
    S = linear.state_covariances(sys, K_star, horizon)
    per_step = np.einsum("ij,tjk,ik->t", D, S, D)
    return np.asarray(deltas, float)[:, None] ** 2 * np.cumsum(per_step)[None, :]


def rollout_gap(sys: linear.LinearSystem, K_star, D, deltas, horizon: int) -> np.ndarray:
    """J_h(K* + δD) − J_h(K*) for h = 1..H, exact (Lyapunov), shape [len(deltas), H]."""
    K = np.asarray(K_star)[None] + np.asarray(deltas, float)[:, None, None] * np.asarray(D)[None]
    return np.cumsum(linear.cost_exact(sys, K, horizon), -1) - np.cumsum(linear.cost_exact(sys, K_star, horizon))


def random_directions(sys: linear.LinearSystem, n: int, *, seed: int) -> np.ndarray:
    """``n`` Gaussian directions in gain space normalised to ‖D‖_F = 1, [n, m, n_state]."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((n, sys.m, sys.n))
    return D / np.linalg.norm(D, axis=(1, 2), keepdims=True)
