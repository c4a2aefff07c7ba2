"""LQR experts on JAX linearisations, expert demonstrations, and batched closed-loop rollouts with failure."""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gvatheory import linear
from gvatheory.systems import System


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
    K, _ = linear.lqr_gain(linear.LinearSystem(A=A, B=B, Q=system.Q, R=system.R))
    return Expert(system, K)


def start_states(system: System, n: int, *, key, scale: float = 1.0) -> jax.Array:
    """``n`` start states uniform in x_eq ± scale · start_box, [n, n_state]."""
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n}")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    box = jnp.asarray(system.start_box * scale, jnp.float32)
    return jnp.asarray(system.x_eq, jnp.float32) + jax.random.uniform(key, (n, system.n), minval=-1.0, maxval=1.0) * box


class Rollout(NamedTuple):
    """Per-start results of :func:`rollout` (arrays [..., N])."""

    ret: jax.Array  # return = −(cost + failure charge)
    cost: jax.Array  # quadratic cost accumulated while alive
    failed: jax.Array  # bool: the episode was lost before H
    steps: jax.Array  # steps survived (H if never failed)


def rollout(system: System, policy: Callable, x0, horizon: int, *, fail_cost: float) -> Rollout:
    """Runs u = policy(x) from every start in x0 [N, n] for H steps in one ``lax.scan``, vmapped over N.

    A failure (pole fallen, crash, non-finite or huge state) ends the episode: the state is frozen,
    nothing more is accumulated, and each of the remaining steps is charged ``fail_cost``. Returns are
    therefore always finite — a blow-up is counted, never turned into NaN.
    """
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon}")

    def one(x0):
        def step(carry, _):
            x, alive, cost, n = carry
            u = policy(x)
            x_next = system.step(x, u)
            alive = alive & ~system.failed(x)
            cost = cost + jnp.where(alive, system.cost(x, u), 0.0)
            x = jnp.where(alive, x_next, x)
            return (x, alive, cost, n + alive), None

        init = (x0, jnp.array(True), jnp.array(0.0, x0.dtype), jnp.array(0, jnp.int32))
        (_, alive, cost, n), _ = jax.lax.scan(step, init, None, length=horizon)
        cost = jnp.where(jnp.isfinite(cost), cost, 0.0)
        total = cost + (horizon - n) * fail_cost
        return Rollout(ret=-total, cost=cost, failed=n < horizon, steps=n)

    return jax.vmap(one)(x0)


def demonstrations(expert: Expert, n_traj: int, horizon: int, *, key, noise: float, clean_labels: bool = False, scale: float = 1.0):
    """Expert trajectories from the start box, executing u = expert(x) + ε, ε ~ N(0, noise² I).

    Args:
        expert: the expert. n_traj: trajectories. horizon: steps per trajectory. key: PRNG key.
        noise: std of the executed-action noise (it also widens the states visited).
        clean_labels: label each state with the clean expert action instead of the executed noisy one
            (PAPER.md: with clean labels the BC loss itself becomes jumpy).
        scale: multiplies the start box.

    Returns:
        X [n_traj * H, n] states, U [n_traj * H, m] labels, and ``failed`` [n_traj] (the expert lost it).
    """
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon}")
    sys = expert.system
    k0, ke = jax.random.split(key)
    x0 = start_states(sys, n_traj, key=k0, scale=scale)
    eps = noise * jax.random.normal(ke, (horizon, n_traj, sys.m))

    def step(carry, e):
        x, alive = carry
        u_clean = expert(x)
        u = u_clean + e
        alive = alive & ~jax.vmap(sys.failed)(x)
        return (jax.vmap(sys.step)(x, u), alive), (x, u_clean if clean_labels else u)

    (_, alive), (X, U) = jax.lax.scan(step, (x0, jnp.ones(n_traj, bool)), eps)
    return X.reshape(-1, sys.n), U.reshape(-1, sys.m), ~alive
