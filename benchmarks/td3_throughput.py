"""TD3 training throughput (gvatheory.control.rl) against this machine's compute bound, measured in one process.

    python benchmarks/td3_throughput.py [--task Walker2d-v5] [--steps 3000]

A TD3 environment step costs one actor call and one MuJoCo step on the host, then (in blocks of ``chunk``)
one update: two critics and a delayed actor, forward and backward, on a batch of 256. Prints

1. the FLOPs of one update, read from XLA's cost analysis of the jitted update scan (not counted by hand),
   and this machine's dense float32 matmul rate (a large matmul through XLA, the same process);
2. the update scan alone: updates/s and its FLOP rate as a fraction of the matmul rate;
3. the host work of one environment step alone (actor call, MuJoCo step, replay-buffer write), per step;
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

from bc_throughput import matmul_rate, timeit
from gvatheory.control import mujoco as mjenv, rl


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="Walker2d-v5", choices=sorted(rl.EXPERTS))
    p.add_argument("--steps", type=int, default=3000, help="environment steps of the timed training loop, after its random phase")
    a = p.parse_args()
    cfg = dataclasses.replace(rl.EXPERTS[a.task], steps=2000 + a.steps, start_steps=2000, eval_every=2000 + a.steps, checkpoint_every=2000 + a.steps)
    env = mjenv.BatchEnv(cfg.task, 1, threads=1)
    od, ad, B, C = env.obs_dim, env.act_dim, cfg.batch_size, cfg.chunk
    state = rl._init(cfg, od, ad, jax.random.key(0))
    rng = np.random.default_rng(0)
    batches = tuple(jnp.asarray(x) for x in (rng.normal(size=(C, B, od)), rng.uniform(-1, 1, (C, B, ad)), rng.normal(size=(C, B)),
                                             rng.normal(size=(C, B, od)), np.zeros((C, B))))
    batches = tuple(x.astype(jnp.float32) for x in batches)
    keys = jax.random.split(jax.random.key(1), C)
    update = rl._make_update(cfg)
    # XLA's cost analysis counts a loop body once, whatever the trip count: ask it about a scan of one update
    cost = update.lower(state, tuple(x[:1] for x in batches), keys[:1]).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops_step = float(cost["flops"])
    peak = matmul_rate()
    print(f"{a.task}: obs {od}, act {ad}, networks 2x{cfg.width}, batch {B}; {jax.devices()[0].device_kind}, {os.cpu_count()} CPU threads")
    print(f"  one update: {flops_step / 1e9:.3f} GFLOP (XLA cost analysis); dense matmul rate here: {peak / 1e9:.1f} GFLOP/s")
    t_upd = timeit(lambda: jax.block_until_ready(update(state, batches, keys))) / C
    print(f"  updates alone: {1 / t_upd:7.0f} updates/s = {flops_step / t_upd / peak:.1%} of the matmul rate")

    act = jax.jit(lambda p, o: rl._actor(cfg, p, o))
    obs = env.reset(*mjenv.reset_states(cfg.task, 1, rng=rng))[0]
    buf = np.zeros((1000, od), np.float32)

    def host_steps(n=200):
        nonlocal obs
        for i in range(n):
            u = np.clip(np.asarray(act(state["actor"], jnp.asarray(obs, jnp.float32))) + 0.1 * rng.standard_normal(ad), -1, 1)
            nobs, r, term, div = env.step(u[None])
            buf[i % 1000] = obs
            obs = env.reset(*mjenv.reset_states(cfg.task, 1, rng=rng))[0] if term[0] or div[0] else nobs[0]

    t_host = timeit(host_steps) / 200
    print(f"  host work alone: {t_host * 1e6:.0f} µs per environment step (actor call, MuJoCo step, buffer write)")
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
          f"({peak / flops_step:.0f} env-steps/s); predicted from the parts: {1 / (t_upd + t_host):.0f} env-steps/s, "
          f"{t_upd / (t_upd + t_host):.0%} of it in updates, {t_host / (t_upd + t_host):.0%} host work")


if __name__ == "__main__":
    main()
