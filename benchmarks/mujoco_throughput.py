"""Env-steps/s of the batched MuJoCo backend (gvatheory.control.mujoco) against a plain Gymnasium step loop, as ratios in this one process.

    python benchmarks/mujoco_throughput.py [--tasks InvertedDoublePendulum-v5 Hopper-v5] [--episodes 64] [--steps 1000]

For each task: (1) physics only — uniformly random actions, a ``gymnasium.make`` loop (reset after
each termination) against ``BatchEnv.step`` on a batch of ``--episodes`` environments, on one thread
and on the default thread count; (2) closed loop with a randomly initialised MLP 2x256 in JAX — the
Gymnasium loop calls the jitted policy once per environment step, the backend once per time step for
the whole batch (``mjenv.rollout``); steps actually taken are counted (episodes may terminate).
Nothing is asserted: the numbers are the result.
"""
from __future__ import annotations

import argparse
import time

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from gvatheory.control import mujoco as mjenv, policies


def gym_rate(name, n_steps, policy=None, seed=0):
    """Env-steps/s of one Gymnasium env stepped n_steps times (resetting after each episode end)."""
    env = gym.make(name)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    t0 = time.perf_counter()
    for t in range(n_steps):
        a = rng.uniform(-1, 1, env.action_space.shape) if policy is None else policy(obs[None])[0]
        obs, _, term, trunc, _ = env.step(a)
        if term or trunc:
            obs, _ = env.reset(seed=seed + t + 1)
    rate = n_steps / (time.perf_counter() - t0)
    env.close()
    return rate


def backend_physics_rate(name, n, steps, threads, seed=0):
    """Env-steps/s of BatchEnv.step on n environments for ``steps`` steps, random actions."""
    env = mjenv.BatchEnv(name, n, threads=threads)
    rng = np.random.default_rng(seed)
    env.reset(*mjenv.reset_states(name, n, rng=rng))
    actions = rng.uniform(-1, 1, (steps, n, env.act_dim))
    t0 = time.perf_counter()
    for a in actions:
        env.step(a)
    return n * steps / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(mjenv.TASKS))
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    a = p.parse_args(argv)
    print(f"{mjenv.default_threads()} threads by default; batch of {a.episodes} environments, {a.steps} steps")
    print(f"{'task':28s} {'gym (random)':>13s} {'batch 1 thr':>12s} {'batch N thr':>12s} {'ratio':>6s} | {'gym + MLP':>10s} {'batch + MLP':>12s} {'ratio':>6s}")
    for name in a.tasks:
        n_gym = a.episodes * a.steps // 4
        g = gym_rate(name, n_gym)
        b1 = backend_physics_rate(name, a.episodes, a.steps, threads=1)
        bn = backend_physics_rate(name, a.episodes, a.steps, threads=mjenv.default_threads())
        env = mjenv.BatchEnv(name, 1)
        pcfg = policies.PolicyConfig(depth=2, width=256)
        params = policies.init(pcfg, env.obs_dim, env.act_dim, key=jax.random.key(0))
        act = jax.jit(lambda o: jnp.tanh(policies.apply(pcfg, params, o)))
        policy = lambda o: np.asarray(act(jnp.asarray(o, jnp.float32)))
        policy(np.zeros((1, env.obs_dim))), policy(np.zeros((a.episodes, env.obs_dim)))  # compile outside the timing
        gp = gym_rate(name, n_gym, policy)
        qpos, qvel = mjenv.reset_states(name, a.episodes, rng=np.random.default_rng(0))
        t0 = time.perf_counter()
        r = mjenv.rollout(name, lambda o, s: policy(o), qpos, qvel, a.steps)
        bp = r.steps.sum() / (time.perf_counter() - t0)
        print(f"{name:28s} {g:13,.0f} {b1:12,.0f} {bn:12,.0f} {bn / g:6.2f} | {gp:10,.0f} {bp:12,.0f} {bp / gp:6.2f}")


if __name__ == "__main__":
    main()
