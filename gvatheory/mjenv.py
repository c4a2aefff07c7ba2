"""A batched MuJoCo rollout backend that reproduces Gymnasium's v5 tasks, and an LQR expert from MuJoCo.

Physics runs in C MuJoCo (one ``MjData`` per environment, stepped with ``mj_step`` exactly as
Gymnasium's ``MujocoEnv.do_simulation`` does); observations, rewards, terminations and the reset
distribution are computed for the whole batch at once in numpy from the same MuJoCo quantities
Gymnasium reads, and the policy is called once per time step on the whole batch (a jitted JAX
function in :mod:`gvatheory.bc`). ``tests/test_mjenv.py`` checks every task step for step against
``gymnasium.make`` for the same actions.

A rollout ends when the task terminates (Gymnasium's rule) or when the simulation diverges: MuJoCo
silently resets ``MjData`` when it meets a non-finite or huge position, velocity or acceleration
(``mjWARN_BADQPOS``, ``mjWARN_BADQVEL``, ``mjWARN_BADQACC``); the backend reads those warning counters
and counts the episode as diverged instead of continuing from the reset state.

Models are read from the XML files that ship with Gymnasium (no download).

References: PAPER.md "Measured here" (the LQR recipe for InvertedDoublePendulum-v5).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, NamedTuple

import mujoco
import numpy as np
import scipy.linalg

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
    expert: str = "rl"  # "lqr" (solved in closed form here) or "rl" (trained by gvatheory.rl)
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
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n}")
    t, m = task(name), load_model(name)
    s = t.reset_noise
    qpos = m.qpos0 + rng.uniform(-s, s, (n, m.nq))
    qvel = rng.uniform(-s, s, (n, m.nv)) if t.qvel_noise == "uniform" else s * rng.standard_normal((n, m.nv))
    return qpos, qvel


# ---------------------------------------------------------------------------------------------------
# the batch of environments


def default_threads() -> int:
    """Threads stepping the physics: $GVATHEORY_MJ_THREADS, else the CPU count (at most 16)."""
    return int(os.environ.get("GVATHEORY_MJ_THREADS", min(os.cpu_count() or 1, 16)))


_BADQPOS, _BADQVEL, _BADQACC = (int(w) for w in (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL, mujoco.mjtWarning.mjWARN_BADQACC))


class BatchEnv:
    """``n`` copies of a task, each its own ``MjData``, stepped in C and observed as one numpy batch.

    ``threads`` > 1 splits the batch into contiguous chunks stepped by a thread pool (MuJoCo releases
    the GIL inside ``mj_step``); every environment is still stepped by exactly one thread, so results
    do not depend on the thread count.
    """

    def __init__(self, name: str, n: int, *, threads: int | None = None):
        if int(n) != n or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n}")
        threads = default_threads() if threads is None else threads
        if int(threads) != threads or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads}")
        self.threads = int(min(threads, n))
        self.task, self.model = task(name), load_model(name)
        self.n = int(n)
        self.datas = [mujoco.MjData(self.model) for _ in range(self.n)]
        self.dt = self.model.opt.timestep * self.task.frame_skip
        m = self.model
        # numpy views into every MjData, taken once: reading the batch is one np.stack per quantity instead
        # of attribute lookups per environment (measured: up to ~10% more env-steps/s; the physics dominates)
        self._ctrl = [d.ctrl for d in self.datas]
        self._views = {"qpos": [d.qpos for d in self.datas], "qvel": [d.qvel for d in self.datas],
                       "warning": [d.warning.number for d in self.datas]}
        self._extra = [] if self.task.extra is None else [self.task.extra(m, d) for d in self.datas]
        n_extra = self._combine(self._extra[:1]).shape[1] if self._extra else 0
        self.raw = {"qpos": np.zeros((n, m.nq)), "qvel": np.zeros((n, m.nv)), "extra": np.zeros((n, n_extra)), "unstable": np.zeros(n)}
        self._gather(np.arange(self.n))
        self.obs_dim = self.task.obs({k: v[:1] for k, v in self.raw.items()}).shape[1]
        self.act_dim = m.nu

    def _gather(self, idx):
        """Copies the MuJoCo state of the environments ``idx`` into ``self.raw`` (the batch the task reads)."""
        r, v = self.raw, self._views
        r["qpos"][idx] = np.stack([v["qpos"][i] for i in idx])
        r["qvel"][idx] = np.stack([v["qvel"][i] for i in idx])
        w = np.stack([v["warning"][i] for i in idx])
        r["unstable"][idx] = w[:, _BADQPOS] + w[:, _BADQVEL] + w[:, _BADQACC]
        if self._extra:
            r["extra"][idx] = self._combine([self._extra[i] for i in idx])

    def _combine(self, views):
        """[n_extra] per environment from each environment's extra views: stacked part by part, then combined."""
        parts = [np.stack([v[j] for v in views]) for j in range(len(views[0]))]
        if self.task.combine is not None:
            return self.task.combine(self.model, parts)
        return np.concatenate([p.reshape(len(p), -1) for p in parts], 1)

    def reset(self, qpos, qvel, which=None) -> np.ndarray:
        """Sets the environments to (qpos [n, nq], qvel [n, nv]) as Gymnasium's reset does; returns obs [n, obs_dim].

        ``which`` (indices or a bool mask [n]) restarts only those environments; the others are untouched.
        """
        qpos, qvel = np.asarray(qpos, float), np.asarray(qvel, float)
        if qpos.shape != (self.n, self.model.nq) or qvel.shape != (self.n, self.model.nv):
            raise ValueError(f"expected qpos [{self.n}, {self.model.nq}] and qvel [{self.n}, {self.model.nv}], got {qpos.shape}, {qvel.shape}")
        idx = np.arange(self.n) if which is None else np.arange(self.n)[which]
        for i in idx:
            d = self.datas[i]
            mujoco.mj_resetData(self.model, d)
            d.qpos[:], d.qvel[:] = qpos[i], qvel[i]
            mujoco.mj_forward(self.model, d)
        if len(idx):
            self._gather(idx)
        return self.task.obs(self.raw)

    def step(self, action, active=None):
        """One env step of every environment where ``active`` [n] (default all) with ``action`` [n, nu].

        Returns obs [n, obs_dim], reward [n], terminated [n] and diverged [n] (MuJoCo reset the
        simulation: non-finite or huge state). Inactive environments are left untouched and get
        reward 0.
        """
        action = np.asarray(action, float)
        if action.shape != (self.n, self.act_dim):
            raise ValueError(f"expected action [{self.n}, {self.act_dim}], got {action.shape}")
        idx = np.arange(self.n) if active is None else np.flatnonzero(active)
        before = {k: v.copy() for k, v in self.raw.items()}
        m, fs, post, datas, ctrl = self.model, self.task.frame_skip, self.task.post_constraint, self.datas, self._ctrl

        def advance(chunk):
            for i in chunk:
                ctrl[i][:] = action[i]
                mujoco.mj_step(m, datas[i], nstep=fs)
                if post:
                    mujoco.mj_rnePostConstraint(m, datas[i])

        if self.threads > 1 and len(idx) > 1:
            if not hasattr(self, "_pool"):
                self._pool = ThreadPoolExecutor(self.threads)
            list(self._pool.map(advance, np.array_split(idx, min(self.threads, len(idx)))))
        else:
            advance(idx)
        if len(idx):
            self._gather(idx)
        reward, terminated = self.task.reward(before, self.raw, action, self.dt)
        # MuJoCo's automatic mj_resetData after a non-finite or huge qpos/qvel/qacc raises a warning counter
        diverged = self.raw["unstable"] > before["unstable"]
        mask = np.zeros(self.n, bool)
        mask[idx] = True
        return self.task.obs(self.raw), np.where(mask, reward, 0.0), terminated & mask, diverged & mask

    def state(self) -> np.ndarray:
        """[qpos, qvel] of every environment, [n, nq + nv]."""
        return np.concatenate([self.raw["qpos"], self.raw["qvel"]], 1)


