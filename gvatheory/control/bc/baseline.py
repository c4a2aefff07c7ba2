"""The zero of the normalised score: the return of a policy that does not control, from the evaluation starts.

The D4RL convention scores a return R as 100 (R − R_0) / (R_expert − R_0), with R_0 a uniform random
policy's return from the same starts. A Gymnasium task has an action space to draw from: R_0 is the
uniform random policy over ``actuator_ctrlrange`` (seeded). The JAX systems have none (their inputs are
unbounded): R_0 is the uncontrolled system, u = u_eq, which every one of them loses as a random policy
would. Either way the score reads 0 for no control and 100 for the expert.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gvatheory.control import rollout, systems
from gvatheory.control.bc.config import BCConfig
from gvatheory.control.bc.data import demonstrations
from gvatheory.control.mujoco import env as mjenv
from gvatheory.infra import cache


def _compute(cfg: BCConfig) -> dict:
    d = demonstrations(cfg)
    if cfg.backend == "mujoco":
        env = mjenv.BatchEnv(cfg.system, 1)
        low, high = env.model.actuator_ctrlrange.T
        rng = np.random.default_rng([cfg.data_seed, 20_261_202])
        policy = lambda obs, state: rng.uniform(low, high, (len(obs), len(low)))
        r = mjenv.rollout(cfg.system, policy, d["qpos0"], d["qvel0"], cfg.horizon)
        return dict(ret=np.asarray(r.ret), failed=np.asarray(r.failed))
    system = systems.make(cfg.system)
    u_eq = jnp.asarray(system.u_eq, jnp.float32)
    r = jax.jit(lambda x0: rollout.rollout(system, lambda x: u_eq, x0, cfg.horizon, fail_cost=cfg.fail_cost))(jnp.asarray(d["x0"]))
    return dict(ret=np.asarray(r.ret), failed=np.asarray(r.failed))


def reference_returns(cfg: BCConfig) -> np.ndarray:
    """R_0 [N]: the returns of no control (JAX systems) or a uniform random policy (MuJoCo tasks) from ``cfg``'s
    evaluation starts, over ``cfg.horizon`` steps (cached)."""
    fields = dict(system=cfg.system, horizon=cfg.horizon, fail_cost=cfg.fail_cost, n_eval=cfg.n_eval, data_seed=cfg.data_seed,
                  start_scale=cfg.start_scale)
    return cache.cached(f"baseline-{cfg.system}", lambda: _compute(cfg), fields, code=__name__)["ret"]
