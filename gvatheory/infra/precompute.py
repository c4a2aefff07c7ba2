"""Computes the runs notebooks 11 and 12 read, one (task, seed) per process, before the notebooks run.

A notebook computes its seeds one after another in one process, and a locomotion run's rollouts (C MuJoCo, stepped
from Python) keep one core busy: at paper scale a Walker2d seed of notebook 12 (its main run, the decayed branch, the
clean-label run and the path) is ~13 minutes of one core. This module computes the same results with ``jobs``
processes at once — :func:`gvatheory.control.locomotion.runs` is what notebook 12 itself calls, one seed at a time
here — so the notebooks then read them from the cache::

    python -m gvatheory.infra.precompute --scale paper --tasks Walker2d-v5 --jobs 2

``python -m gvatheory.infra.execute --scale paper --jobs N`` (``make figures SCALE=paper JOBS=N``) calls it first
when notebook 11 or 12 is selected. It changes no result: a unit it did not compute, the notebook computes itself.
"""
from __future__ import annotations

import argparse
import sys
import time

PENDULUM = "pendulum"  # notebook 11's InvertedDoublePendulum runs, a unit like a locomotion task's


def units(tasks, scale: str, seed: int = 0, *, pendulum: bool = True) -> list[tuple[str, int]]:
    """The (task, seed) pairs notebooks 11 and 12 read at ``scale``: notebook 11's pendulum seeds (``pendulum``),
    then each locomotion task's seeds. ``tasks``: as :func:`gvatheory.presets.locomotion_tasks`. Checked here."""
    from gvatheory import presets

    names = presets.locomotion_tasks(tasks, scale)
    p11 = presets.notebook("11", scale)
    out = [(PENDULUM, s) for s in range(seed, seed + p11.n_seeds)] if pendulum else []
    return out + [(t, s) for t in names for s in range(seed, seed + p11.loco_seeds)]


def compute(task: str, scale: str, seed: int) -> float:
    """Computes (or finds cached) everything notebooks 11 and 12 read for one (task, seed); returns seconds spent."""
    from gvatheory import presets
    from gvatheory.control import bc

    t0 = time.perf_counter()
    if task == PENDULUM:
        bc.run_seeds(presets.notebook("11", scale).cfg, [seed])
    else:
        from gvatheory.control import locomotion

        locomotion.runs(task, scale, [seed])
    return time.perf_counter() - t0


def _demonstrations(tasks, scale: str) -> None:
    from gvatheory import presets
    from gvatheory.control import bc
    from gvatheory.control import decomposition as dec

    for t in sorted(tasks):
        if t == PENDULUM:
            bc.demonstrations(presets.notebook("11", scale).cfg)
        else:
            cfg = presets.locomotion_config(t, scale)
            for c in (cfg, dec.decayed(cfg), dec.clean(cfg)):
                bc.demonstrations(c)


def run(tasks, scale: str, seed: int = 0, jobs: int = 1, *, pendulum: bool = True, log=print) -> float:
    """Computes every unit of :func:`units` with ``jobs`` processes (spawned: JAX does not survive a fork), with a
    progress bar; returns the wall time in seconds. A failing unit raises in this process, naming it. The
    demonstrations the units share are made first, in this process: the cache writes each result through one
    temporary file name, so two processes computing the same result at once would collide."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    todo = units(tasks, scale, seed, pendulum=pendulum)
    t0 = time.perf_counter()
    if jobs > 1:  # the demonstrations every seed of a task shares, made here first: two processes must not write one cache file
        _demonstrations({t for t, _ in todo}, scale)
    bar = tqdm(total=len(todo), desc=f"runs of notebooks 11/12 at scale={scale}, {jobs} at a time")
    if jobs == 1:
        for u in todo:
            compute(u[0], scale, u[1])
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(compute, t, scale, s): (t, s) for t, s in todo}
            for f in as_completed(futures):
                try:
                    f.result()
                except Exception as e:
                    raise RuntimeError(f"precomputing {futures[f]} at scale={scale} failed: {e!r}") from e
                bar.update()
    bar.close()
    wall = time.perf_counter() - t0
    log(f"{len(todo)} runs of notebooks 11/12 ready in {wall:.1f} s ({jobs} at a time)")
    return wall


def main(argv=None) -> int:
    """Command-line entry point (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", default="paper", choices=("smoke", "quick", "paper"))
    p.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    p.add_argument("--tasks", nargs="+", default=None, help="locomotion tasks (default: the scale's own)")
    p.add_argument("--jobs", type=int, default=2, help="processes at once (default: 2)")
    p.add_argument("--no-pendulum", action="store_true", help="skip notebook 11's InvertedDoublePendulum runs")
    a = p.parse_args(argv)
    if a.jobs < 1:
        p.error(f"--jobs must be >= 1, got {a.jobs}")
    try:
        units(a.tasks, a.scale, a.seed)  # checked before any compute
    except ValueError as e:
        p.error(str(e))
    run(a.tasks, a.scale, a.seed, a.jobs, pendulum=not a.no_pendulum)
    return 0


if __name__ == "__main__":
    sys.exit(main())
