"""Throughput of closed-loop evaluation and BC training, as ratios measured in this one process.

    python benchmarks/bc_throughput.py [--system double_pendulum] [--n-eval 32] [--horizon 1000]

Prints (1) rollout env-steps/s of the jitted scan (gvatheory.control.rollout) against the same policy
and system stepped from Python, one state at a time (a Gymnasium-style loop) and as one vectorised
batch per step; (2) the FLOP rate of the policy's work inside the scan as a fraction of this machine's
dense-matmul rate, measured here on a large float32 matmul; (3) training steps/s and FLOP rate for the
default (2x256) and paper-scale (4x256) networks. Nothing is asserted: the numbers are the result.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from gvatheory import presets
from gvatheory.control import bc, policies, rollout


def timeit(fn, *, repeat=3, min_time=0.5):
    """Best wall time of fn() over ``repeat`` rounds (each at least ``min_time`` s); fn must block."""
    fn()  # compile / warm up
    best = np.inf
    for _ in range(repeat):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        best = min(best, dt / n)
    return best


def matmul_rate(n=2048):
    """Dense float32 matmul FLOP/s of this machine through XLA (n x n @ n x n)."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    f = jax.jit(lambda a: a @ a)
    t = timeit(lambda: f(a).block_until_ready())
    return 2 * n**3 / t


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", default="double_pendulum")
    p.add_argument("--n-eval", type=int, default=presets.BC["quick"].n_eval)
    p.add_argument("--horizon", type=int, default=1000)
    p.add_argument("--python-steps", type=int, default=200, help="steps timed for the slow Python loops")
    a = p.parse_args()
    cfg = dataclasses.replace(presets.BC["quick"], system=a.system, n_eval=a.n_eval, horizon=a.horizon)
    ev = bc.make_evaluator(cfg)
    sys, pc = ev.system, cfg.policy
    params = policies.init(pc, sys.n, sys.m, key=jax.random.key(0))
    x0 = jnp.asarray(ev.data["x0"])
    N, H = x0.shape[0], a.horizon
    peak = matmul_rate()
    print(f"device: {jax.devices()[0].device_kind}; dense matmul rate {peak / 1e9:.1f} GFLOP/s")

    scan = jax.jit(lambda p, x0: rollout.rollout(sys, lambda x: ev.policy(p, x), x0, H, fail_cost=1.0).ret)
    t_scan = timeit(lambda: scan(params, x0).block_until_ready())
    rate_scan = N * H / t_scan

    act1 = jax.jit(lambda p, x: ev.policy(p, x))
    step1 = jax.jit(sys.step)
    actN = jax.jit(lambda p, x: ev.policy(p, x))
    stepN = jax.jit(jax.vmap(sys.step))
    K = a.python_steps

    def python_single():
        for i in range(N if N * K <= 4000 else max(1, 4000 // K)):
            x = x0[i]
            for _ in range(K):
                x = step1(x, act1(params, x))
        x.block_until_ready()

    n_single = (N if N * K <= 4000 else max(1, 4000 // K)) * K
    t_single = timeit(python_single, repeat=1, min_time=0.0)
    rate_single = n_single / t_single

    def python_batch():
        x = x0
        for _ in range(K):
            x = stepN(x, actN(params, x))
        x.block_until_ready()

    t_batch = timeit(python_batch, repeat=2, min_time=0.0)
    rate_batch = N * K / t_batch
    fl = policies.flops_per_action(pc, sys.n, sys.m)
    print(f"\nrollout of {sys.name}, {N} start states, H={H}, policy {pc.depth}x{pc.width} ({fl / 1e3:.0f} kFLOP per action)")
    print(f"  jitted scan             {rate_scan:12.0f} env-steps/s")
    print(f"  Python loop, batched    {rate_batch:12.0f} env-steps/s   scan / this = {rate_scan / rate_batch:7.1f}x")
    print(f"  Python loop, one state  {rate_single:12.0f} env-steps/s   scan / this = {rate_scan / rate_single:7.1f}x")
    print(f"  policy FLOP rate in the scan: {rate_scan * fl / 1e9:.2f} GFLOP/s = {rate_scan * fl / peak:.1%} of the matmul rate")

    print("\ntraining (Adam, batch 64; FLOPs counted as 3x the forward pass per sample)")
    for name, pcfg in (("default 2x256", pc), ("paper 4x256", policies.PolicyConfig(depth=4, width=256))):
        c = dataclasses.replace(cfg, policy=pcfg)
        e = bc.make_evaluator(c)
        import optax

        opt = optax.adam(1e-3)
        prm = policies.init(pcfg, sys.n, sys.m, key=jax.random.key(0))
        X, U = jnp.asarray(e.data["X"]), jnp.asarray(e.data["U"])

        @jax.jit
        def train(prm, s, key):
            def step(carry, k):
                prm, s = carry
                idx = jax.random.randint(k, (c.batch_size,), 0, X.shape[0])
                g = jax.grad(e.loss)(prm, X[idx], U[idx])
                u, s = opt.update(g, s, prm)
                return (optax.apply_updates(prm, u), s), None

            return jax.lax.scan(step, (prm, s), jax.random.split(key, 500))[0]

        s0 = opt.init(prm)
        t = timeit(lambda: jax.block_until_ready(train(prm, s0, jax.random.key(1))), repeat=2)
        sps = 500 / t
        flops = 3 * c.batch_size * policies.flops_per_action(pcfg, sys.n, sys.m) * sps
        print(f"  {name}: {sps:8.0f} steps/s, {flops / 1e9:6.2f} GFLOP/s = {flops / peak:.1%} of the matmul rate")


if __name__ == "__main__":
    main()