class Rollout(NamedTuple):
    """Per-episode results of :func:`rollout` (arrays [n])."""

    ret: np.ndarray  # undiscounted return (Gymnasium's rewards summed until the end of the episode)
    failed: np.ndarray  # bool: terminated or diverged before H
    diverged: np.ndarray  # bool: the simulation blew up (MuJoCo reset it)
    steps: np.ndarray  # env steps taken (H if never failed)


def rollout(name: str, policy: Callable, qpos0, qvel0, horizon: int, *, progress: bool | str = False, threads: int | None = None) -> Rollout:
    """Runs ``action = policy(obs [n, d], state [n, nq + nv])`` from each start for up to ``horizon`` steps.

    The policy is called once per step on the whole batch (ended episodes included, so its input
    shape never changes); only running episodes are stepped. ``progress``: a tqdm bar over steps
    (a string is its description); ``threads``: see :class:`BatchEnv`.
    """
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon}")
    from tqdm import tqdm

    qpos0 = np.atleast_2d(qpos0)
    env = BatchEnv(name, len(qpos0), threads=threads)
    obs = env.reset(qpos0, qvel0)
    n = env.n
    ret, alive, diverged, steps = np.zeros(n), np.ones(n, bool), np.zeros(n, bool), np.zeros(n, int)
    bar = tqdm(range(horizon), desc=progress if isinstance(progress, str) else name, disable=not progress, mininterval=2.0, leave=False)
    for _ in bar:
        action = np.asarray(policy(obs, env.state()), float).reshape(n, env.act_dim)
        obs, r, term, div = env.step(action, alive)
        ret += r
        steps += alive
        diverged |= div
        alive &= ~(term | div)
        if not alive.any():
            break
    bar.close()
    ret[diverged] = np.where(np.isfinite(ret[diverged]), ret[diverged], 0.0)
    return Rollout(ret=ret, failed=steps < horizon, diverged=diverged, steps=steps)


