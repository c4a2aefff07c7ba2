"""A batched C-MuJoCo environment that reproduces Gymnasium's v5 tasks, its rollouts and its demonstrations.

Physics runs in C MuJoCo (one ``MjData`` per environment, stepped with ``mj_step`` exactly as
Gymnasium's ``MujocoEnv.do_simulation`` does); observations, rewards, terminations and the reset
distribution are computed for the whole batch at once in numpy from the same MuJoCo quantities
Gymnasium reads, and the policy is called once per time step on the whole batch (a jitted JAX
function in :mod:`gvatheory.control.bc`). ``tests/test_mjenv.py`` checks every task step for step against
``gymnasium.make`` for the same actions.

A rollout ends when the task terminates (Gymnasium's rule) or when the simulation diverges: MuJoCo
silently resets ``MjData`` when it meets a non-finite or huge position, velocity or acceleration
(``mjWARN_BADQPOS``, ``mjWARN_BADQVEL``, ``mjWARN_BADQACC``); the backend reads those warning counters
and counts the episode as diverged instead of continuing from the reset state.

"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import mujoco
import numpy as np

from gvatheory.control.mujoco.tasks import load_model, task
from gvatheory.control.rollout import Rollout
from gvatheory.infra.validate import require_int

# ---------------------------------------------------------------------------------------------------
# the batch of environments


def default_threads() -> int:
    """Threads stepping the physics: $GVATHEORY_MJ_THREADS, else the CPU count (at most 16)."""
    return int(os.environ.get("GVATHEORY_MJ_THREADS", min(os.cpu_count() or 1, 16)))


_INTEGRATION = mujoco.mjtState.mjSTATE_INTEGRATION  # the state that reproduces a simulation exactly
_BADQPOS, _BADQVEL, _BADQACC = (int(w) for w in (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL, mujoco.mjtWarning.mjWARN_BADQACC))


class BatchEnv:
    """``n`` copies of a task, each its own ``MjData``, stepped in C and observed as one numpy batch.

    ``threads`` > 1 splits the batch into contiguous chunks stepped by a thread pool (MuJoCo releases
    the GIL inside ``mj_step``); every environment is still stepped by exactly one thread, so results
    do not depend on the thread count.
    """

    def __init__(self, name: str, n: int, *, threads: int | None = None):
        require_int("n", n, 1)
        threads = default_threads() if threads is None else threads
        require_int("threads", threads, 1)
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

    def snapshot(self) -> dict[str, np.ndarray]:
        """Everything the next :meth:`step` reads, as arrays: each environment's MuJoCo integration state
        (``mjSTATE_INTEGRATION``: time, qpos, qvel, actuator state, the solver's warm start, controls, ...)
        and the batch the task reads. :meth:`restore` of it continues the simulation bit for bit."""
        size = mujoco.mj_stateSize(self.model, _INTEGRATION)
        phys = np.zeros((self.n, size))
        for i, d in enumerate(self.datas):
            mujoco.mj_getState(self.model, d, phys[i], _INTEGRATION)
        # not the instability counters: restore restarts them at 0 with MuJoCo's own warning counters
        return {"physics": phys, **{f"raw_{k}": v.copy() for k, v in self.raw.items() if k != "unstable"}}

    def restore(self, snap: dict[str, np.ndarray]) -> np.ndarray:
        """Sets every environment to a :meth:`snapshot` (of this task and batch size); returns obs [n, obs_dim]."""
        phys = np.asarray(snap["physics"], float)
        if phys.shape != (self.n, mujoco.mj_stateSize(self.model, _INTEGRATION)):
            raise ValueError(f"a snapshot of another task or batch size: physics {phys.shape}")
        for i, d in enumerate(self.datas):
            mujoco.mj_resetData(self.model, d)  # clears the warning counters, as a reset does
            mujoco.mj_setState(self.model, d, phys[i], _INTEGRATION)
        for k in self.raw:
            if k != "unstable":
                self.raw[k][:] = snap[f"raw_{k}"]
        # the counters restart at 0 (mj_resetData), and so does raw's copy of them: step compares the two
        self.raw["unstable"][:] = 0
        return self.task.obs(self.raw)


def rollout(name: str, policy: Callable, qpos0, qvel0, horizon: int, *, progress: bool | str = False, threads: int | None = None) -> Rollout:
    """Runs ``action = policy(obs [n, d], state [n, nq + nv])`` from each start for up to ``horizon`` steps.

    The policy is called once per step on the whole batch (ended episodes included, so its input
    shape never changes); only running episodes are stepped. ``progress``: a tqdm bar over steps
    (a string is its description); ``threads``: see :class:`BatchEnv`.
    """
    require_int("horizon", horizon, 1)
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
    return Rollout(ret=ret, cost=-ret, failed=steps < horizon, diverged=diverged, steps=steps)


def demonstrations(name: str, expert: Callable, qpos0, qvel0, horizon: int, *, noise: float, rng: np.random.Generator, clean_labels: bool = False):
    """Expert episodes executing clip(expert + ε), ε ~ N(0, noise² I), recorded in Gymnasium's observations.

    Returns X [M, obs_dim] observations, U [M, nu] labels (the executed action, or the clean expert
    action with ``clean_labels``) and U_clean [M, nu] (the clean expert action) of every step taken
    before an episode ended, and ``failed`` [n] (the episode terminated or diverged before ``horizon``).
    """
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    require_int("horizon", horizon, 1)
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
