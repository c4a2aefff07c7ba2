"""An LQR expert for a MuJoCo task balanced at its initial pose, from MuJoCo's finite-difference linearisation."""
from __future__ import annotations

from typing import NamedTuple

import mujoco
import numpy as np

from gvatheory.control import lqr
from gvatheory.control.mujoco.tasks import load_model, task


class LQRExpert(NamedTuple):
    """u = clip(K (x − x_eq)) on the full state x = [qpos, qvel], for a task balanced at x_eq (the convention of :mod:`gvatheory.control.lqr`)."""

    K: np.ndarray  # [nu, nq + nv]
    x_eq: np.ndarray  # [nq + nv]
    low: np.ndarray  # [nu] control range
    high: np.ndarray  # [nu]
    A: np.ndarray  # the env-step linearisation used, [nx, nx]
    B: np.ndarray  # [nx, nu]

    def __call__(self, obs, state):
        """The expert's action for a batch of full states [n, nq + nv] (the observation is ignored)."""
        return np.clip((np.asarray(state) - self.x_eq) @ self.K.T, self.low, self.high)


def lqr_expert(name: str = "InvertedDoublePendulum-v5", *, q: float = 1.0, r: float = 1.0, eps: float = 1e-6) -> LQRExpert:
    """LQR gain for a task balanced at qpos0, qvel = 0, ctrl = 0 (ctrl = 0 is the task's equilibrium input).

    ``mjd_transitionFD`` refuses RK4 models, so a copy of the model is switched to the implicitfast
    integrator and linearised over one physics step (A₁, B₁); the env step holds the control for
    ``frame_skip`` physics steps, A = A₁^k, B = Σ_{j<k} A₁^j B₁; then the discrete Riccati equation
    with Q = q·I, R = r·I is solved by :func:`gvatheory.control.lqr.lqr_gain`.
    """
    if not (q > 0 and r > 0):
        raise ValueError(f"q and r must be > 0, got {q}, {r}")
    t, m = task(name), load_model(name)
    m.opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    nx = 2 * m.nv + m.na
    A1, B1 = np.zeros((nx, nx)), np.zeros((nx, m.nu))
    mujoco.mjd_transitionFD(m, d, eps, True, A1, B1, None, None)
    A, B = np.eye(nx), np.zeros((nx, m.nu))
    for _ in range(t.frame_skip):
        A, B = A1 @ A, A1 @ B + B1
    if m.nq != m.nv or m.na:
        raise ValueError(f"{name}: the LQR expert needs nq == nv and no actuator state (free joints or activations present)")
    Q, R = q * np.eye(nx), r * np.eye(m.nu)
    K, _ = lqr.lqr_gain(A, B, Q, R)
    x_eq = np.concatenate([m.qpos0, np.zeros(m.nv)])
    low, high = m.actuator_ctrlrange.T.copy()
    return LQRExpert(K=K, x_eq=x_eq, low=low, high=high, A=A, B=B)


