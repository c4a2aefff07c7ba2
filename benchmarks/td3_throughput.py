"""TD3 training throughput (gvatheory.control.rl) against this machine's compute bound and against a baseline, in one process.

    python benchmarks/td3_throughput.py [--task Walker2d-v5] [--steps 3000]

A TD3 environment step costs one actor call and one MuJoCo step on the host, then (in blocks of ``chunk``)
one update: two critics, forward and backward, on a batch of 256, and every ``policy_delay``-th update the
actor and the targets. Prints

1. the FLOPs of one update: the critic step plus the actor step / policy_delay, each read from XLA's cost
   analysis of that step compiled alone (not counted by hand; a ``lax.cond`` inside the update scan would
   be counted with both branches every time), and this machine's dense float32 matmul rate (a large
   matmul through XLA, the same process);
2. the update scan alone, the library's against the baseline (the formulation before: the actor loss
   evaluates both stacked critics and keeps the first): updates/s, the ratio, the fraction of the matmul rate;
3. the host work of one environment step alone, the library's (an ahead-of-time compiled actor on a float32
   observation) against the baseline (a jitted call on the float64 observation), and the ratio;
4. the whole training loop (``rl.train`` past its random-action phase, in a scratch cache): env-steps/s, the
   fraction of the compute bound it reaches (FLOPs per step x steps/s / matmul rate), and the split of its
   time between updates and host work predicted by 2 and 3.

Nothing is asserted: the numbers are the result. Quote them with the machine they came from.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bc_throughput import matmul_rate, timeit
from gvatheory.control import mujoco as mjenv, rl


def _baseline_update(cfg):
    """The update scan as it was: the actor loss runs both critics on (s, π(s)) and keeps the first (same numbers)."""
    opt = optax.adam(cfg.lr)
    soft = lambda t, s: jax.tree.map(lambda a, b: (1 - cfg.tau) * a + cfg.tau * b, t, s)

    def actor_step(s, obs):
        g = jax.grad(lambda p: -jnp.mean(rl._critics(cfg, s["critic"], obs, rl._actor(cfg, p, obs))[0]))(s["actor"])
        u, opt_a = opt.update(g, s["opt_a"], s["actor"])
        actor = optax.apply_updates(s["actor"], u)
        return {**s, "actor": actor, "opt_a": opt_a, "actor_t": soft(s["actor_t"], actor), "critic_t": soft(s["critic_t"], s["critic"])}

    def update(state, inp):
        batch, key = inp
        state, lc = rl._critic_step(cfg, state, batch, key)
        return jax.lax.cond(state["n"] % cfg.policy_delay == 0, lambda s: actor_step(s, batch[0]), lambda s: s, state), lc

    return jax.jit(lambda state, batches, keys: jax.lax.scan(update, state, (batches, keys)))


def _flops(fn, *args) -> float:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    return float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="Walker2d-v5", choices=sorted(rl.EXPERTS))
    p.add_argument("--steps", type=int, default=3000, help="environment steps of the timed training loop, after its random phase")
    a = p.parse_args()
    if a.steps < 2 * rl.EXPERTS[a.task].chunk:
        p.error(f"--steps must be at least {2 * rl.EXPERTS[a.task].chunk}")
    cfg = dataclasses.replace(rl.EXPERTS[a.task], steps=2000 + a.steps, start_steps=2000, eval_every=2000 + a.steps, checkpoint_every=2000 + a.steps)
    env = mjenv.BatchEnv(cfg.task, 1, threads=1)
    od, ad, B, C = env.obs_dim, env.act_dim, cfg.batch_size, cfg.chunk
    state = rl._init(cfg, od, ad, jax.random.key(0))
    rng = np.random.default_rng(0)
    batches = tuple(jnp.asarray(x, jnp.float32) for x in (rng.normal(size=(C, B, od)), rng.uniform(-1, 1, (C, B, ad)), rng.normal(size=(C, B)),
                                                          rng.normal(size=(C, B, od)), np.zeros((C, B))))
    keys = jax.random.split(jax.random.key(1), C)
    one = tuple(x[0] for x in batches)
    flops_step = (_flops(lambda s, b, k: rl._critic_step(cfg, s, b, k), state, one, keys[0])
                  + _flops(lambda s, o: rl._actor_step(cfg, s, o), state, one[0]) / cfg.policy_delay)
    peak = matmul_rate()
    print(f"{a.task}: obs {od}, act {ad}, networks 2x{cfg.width}, batch {B}; {jax.devices()[0].device_kind}, {os.cpu_count()} CPU threads")
    print(f"  one update: {flops_step / 1e9:.3f} GFLOP (XLA cost analysis: critic step + actor step / {cfg.policy_delay}); "
          f"dense matmul rate here: {peak / 1e9:.1f} GFLOP/s")
    update, base = rl._make_update(cfg), _baseline_update(cfg)
    t_upd = timeit(lambda: jax.block_until_ready(update(state, batches, keys))) / C
    t_base = timeit(lambda: jax.block_until_ready(base(state, batches, keys))) / C
    print(f"  updates alone: {1 / t_upd:7.0f} updates/s = {flops_step / t_upd / peak:.1%} of the matmul rate; "
          f"baseline {1 / t_base:.0f} updates/s: {t_base / t_upd:.2f}x")

    act, act_base = rl.acting_fn(cfg, od, ad), jax.jit(lambda p, o: rl._actor(cfg, p, o))
    obs0 = env.reset(*mjenv.reset_states(cfg.task, 1, rng=rng))[0]
    buf = np.zeros((1000, od), np.float32)

    def host_steps(policy, n=200):
        obs = obs0
        env.reset(*mjenv.reset_states(cfg.task, 1, rng=np.random.default_rng(1)))
        for i in range(n):
            u = np.clip(policy(obs) + 0.1 * rng.standard_normal(ad), -1, 1)
            nobs, r, term, div = env.step(u[None])
            buf[i % 1000] = obs
            obs = env.reset(*mjenv.reset_states(cfg.task, 1, rng=rng))[0] if term[0] or div[0] else nobs[0]

    t_host = timeit(lambda: host_steps(lambda o: np.asarray(act(state["actor"], o.astype(np.float32))))) / 200
    t_host_base = timeit(lambda: host_steps(lambda o: np.asarray(act_base(state["actor"], jnp.asarray(o, jnp.float32))))) / 200
    print(f"  host work alone: {t_host * 1e6:.0f} µs per environment step (actor call, MuJoCo step, buffer write); "
          f"baseline {t_host_base * 1e6:.0f} µs: {t_host_base / t_host:.2f}x")
    with tempfile.TemporaryDirectory() as d:
        os.environ["GVATHEORY_CACHE"] = d
        rl.train(dataclasses.replace(cfg, steps=cfg.start_steps + 2 * C, eval_every=cfg.start_steps + 2 * C, checkpoint_every=cfg.start_steps + 2 * C),
                 progress=False)  # compile outside the timing (a different run folder)
        t0 = time.perf_counter()
        out = rl.train(cfg, progress=False)
        total = time.perf_counter() - t0
    # the random phase (no updates) and the closing evaluation are timed apart from the TD3 steps: subtract them
    t_rand = timeit(lambda: [env.step(rng.uniform(-1, 1, (1, ad))) for _ in range(200)]) / 200 * cfg.start_steps
    t_eval = timeit(lambda: rl.evaluate(cfg, out["actor"], cfg.eval_episodes, seed=1), repeat=1, min_time=0.0)
    sps = a.steps / max(total - t_rand - t_eval, 1e-9)
    print(f"  training loop: {sps:7.0f} env-steps/s = {flops_step * sps / peak:.1%} of the compute bound "
          f"({peak / flops_step:.0f} env-steps/s); predicted from the parts: {1 / (t_upd + t_host):.0f} env-steps/s "
          f"(baseline parts: {1 / (t_base + t_host_base):.0f}), {t_upd / (t_upd + t_host):.0%} of it in updates, "
          f"{t_host / (t_upd + t_host):.0%} host work")


if __name__ == "__main__":
    main()
