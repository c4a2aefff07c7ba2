"""Systems, experts and rollouts: closed-form dynamics vs autodiff Lagrangian, LQR stability, failure."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gvatheory.control import lqr, rollout, systems
from gvatheory.theory import linear


@pytest.mark.parametrize(
    "lagr, ode, cfg, n_q",
    [
        (systems.cartpole_lagrangian, systems.cartpole_ode, systems.CartPoleConfig(), 2),
        (systems.double_pendulum_lagrangian, systems.double_pendulum_ode, systems.DoublePendulumConfig(), 3),
    ],
)
def test_closed_form_equals_autodiff_euler_lagrange(lagr, ode, cfg, n_q):
    force = lambda q, qd, u: jnp.zeros(n_q).at[0].set(u[0]) - cfg.damping * qd
    ref = systems.lagrangian_dynamics(lagr(cfg), force)
    f = ode(cfg)
    xs = jax.random.normal(jax.random.key(0), (50, 2 * n_q)) * 1.5
    us = jax.random.normal(jax.random.key(1), (50, 1)) * 5
    np.testing.assert_allclose(jax.vmap(f)(xs, us), jax.vmap(ref)(xs, us), rtol=2e-4, atol=2e-4)


def test_energy_is_conserved_without_damping_and_input():
    cfg = systems.DoublePendulumConfig(damping=0.0, dt=0.002)
    L = systems.double_pendulum_lagrangian(cfg)
    f = systems.double_pendulum_ode(cfg)

    def energy(x):
        q, qd = jnp.split(x, 2)
        # E = q̇ · ∂L/∂q̇ − L
        return qd @ jax.grad(L, argnums=1)(q, qd) - L(q, qd)

    x = jnp.array([0.0, 0.3, -0.2, 0.1, 0.0, 0.5])
    e0 = energy(x)
    step = jax.jit(lambda x: systems.rk4(f, x, jnp.zeros(1), cfg.dt))
    for _ in range(1000):  # 2 s of free swinging
        x = step(x)
    assert float(energy(x)) == pytest.approx(float(e0), rel=1e-3)


@pytest.mark.parametrize("name", sorted(systems.SYSTEMS))
def test_open_loop_unstable_expert_stabilises_every_start(name):
    system = systems.make(name)
    A, B = lqr.linearize(system)
    assert linear.spectral_radius(A) >= 1.0 - 1e-6  # no system here is stable without control
    # the linearisation is the Jacobian: check against central differences
    eps = 1e-3
    x0, u0 = jnp.asarray(system.x_eq, jnp.float32), jnp.asarray(system.u_eq, jnp.float32)
    fd = np.stack([(system.step(x0 + eps * e, u0) - system.step(x0 - eps * e, u0)) / (2 * eps) for e in jnp.eye(system.n)], 1)
    np.testing.assert_allclose(A, fd, atol=5e-3)
    expert = lqr.lqr_expert(system)
    assert linear.spectral_radius(A + B @ expert.K) < 1
    x0s = rollout.start_states(system, 64, key=jax.random.key(0))
    r = rollout.rollout(system, expert, x0s, 1000, fail_cost=20.0)
    assert not bool(r.failed.any()), "the expert must keep every evaluation start alive for H = 1000"


def test_failure_ends_the_rollout_and_is_charged():
    system = systems.make("double_pendulum")
    x0s = rollout.start_states(system, 16, key=jax.random.key(0))
    zero = lambda x: jnp.zeros(1)  # no control: the poles fall
    r = rollout.rollout(system, zero, x0s, 300, fail_cost=20.0)
    assert bool(r.failed.all()) and int(r.steps.max()) < 300
    np.testing.assert_allclose(np.asarray(r.ret), -(np.asarray(r.cost) + (300 - np.asarray(r.steps)) * 20.0), rtol=1e-5)
    assert np.all(np.isfinite(np.asarray(r.ret)))
    # a policy that blows the state up to inf/NaN is still counted, not NaN
    boom = lambda x: jnp.full(1, 1e30)
    r = rollout.rollout(system, boom, x0s, 50, fail_cost=20.0)
    assert bool(r.failed.all()) and np.all(np.isfinite(np.asarray(r.ret)))


def test_demonstrations_labels():
    system = systems.make("cartpole")
    expert = lqr.lqr_expert(system)
    X, U, failed = rollout.demonstrations(expert, 8, 50, key=jax.random.key(0), noise=0.3, clean_labels=True)
    np.testing.assert_allclose(np.asarray(U), np.asarray(expert(X)), rtol=1e-5, atol=1e-5)
    X2, U2, _ = rollout.demonstrations(expert, 8, 50, key=jax.random.key(0), noise=0.3)
    np.testing.assert_allclose(np.asarray(X2), np.asarray(X))  # same key: same states; labels differ by the noise
    resid = np.asarray(U2) - np.asarray(expert(X2))
    assert resid.std() == pytest.approx(0.3, rel=0.1)
    assert not bool(failed.any())


def test_invalid_arguments():
    with pytest.raises(ValueError, match="system"):
        systems.make("acrobot")
    system = systems.make("cartpole")
    with pytest.raises(ValueError, match="scale"):
        rollout.start_states(system, 4, key=jax.random.key(0), scale=0.0)
    with pytest.raises(ValueError, match="horizon"):
        rollout.rollout(system, lqr.lqr_expert(system), jnp.zeros((2, 4)), 0, fail_cost=1.0)
    with pytest.raises(ValueError, match="noise"):
        rollout.demonstrations(lqr.lqr_expert(system), 2, 10, key=jax.random.key(0), noise=-1.0)
