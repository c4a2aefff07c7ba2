"""``python -m gvatheory.control.bc --system double_pendulum --scale quick --seeds 0 1 2 [--set lr=3e-4 ...]``."""
from __future__ import annotations

import argparse
import dataclasses

from gvatheory import presets
from gvatheory.control import systems
from gvatheory.control.bc.config import BCConfig
from gvatheory.control.bc.engine import run_seeds
from gvatheory.control.mujoco.tasks import TASKS
from gvatheory.core import diagnostics


def main(argv=None) -> int:
    """Runs a preset configuration with a progress bar, writes each seed's result to the cache (where the
    notebooks read it), and prints the GVA summary of the second half of training."""
    p = argparse.ArgumentParser(description=main.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", default="double_pendulum", help=f"one of {sorted(systems.SYSTEMS)} or a MuJoCo task {sorted(TASKS)} (default: double_pendulum)")
    p.add_argument("--scale", default="quick", choices=presets.SCALES)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="override BCConfig fields (numbers, true/false, names)")
    a = p.parse_args(argv)
    if a.system not in systems.SYSTEMS and a.system not in TASKS:
        p.error(f"--system must be one of {sorted(systems.SYSTEMS)} or a MuJoCo task {sorted(TASKS)}, got {a.system!r}")
    try:
        cfg = presets.bc_config(a.system, a.scale)
    except ValueError as e:
        p.error(str(e))
    fields = {f.name: f for f in dataclasses.fields(BCConfig)}
    over = {"system": a.system}
    for item in a.set:
        k, _, v = item.partition("=")
        if k not in fields or k == "policy":
            p.error(f"unknown or unsupported field {k!r}; fields: {sorted(set(fields) - {'policy'})}")
        cur = getattr(cfg, k)
        try:
            if isinstance(cur, bool):
                over[k] = v.lower() in ("1", "true", "yes")
            elif cur is None:  # optional integer fields (init_seed)
                over[k] = None if v.lower() == "none" else int(v)
            else:
                over[k] = type(cur)(v)
        except ValueError:
            p.error(f"{k}={v!r}: expected a value of type {type(cur).__name__}")
    try:
        cfg = dataclasses.replace(cfg, **over)
    except ValueError as e:
        p.error(str(e))
    outs = run_seeds(cfg, a.seeds)
    for seed, out in zip(a.seeds, outs):
        h = 0 if cfg.eval_start else len(out["steps"]) // 2  # the second half of training
        for i, v in enumerate(cfg.variants):
            m = diagnostics.gva_summary(out["val_loss"][i, h:], out["ret"][i, h:], out["failed"][i, h:], out["expert_ret"].mean())
            print(f"seed {seed} {v:5s} " + " ".join(f"{k}={x:.4g}" for k, x in m.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
