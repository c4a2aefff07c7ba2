"""LQR: the one Riccati solver and sign convention of the package, and linear experts for the JAX systems.

Convention everywhere (theory, JAX systems, MuJoCo): the control law is u = u_eq + K (x − x_eq), so the
LQR gain is K = −(R + BᵀPB)⁻¹ BᵀPA, with P the solution of the discrete algebraic Riccati equation.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from gvatheory.control.systems import System


def lqr_gain(A, B, Q, R) -> tuple[np.ndarray, np.ndarray]:
    """Infinite-horizon discrete-time LQR from scipy's Riccati solver.

    Args:
        A: [n, n], B: [n, m] dynamics x' = A x + B u; Q: [n, n] PSD state cost; R: [m, m] PD input cost.

    Returns:
        K: [m, n], the optimal policy u = K x (note the sign: K = −(R + BᵀPB)⁻¹ BᵀPA).
        P: [n, n], the Riccati solution P = Q + AᵀPA − AᵀPB (R + BᵀPB)⁻¹ BᵀPA.
    """
    A, B, Q, R = (np.asarray(a, np.float64) for a in (A, B, Q, R))
    P = scipy.linalg.solve_discrete_are(A, B, Q, R)
    K = -np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
    return K, P


def linearize(system: System) -> tuple[np.ndarray, np.ndarray]:
    """Discrete-time Jacobians A = ∂step/∂x [n, n], B = ∂step/∂u [n, m] at (x_eq, u_eq) (JAX autodiff)."""
    x, u = jnp.asarray(system.x_eq, jnp.float32), jnp.asarray(system.u_eq, jnp.float32)
    A, B = jax.jacfwd(system.step, argnums=(0, 1))(x, u)
    return np.asarray(A, np.float64), np.asarray(B, np.float64)


@dataclasses.dataclass(frozen=True, eq=False)
class Expert:
    """A linear state-feedback expert u = u_eq + K (x − x_eq)."""

    system: System
    K: np.ndarray  # [m, n]

    def __call__(self, x):
        """The expert's action for states x [..., n] -> [..., m]."""
        return self.system.u_eq + (x - self.system.x_eq) @ jnp.asarray(self.K, x.dtype).T


def lqr_expert(system: System) -> Expert:
    """LQR on the linearisation at the equilibrium with the system's Q and R (scipy's DARE)."""
    A, B = linearize(system)
    K, _ = lqr_gain(A, B, system.Q, system.R)
    return Expert(system, K)
