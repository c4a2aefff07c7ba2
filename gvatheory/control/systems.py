"""JAX-native closed-loop systems with unstable open loops: cart-pole, double pendulum on a cart, planar quadrotor.

Each system is a pure, differentiable, vmappable ``step(x, u) -> x_next`` (RK4 on continuous
dynamics), a quadratic cost around an equilibrium (x_eq, u_eq), and a failure test (a fallen pole, a
crashed quadrotor). The pendulums are Lagrangian: M(q) q̈ = ∂L/∂q − (∂²L/∂q̇∂q) q̇ + τ follows from L = T − V by
JAX autodiff (:func:`lagrangian_dynamics`), so the model is exactly what the kinetic and potential
energies say: the Lagrangian is written down, and the closed-form equations used for speed are
tested against its autodiff Euler–Lagrange equations.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

G = 9.81  # m/s²


@dataclasses.dataclass(frozen=True, eq=False)
class System:
    """A controlled system: state [n], input [m], equilibrium, cost, failure test, start-state box."""

    name: str
    step: Callable  # (x [n], u [m]) -> x_next [n]: one control period (RK4)
    x_eq: np.ndarray  # [n] equilibrium state
    u_eq: np.ndarray  # [m] equilibrium input
    Q: np.ndarray  # [n, n] state cost on x − x_eq
    R: np.ndarray  # [m, m] input cost on u − u_eq
    failed: Callable  # x [n] -> bool: the episode is lost (pole fallen, craft crashed, state blown up)
    start_box: np.ndarray  # [n] half-widths of the box of start states around x_eq
    dt: float  # control period (s)
    labels: tuple  # names of the state coordinates, for plots

    @property
    def n(self) -> int:
        """State dimension."""
        return self.x_eq.shape[0]

    @property
    def m(self) -> int:
        """Input dimension."""
        return self.u_eq.shape[0]

    def cost(self, x, u):
        """Per-step quadratic cost (x − x_eq)ᵀQ(x − x_eq) + (u − u_eq)ᵀR(u − u_eq); batched over leading axes."""
        dx, du = x - self.x_eq, u - self.u_eq
        return jnp.einsum("...i,ij,...j->...", dx, self.Q, dx) + jnp.einsum("...i,ij,...j->...", du, self.R, du)


def rk4(f, x, u, dt):
    """One classical Runge–Kutta step of ẋ = f(x, u) with u held constant."""
    k1 = f(x, u)
    k2 = f(x + 0.5 * dt * k1, u)
    k3 = f(x + 0.5 * dt * k2, u)
    k4 = f(x + dt * k3, u)
    return x + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def lagrangian_dynamics(lagrangian, generalized_force):
    """ẋ = f(x, u) for x = (q, q̇) from L(q, q̇) and the generalised force τ(q, q̇, u), by autodiff."""

    def f(x, u):
        q, qd = jnp.split(x, 2)
        M = jax.hessian(lagrangian, argnums=1)(q, qd)
        dL_dq = jax.grad(lagrangian, argnums=0)(q, qd)
        C = jax.jacfwd(jax.grad(lagrangian, argnums=1), argnums=0)(q, qd)
        qdd = jnp.linalg.solve(M, dL_dq - C @ qd + generalized_force(q, qd, u))
        return jnp.concatenate([qd, qdd])

    return f


def solve_small(M, b):
    """Solves M y = b for a 2x2 or 3x3 M by Cramer's rule: on a CPU, XLA's batched LU for tiny
    matrices costs more than the rest of a pendulum step."""
    if M.shape == (2, 2):
        det = M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]
        return jnp.array([M[1, 1] * b[0] - M[0, 1] * b[1], M[0, 0] * b[1] - M[1, 0] * b[0]]) / det
    cols = [M[:, 0], M[:, 1], M[:, 2]]
    det = jnp.dot(cols[0], jnp.cross(cols[1], cols[2]))
    return jnp.array([jnp.dot(b, jnp.cross(cols[1], cols[2])), jnp.dot(cols[0], jnp.cross(b, cols[2])), jnp.dot(cols[0], jnp.cross(cols[1], b))]) / det


def _angle_failure(angle_idx, limit, pos_idx=None, pos_limit=None, blowup=1e3):
    def failed(x):
        bad = jnp.any(jnp.abs(x[jnp.array(angle_idx)]) > limit) | ~jnp.all(jnp.isfinite(x)) | jnp.any(jnp.abs(x) > blowup)
        if pos_idx is not None:
            bad = bad | jnp.any(jnp.abs(x[jnp.array(pos_idx)]) > pos_limit)
        return bad

    return failed


@dataclasses.dataclass(frozen=True)
class CartPoleConfig:
    """Cart-pole: a point mass on a massless rod, hinged on a cart driven by a horizontal force."""

    cart_mass: float = 1.0  # kg
    pole_mass: float = 0.1  # kg
    pole_length: float = 0.5  # m, hinge to mass
    damping: float = 0.01  # viscous friction on cart and hinge
    dt: float = 0.02  # s per control step
    start_box: tuple = (0.5, 0.3, 0.5, 0.5)  # half-widths of (x, θ, ẋ, θ̇) for start states
    fall_angle: float = 0.8  # rad from upright: the pole has fallen
    track: float = 5.0  # m: the cart left the track


@dataclasses.dataclass(frozen=True)
class DoublePendulumConfig:
    """Double inverted pendulum on a cart: two point masses on massless rods, angles from upright."""

    cart_mass: float = 1.0  # kg
    masses: tuple = (0.3, 0.3)  # kg, first and second pendulum
    lengths: tuple = (0.5, 0.5)  # m
    damping: float = 0.01  # viscous friction on every joint
    dt: float = 0.02  # s per control step
    start_box: tuple = (0.3, 0.15, 0.15, 0.3, 0.3, 0.3)  # half-widths of (x, θ1, θ2, ẋ, θ̇1, θ̇2)
    fall_angle: float = 0.8  # rad: a pole has fallen
    track: float = 5.0  # m


@dataclasses.dataclass(frozen=True)
class QuadrotorConfig:
    """Planar quadrotor: two rotors at ±arm on a rigid body, hovering; inputs are the two thrusts."""

    mass: float = 1.0  # kg
    inertia: float = 0.01  # kg m²
    arm: float = 0.2  # m
    dt: float = 0.02  # s
    start_box: tuple = (0.5, 0.5, 0.4, 0.5, 0.5, 1.0)  # (x, y, φ, ẋ, ẏ, φ̇)
    fall_angle: float = 1.2  # rad of roll: unrecoverable
    arena: float = 5.0  # m


def cartpole_lagrangian(cfg: CartPoleConfig):
    """L(q, q̇) = T − V of the cart-pole, q = (x, θ), θ from upright."""
    M, m, l = cfg.cart_mass, cfg.pole_mass, cfg.pole_length

    def L(q, qd):
        x, th = q
        xd, thd = qd
        vx, vy = xd + l * jnp.cos(th) * thd, -l * jnp.sin(th) * thd
        return 0.5 * M * xd**2 + 0.5 * m * (vx**2 + vy**2) - m * G * l * jnp.cos(th)

    return L


def cartpole_ode(cfg: CartPoleConfig):
    """ẋ = f(x, u) of the cart-pole in closed form (the Euler–Lagrange equations of cartpole_lagrangian)."""
    M, m, l, d = cfg.cart_mass, cfg.pole_mass, cfg.pole_length, cfg.damping

    def f(x, u):
        _, th, xd, thd = x
        s, c = jnp.sin(th), jnp.cos(th)
        mass = jnp.array([[M + m, m * l * c], [m * l * c, m * l * l]])
        rhs = jnp.array([u[0] + m * l * s * thd**2 - d * xd, m * G * l * s - d * thd])
        return jnp.concatenate([x[2:], solve_small(mass, rhs)])

    return f


def cartpole(cfg: CartPoleConfig = CartPoleConfig()) -> System:
    """The cart-pole balanced upright; input: force on the cart (N)."""
    f = cartpole_ode(cfg)
    return System(
        name="cartpole",
        step=lambda x, u: rk4(f, x, u, cfg.dt),
        x_eq=np.zeros(4),
        u_eq=np.zeros(1),
        Q=np.diag([1.0, 10.0, 0.1, 0.1]),
        R=0.1 * np.eye(1),
        failed=_angle_failure([1], cfg.fall_angle, [0], cfg.track),
        start_box=np.array(cfg.start_box),
        dt=cfg.dt,
        labels=("x", "θ", "ẋ", "θ̇"),
    )


def double_pendulum_lagrangian(cfg: DoublePendulumConfig):
    """L(q, q̇) = T − V of the double pendulum on a cart, q = (x, θ1, θ2), absolute angles from upright."""
    M, (m1, m2), (l1, l2) = cfg.cart_mass, cfg.masses, cfg.lengths

    def L(q, qd):
        x, t1, t2 = q
        xd, t1d, t2d = qd
        v1 = jnp.array([xd + l1 * jnp.cos(t1) * t1d, -l1 * jnp.sin(t1) * t1d])
        v2 = v1 + jnp.array([l2 * jnp.cos(t2) * t2d, -l2 * jnp.sin(t2) * t2d])
        T = 0.5 * M * xd**2 + 0.5 * m1 * v1 @ v1 + 0.5 * m2 * v2 @ v2
        V = G * (m1 * l1 * jnp.cos(t1) + m2 * (l1 * jnp.cos(t1) + l2 * jnp.cos(t2)))
        return T - V

    return L


def double_pendulum_ode(cfg: DoublePendulumConfig):
    """ẋ = f(x, u) in closed form: M(q) q̈ = τ + (centripetal and gravity terms), derived by hand from
    double_pendulum_lagrangian (tests/test_systems.py checks it against the autodiff Euler–Lagrange
    equations). Four times cheaper per step than differentiating L inside every RK4 stage."""
    M, (m1, m2), (l1, l2), d = cfg.cart_mass, cfg.masses, cfg.lengths, cfg.damping
    m12 = m1 + m2

    def f(x, u):
        _, t1, t2, xd, t1d, t2d = x
        s1, c1, s2, c2 = jnp.sin(t1), jnp.cos(t1), jnp.sin(t2), jnp.cos(t2)
        s12, c12 = jnp.sin(t1 - t2), jnp.cos(t1 - t2)
        mass = jnp.array(
            [
                [M + m12, m12 * l1 * c1, m2 * l2 * c2],
                [m12 * l1 * c1, m12 * l1**2, m2 * l1 * l2 * c12],
                [m2 * l2 * c2, m2 * l1 * l2 * c12, m2 * l2**2],
            ]
        )
        rhs = jnp.array(
            [
                u[0] + m12 * l1 * s1 * t1d**2 + m2 * l2 * s2 * t2d**2 - d * xd,
                G * m12 * l1 * s1 - m2 * l1 * l2 * s12 * t2d**2 - d * t1d,
                G * m2 * l2 * s2 + m2 * l1 * l2 * s12 * t1d**2 - d * t2d,
            ]
        )
        return jnp.concatenate([x[3:], solve_small(mass, rhs)])

    return f


def double_pendulum(cfg: DoublePendulumConfig = DoublePendulumConfig()) -> System:
    """The double inverted pendulum on a cart; input: force on the cart (N)."""
    f = double_pendulum_ode(cfg)
    return System(
        name="double_pendulum",
        step=lambda x, u: rk4(f, x, u, cfg.dt),
        x_eq=np.zeros(6),
        u_eq=np.zeros(1),
        Q=np.diag([1.0, 10.0, 10.0, 0.1, 0.1, 0.1]),
        R=0.1 * np.eye(1),
        failed=_angle_failure([1, 2], cfg.fall_angle, [0], cfg.track),
        start_box=np.array(cfg.start_box),
        dt=cfg.dt,
        labels=("x", "θ₁", "θ₂", "ẋ", "θ̇₁", "θ̇₂"),
    )


def quadrotor(cfg: QuadrotorConfig = QuadrotorConfig()) -> System:
    """The planar quadrotor hovering at the origin; inputs: the two rotor thrusts (N)."""
    m, I, r = cfg.mass, cfg.inertia, cfg.arm

    def f(x, u):
        _, _, phi, xd, yd, phid = x
        thrust = u[0] + u[1]
        return jnp.array([xd, yd, phid, -thrust * jnp.sin(phi) / m, thrust * jnp.cos(phi) / m - G, r * (u[0] - u[1]) / I])

    return System(
        name="quadrotor",
        step=lambda x, u: rk4(f, x, u, cfg.dt),
        x_eq=np.zeros(6),
        u_eq=np.full(2, m * G / 2),
        Q=np.diag([1.0, 1.0, 1.0, 0.1, 0.1, 0.1]),
        R=0.1 * np.eye(2),
        failed=_angle_failure([2], cfg.fall_angle, [0, 1], cfg.arena),
        start_box=np.array(cfg.start_box),
        dt=cfg.dt,
        labels=("x", "y", "φ", "ẋ", "ẏ", "φ̇"),
    )


SYSTEMS = {"cartpole": cartpole, "double_pendulum": double_pendulum, "quadrotor": quadrotor}


def register_system(name: str, factory: Callable[[], System], *, replace: bool = False) -> None:
    """Makes ``factory()`` available to every experiment as ``BCConfig(system=name)``.

    The factory is called once here and its :class:`System` checked: shapes of x_eq [n], u_eq [m],
    Q [n, n], R [m, m], start_box [n], a positive dt, and ``step`` returning a state of shape [n].
    Cached results are keyed by ``name`` and the configuration, not by the factory's code: register a
    changed system under a new name (or clear the cache).

    Raises:
        ValueError: the name is taken (and ``replace`` is False) or the system is malformed.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if name in SYSTEMS and not replace:
        raise ValueError(f"a system called {name!r} is already registered; pass replace=True to replace it")
    system = factory()
    if not isinstance(system, System):
        raise ValueError(f"factory must return a gvatheory.control.systems.System, got {type(system).__name__}")
    n, m = np.shape(system.x_eq)[0], np.shape(system.u_eq)[0]
    shapes = {"Q": (np.shape(system.Q), (n, n)), "R": (np.shape(system.R), (m, m)), "start_box": (np.shape(system.start_box), (n,))}
    for field, (got, want) in shapes.items():
        if got != want:
            raise ValueError(f"{name}: {field} must have shape {want} for a state of size {n} and an input of size {m}, got {got}")
    if not system.dt > 0:
        raise ValueError(f"{name}: dt must be > 0, got {system.dt}")
    x_next = jax.eval_shape(system.step, jnp.zeros(n, jnp.float32), jnp.zeros(m, jnp.float32))
    if x_next.shape != (n,):
        raise ValueError(f"{name}: step(x [{n}], u [{m}]) must return a state of shape ({n},), got {x_next.shape}")
    SYSTEMS[name] = factory


def make(name: str) -> System:
    """The system called ``name`` (one of :data:`SYSTEMS`, built in or registered) with its default parameters."""
    if name not in SYSTEMS:
        raise ValueError(f"system must be one of {sorted(SYSTEMS)}, got {name!r}")
    return SYSTEMS[name]()
