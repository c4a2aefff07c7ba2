"""The two rollout backends of the BC engine, behind one interface: JAX systems inside the scan, C MuJoCo after it.

A backend scores a policy closed-loop from the configuration's fixed evaluation starts. Its methods:

* ``dims(cfg)`` — (policy input, policy output) sizes; ``after_scan`` — whether ``after`` rolls out.
* ``in_scan(policy)`` — rollouts that run inside the compiled training scan (a dict of arrays [N]);
  the JAX backend returns ``ret``, ``failed``, ``diverged``, the MuJoCo backend nothing.
* ``after(act, flat_params [K, P])`` — rollouts that run on the host after training, in arrays [K, N];
  the MuJoCo backend runs them, the JAX backend returns nothing.
* ``expert_returns()`` — the expert's returns from the same starts [N].

So the engine and every caller (landscape slices, ablations) ask ``in_scan`` and ``after`` alike and never
which backend they hold: exactly one of the two produces the rollouts.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gvatheory.control import lqr, rollout, systems
from gvatheory.control.bc.config import BCConfig
from gvatheory.control.bc.data import mujoco_expert
from gvatheory.control.mujoco import env as mjenv

ROLLOUT_KEYS = ("ret", "failed", "diverged")


class JaxBackend:
    """A registered JAX system: rollouts are a ``lax.scan`` inside the training program."""

    after_scan = False  # the rollouts run inside the scan: nothing needs the parameters afterwards

    def __init__(self, cfg: BCConfig, data: dict):
        self.cfg, self.data, self.system = cfg, data, systems.make(cfg.system)

    @staticmethod
    def dims(cfg: BCConfig) -> tuple[int, int]:
        """(state, control) sizes."""
        system = systems.make(cfg.system)
        return system.n, system.m

    def in_scan(self, policy) -> dict:
        """Rollouts of ``policy(x) -> u`` from the evaluation starts: ``ret``, ``failed``, ``diverged`` [N]."""
        r = rollout.rollout(self.system, policy, jnp.asarray(self.data["x0"]), self.cfg.horizon, fail_cost=self.cfg.fail_cost)
        return {"ret": r.ret, "failed": r.failed, "diverged": r.diverged}

    def after(self, act, flat_params, *, progress=False) -> dict:
        """Nothing: the rollouts ran inside the scan."""
        return {}

    def expert_returns(self) -> np.ndarray:
        """The LQR expert's returns from the evaluation starts [N]."""
        expert = lqr.Expert(self.system, self.data["K"])
        x0, cfg = jnp.asarray(self.data["x0"]), self.cfg
        return np.asarray(jax.jit(lambda: rollout.rollout(self.system, expert, x0, cfg.horizon, fail_cost=cfg.fail_cost).ret)())


class MujocoBackend:
    """A Gymnasium MuJoCo task: rollouts in C MuJoCo, after training, all parameter sets in one batch."""

    after_scan = True  # every variant's parameters at every checkpoint leave the scan for the host rollouts

    def __init__(self, cfg: BCConfig, data: dict):
        self.cfg, self.data = cfg, data

    @staticmethod
    def dims(cfg: BCConfig) -> tuple[int, int]:
        """(observation, action) sizes."""
        env = mjenv.BatchEnv(cfg.system, 1)
        return env.obs_dim, env.act_dim

    def in_scan(self, policy) -> dict:
        """Nothing: C MuJoCo cannot run inside a compiled program."""
        return {}

    def after(self, act, flat_params, *, progress=False) -> dict:
        """Rolls out K flat parameter vectors [K, P] from the ``cfg.n_eval`` starts in C MuJoCo.

        ``act(flat [K, P], obs [K, N, d]) -> actions [K, N, m]`` is one jitted, vmapped policy call per
        time step; all K × N episodes run as one batch. Returns ``ret``, ``failed``, ``diverged`` [K, N].
        """
        flat_params = jnp.asarray(flat_params, jnp.float32)
        K, N = flat_params.shape[0], self.cfg.n_eval

        def policy(obs, state):
            return np.asarray(act(flat_params, jnp.asarray(obs.reshape(K, N, -1), jnp.float32))).reshape(K * N, -1)

        qpos0, qvel0 = np.tile(self.data["qpos0"], (K, 1)), np.tile(self.data["qvel0"], (K, 1))
        desc = f"{self.cfg.system}: {K} policies x {N} rollouts" if progress else False
        r = mjenv.rollout(self.cfg.system, policy, qpos0, qvel0, self.cfg.horizon, progress=desc)
        return {k: np.reshape(getattr(r, k), (K, N)) for k in ROLLOUT_KEYS}

    def expert_returns(self) -> np.ndarray:
        """The task's expert's returns from the evaluation starts [N]."""
        d = self.data
        return np.asarray(mjenv.rollout(self.cfg.system, mujoco_expert(self.cfg.system), d["qpos0"], d["qvel0"], self.cfg.horizon).ret)


BACKENDS = {"jax": JaxBackend, "mujoco": MujocoBackend}


def make(cfg: BCConfig, data: dict):
    """The backend of ``cfg`` (``cfg.backend``) over its demonstrations' evaluation starts."""
    return BACKENDS[cfg.backend](cfg, data)


def dims(cfg: BCConfig) -> tuple[int, int]:
    """(policy input, policy output) sizes of ``cfg``'s system, without its demonstrations."""
    return BACKENDS[cfg.backend].dims(cfg)
