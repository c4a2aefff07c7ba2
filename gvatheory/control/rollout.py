"""Closed-loop rollouts of the JAX systems (one ``lax.scan``, vmapped over starts), and expert demonstrations.

:class:`Rollout` is the one result type of every rollout in the package: these JAX systems, the C
MuJoCo backend (:mod:`gvatheory.control.mujoco`) and the linear-theory simulator
(:mod:`gvatheory.theory.linear`).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from gvatheory.control.lqr import Expert
from gvatheory.control.systems import System
from gvatheory.infra.validate import require_int

BLOWUP = 1e3  # a state coordinate beyond this (or non-finite) counts as diverged, not merely failed


class Rollout(NamedTuple):
    """Per-episode results of a rollout (arrays [..., N]).

    ``ret`` is what the experiments compare: −(cost + failure charge) on a cost-based system, the
    summed reward of a MuJoCo task. ``cost`` is the cost accumulated while running (−reward sum for a
    MuJoCo task, which charges nothing for a failure).
    """

    ret: jax.Array  # return
    cost: jax.Array  # cost accumulated while the episode ran
    failed: jax.Array  # bool: the episode was lost before H (a fall, a crash or a divergence)
    diverged: jax.Array  # bool: the state blew up (non-finite or huge): counted, never turned into NaN
    steps: jax.Array  # steps survived (H if never failed)


def start_states(system: System, n: int, *, key, scale: float = 1.0) -> jax.Array:
    """``n`` start states uniform in x_eq ± scale · start_box, [n, n_state]."""
    require_int("n", n, 1)
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    box = jnp.asarray(system.start_box * scale, jnp.float32)
    return jnp.asarray(system.x_eq, jnp.float32) + jax.random.uniform(key, (n, system.n), minval=-1.0, maxval=1.0) * box


def _blown_up(x):
    return ~jnp.all(jnp.isfinite(x)) | jnp.any(jnp.abs(x) > BLOWUP)


def rollout(system: System, policy: Callable, x0, horizon: int, *, fail_cost: float) -> Rollout:
    """Runs u = policy(x) from every start in x0 [N, n] for H steps in one ``lax.scan``, vmapped over N.

    A failure (pole fallen, crash, non-finite or huge state) ends the episode: the state is frozen,
    nothing more is accumulated, and each of the remaining steps is charged ``fail_cost``. Returns are
    therefore always finite — a blow-up is counted (``diverged``), never turned into NaN.
    """
    require_int("horizon", horizon, 1)

    def one(x0):
        def step(carry, _):
            x, alive, cost, n, div = carry
            u = policy(x)
            x_next = system.step(x, u)
            lost = system.failed(x)
            div = div | (alive & lost & _blown_up(x))
            alive = alive & ~lost
            cost = cost + jnp.where(alive, system.cost(x, u), 0.0)
            x = jnp.where(alive, x_next, x)
            return (x, alive, cost, n + alive, div), None

        init = (x0, jnp.array(True), jnp.array(0.0, x0.dtype), jnp.array(0, jnp.int32), jnp.array(False))
        (_, alive, cost, n, div), _ = jax.lax.scan(step, init, None, length=horizon)
        cost = jnp.where(jnp.isfinite(cost), cost, 0.0)
        total = cost + (horizon - n) * fail_cost
        return Rollout(ret=-total, cost=cost, failed=n < horizon, diverged=div, steps=n)

    return jax.vmap(one)(x0)


def demonstrations(expert: Expert, n_traj: int, horizon: int, *, key, noise: float, clean_labels: bool = False, scale: float = 1.0):
    """Expert trajectories from the start box, executing u = expert(x) + ε, ε ~ N(0, noise² I).

    Args:
        expert: the expert. n_traj: trajectories. horizon: steps per trajectory. key: PRNG key.
        noise: std of the executed-action noise (it also widens the states visited).
        clean_labels: label each state with the clean expert action instead of the executed noisy one
            (with clean labels the BC loss itself becomes jumpy).
        scale: multiplies the start box.

    Returns:
        X [n_traj * H, n] states, U [n_traj * H, m] labels, and ``failed`` [n_traj] (the expert lost it).
    """
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    require_int("horizon", horizon, 1)
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