# ---------------------------------------------------------------------------------------------------
# LQR expert from MuJoCo's finite-difference linearisation


class LQRExpert(NamedTuple):
    """u = clip(−K (x − x_eq)) on the full state x = [qpos, qvel], for a task balanced at x_eq."""

    K: np.ndarray  # [nu, nq + nv]
    x_eq: np.ndarray  # [nq + nv]
    low: np.ndarray  # [nu] control range
    high: np.ndarray  # [nu]
    A: np.ndarray  # the env-step linearisation used, [nx, nx]
    B: np.ndarray  # [nx, nu]

    def __call__(self, obs, state):
        """The expert's action for a batch of full states [n, nq + nv] (the observation is ignored)."""
        return np.clip(-(np.asarray(state) - self.x_eq) @ self.K.T, self.low, self.high)


def lqr_expert(name: str = "InvertedDoublePendulum-v5", *, q: float = 1.0, r: float = 1.0, eps: float = 1e-6) -> LQRExpert:
    """LQR gain for a task balanced at qpos0, qvel = 0, ctrl = 0 (PAPER.md's recipe).

    ``mjd_transitionFD`` refuses RK4 models, so a copy of the model is switched to the implicitfast
    integrator and linearised over one physics step (A₁, B₁); the env step holds the control for
    ``frame_skip`` physics steps, A = A₁^k, B = Σ_{j<k} A₁^j B₁; then the discrete Riccati equation
    with Q = q·I, R = r·I is solved by scipy.
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
    P = scipy.linalg.solve_discrete_are(A, B, Q, R)
    K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
    x_eq = np.concatenate([m.qpos0, np.zeros(m.nv)])
    low, high = m.actuator_ctrlrange.T.copy()
    return LQRExpert(K=K, x_eq=x_eq, low=low, high=high, A=A, B=B)


def demonstrations(name: str, expert: Callable, qpos0, qvel0, horizon: int, *, noise: float, rng: np.random.Generator, clean_labels: bool = False):
    """Expert episodes executing clip(expert + ε), ε ~ N(0, noise² I), recorded in Gymnasium's observations.

    Returns X [M, obs_dim] observations, U [M, nu] labels (the executed action, or the clean expert
    action with ``clean_labels``) and U_clean [M, nu] (the clean expert action) of every step taken
    before an episode ended, and ``failed`` [n] (the episode terminated or diverged before ``horizon``).
    """
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon}")
    env = BatchEnv(name, len(np.atleast_2d(qpos0)))
    obs = env.reset(qpos0, qvel0)
    low, high = env.model.actuator_ctrlrange.T
    alive = np.ones(env.n, bool)
    X, U, Uc = [], [], []
    for _ in range(horizon):
        clean = np.asarray(expert(obs, env.state()), float)
        u = np.clip(clean + noise * rng.standard_normal(clean.shape), low, high)
        X.append(obs[alive])
        U.append((clean if clean_labels else u)[alive])
        Uc.append(clean[alive])
        obs, _, term, div = env.step(u, alive)
        alive &= ~(term | div)
        if not alive.any():
            break
    return np.concatenate(X), np.concatenate(U), np.concatenate(Uc), ~alive
