"""Gymnasium's v5 MuJoCo tasks written for a batch of raw MuJoCo quantities: observations, rewards, terminations, resets.

Models are read from the XML files that ship with Gymnasium (no download).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
from pathlib import Path
from typing import Callable

import mujoco
import numpy as np

from gvatheory.infra.validate import require_int

# ---------------------------------------------------------------------------------------------------
# the tasks: Gymnasium v5 defaults, written for a batch of raw MuJoCo quantities


def _idp_obs(raw):
    q, v = raw["qpos"], raw["qvel"]
    c0 = raw["extra"][:, 3:4]  # qfrc_constraint[0]
    return np.concatenate([q[:, :1], np.sin(q[:, 1:]), np.cos(q[:, 1:]), np.clip(v, -10, 10), np.clip(c0, -10, 10)], 1)


def _idp_reward(before, after, action, dt):
    x, y = after["extra"][:, 0], after["extra"][:, 2]  # site_xpos of the tip
    v1, v2 = after["qvel"][:, 1], after["qvel"][:, 2]
    terminated = y <= 1
    reward = 10.0 * ~terminated - (0.01 * x**2 + (y - 2) ** 2) - (1e-3 * v1**2 + 5e-3 * v2**2)
    return reward, terminated


def _idp_extra(m, d):
    return d.site_xpos[0], d.qfrc_constraint[:1]


# Ant: extra = [xpos of the torso (x, y), cfrc_ext of every body (world first), flattened]
def _ant_extra(m, d):
    return d.xpos[1, :2], d.cfrc_ext


def _ant_obs(raw):
    return np.concatenate([raw["qpos"][:, 2:], raw["qvel"], np.clip(raw["extra"][:, 8:], -1.0, 1.0)], 1)


def _ant_reward(before, after, action, dt):
    q = after["qpos"]
    x_velocity = (after["extra"][:, 0] - before["extra"][:, 0]) / dt
    healthy = np.isfinite(np.concatenate([q, after["qvel"]], 1)).all(1) & (0.2 <= q[:, 2]) & (q[:, 2] <= 1.0)
    contact_cost = 5e-4 * np.sum(np.square(np.clip(after["extra"][:, 2:], -1.0, 1.0)), 1)
    return (x_velocity + healthy.astype(float)) - (0.5 * np.sum(np.square(action), 1) + contact_cost), ~healthy


# Humanoid: extra = [mass centre (x, y), cinert[1:], cvel[1:], qfrc_actuator[6:], cfrc_ext of every body]
def _humanoid_extra(m, d):
    return d.xipos, d.cinert[1:], d.cvel[1:], d.qfrc_actuator[6:], d.cfrc_ext


def _humanoid_combine(m, parts):
    xipos, *rest = parts  # the mass centre as Gymnasium computes it, for each environment
    centre = np.sum(m.body_mass[None, :, None] * xipos, axis=1) / np.sum(m.body_mass)
    return np.concatenate([centre[:, :2]] + [p.reshape(len(p), -1) for p in rest], 1)


def _humanoid_split(raw):
    e, nv = raw["extra"], raw["qvel"].shape[1]
    nb = (e.shape[1] - 2 - (nv - 6) + 16) // 22  # bodies incl. the world: 2 + 10(nb-1) + 6(nb-1) + (nv-6) + 6 nb
    i = np.cumsum([2, 10 * (nb - 1), 6 * (nb - 1), nv - 6])
    return e[:, : i[0]], e[:, i[0] : i[3]], e[:, i[3] :]  # centre, (cinert, cvel, qfrc_actuator), cfrc_ext


def _humanoid_obs(raw):
    _, middle, cfrc = _humanoid_split(raw)
    return np.concatenate([raw["qpos"][:, 2:], raw["qvel"], middle, cfrc[:, 6:]], 1)


def _humanoid_reward(before, after, action, dt):
    x_velocity = (_humanoid_split(after)[0][:, 0] - _humanoid_split(before)[0][:, 0]) / dt
    z = after["qpos"][:, 2]
    healthy = (1.0 < z) & (z < 2.0)
    contact_cost = np.minimum(5e-7 * np.sum(np.square(_humanoid_split(after)[2]), 1), 10.0)
    return (1.25 * x_velocity + 5.0 * healthy) - (0.1 * np.sum(np.square(action), 1) + contact_cost), ~healthy


def _walker_obs(raw):
    return np.concatenate([raw["qpos"][:, 1:], np.clip(raw["qvel"], -10, 10)], 1)


def _cheetah_obs(raw):
    return np.concatenate([raw["qpos"][:, 1:], raw["qvel"]], 1)


def _locomotion_reward(z_range, angle_range, state_range, ctrl_weight, terminates):
    def reward(before, after, action, dt):
        q = after["qpos"]
        x_velocity = (q[:, 0] - before["qpos"][:, 0]) / dt
        ctrl_cost = ctrl_weight * np.sum(np.square(action), 1)
        if not terminates:
            return x_velocity - ctrl_cost, np.zeros(len(q), bool)
        z, angle = q[:, 1], q[:, 2]
        healthy = (z_range[0] < z) & (z < z_range[1]) & (angle_range[0] < angle) & (angle < angle_range[1])
        if state_range is not None:
            state = np.concatenate([q, after["qvel"]], 1)[:, 2:]
            healthy &= np.all((state_range[0] < state) & (state < state_range[1]), 1)
        return x_velocity + healthy.astype(float) - ctrl_cost, ~healthy

    return reward


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """A Gymnasium v5 MuJoCo task as the backend computes it (the defaults of ``gymnasium.make``)."""

    name: str  # Gymnasium id
    xml: str  # model file in Gymnasium's assets
    frame_skip: int  # mj_step calls per env step
    reset_noise: float  # reset_noise_scale
    qvel_noise: str  # "uniform" (Hopper, Walker2d) or "normal" (InvertedDoublePendulum, HalfCheetah)
    obs: Callable  # obs(raw) -> [B, obs_dim]
    reward: Callable  # reward(raw_before, raw_after, action, dt) -> (reward [B], terminated [B])
    # further MuJoCo quantities the task reads: extra(m, d) returns views into d's arrays (taken once per
    # MjData; they follow the simulation), combine(m, parts) turns the stacked views [n, ...] into [n, n_extra]
    extra: Callable | None = None
    combine: Callable | None = None  # default: flatten each part and concatenate
    expert: str = "rl"  # "lqr" (solved in closed form here) or "rl" (trained by gvatheory.control.rl)
    post_constraint: bool = False  # the task reads cfrc_ext (computed by mj_rnePostConstraint, as Gymnasium calls it)


TASKS = {
    t.name: t
    for t in (
        Task("InvertedDoublePendulum-v5", "inverted_double_pendulum.xml", 5, 0.1, "normal", _idp_obs, _idp_reward, _idp_extra, expert="lqr"),
        Task("Hopper-v5", "hopper.xml", 4, 5e-3, "uniform", _walker_obs, _locomotion_reward((0.7, np.inf), (-0.2, 0.2), (-100.0, 100.0), 1e-3, True)),
        Task("Walker2d-v5", "walker2d_v5.xml", 4, 5e-3, "uniform", _walker_obs, _locomotion_reward((0.8, 2.0), (-1.0, 1.0), None, 1e-3, True)),
        Task("HalfCheetah-v5", "half_cheetah.xml", 5, 0.1, "normal", _cheetah_obs, _locomotion_reward(None, None, None, 0.1, False)),
        Task("Ant-v5", "ant.xml", 5, 0.1, "normal", _ant_obs, _ant_reward, _ant_extra, post_constraint=True),
        Task("Humanoid-v5", "humanoid.xml", 5, 1e-2, "uniform", _humanoid_obs, _humanoid_reward, _humanoid_extra, _humanoid_combine, post_constraint=True),
    )
}


def task(name: str) -> Task:
    """The :class:`Task` called ``name`` (a Gymnasium id such as ``"Hopper-v5"``)."""
    if name not in TASKS:
        raise ValueError(f"unknown MuJoCo task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]


def load_model(name: str) -> mujoco.MjModel:
    """The task's MjModel, from the XML file installed with Gymnasium: a copy of one compiled per process.

    The copy is the caller's to change (``lqr_expert`` switches its integrator). Compiling once also
    means MuJoCo's compiler warnings (HalfCheetah's file uses the deprecated ``settotalmass``) are printed
    once per process, not at every evaluation of a TD3 run.
    """
    return copy.copy(_compiled_model(task(name).xml))


@functools.cache
def _compiled_model(xml: str) -> mujoco.MjModel:
    import gymnasium.envs.mujoco as gm

    return mujoco.MjModel.from_xml_path(str(Path(gm.__file__).parent / "assets" / xml))


def reset_states(name: str, n: int, *, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` start states from the task's reset distribution (Gymnasium's ``reset_model``): qpos [n, nq], qvel [n, nv]."""
    require_int("n", n, 1)
    t, m = task(name), load_model(name)
    s = t.reset_noise
    qpos = m.qpos0 + rng.uniform(-s, s, (n, m.nq))
    qvel = rng.uniform(-s, s, (n, m.nv)) if t.qvel_noise == "uniform" else s * rng.standard_normal((n, m.nv))
    return qpos, qvel
