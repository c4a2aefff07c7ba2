"""Executes the notebooks headless with papermill: ``python -m gvatheory.infra.execute --scale quick``.

Writes executed copies to ``build/<scale>/``, figures to the scale's figure folder (``figures/`` for quick,
``figures/<scale>/`` otherwise) and, after the notebooks, the claims ledger there
(:mod:`gvatheory.infra.ledger`). A failing notebook
stops the build with a non-zero exit that names the notebook and the cell. ``--jobs 2`` (what ``make
figures`` uses) runs two notebooks at a time, each in its own process with its console output in
``build/<scale>/NN_*.log``: on two cores a notebook alone leaves one idle through much of its compilation
and Python work.

``--tasks`` (``make figures TASKS="Walker2d-v5"``) runs notebooks 11 and 12 on the named locomotion tasks instead of
the scale's own; their claims of other tasks, recorded by earlier runs into the same folder, are kept, so a
long paper-scale build can be made task by task. At paper scale the plotted numbers and the claims go next to
the figures (``figures/paper/data``, ``figures/paper/claims``), to be committed with them: that build takes
hours, and these small files let anyone re-plot its figures and re-read its ledger without re-running it. With
``--jobs N`` at paper scale the runs notebooks 11 and 12 read are first computed N at a time, one (task, seed) per
process (:mod:`gvatheory.infra.precompute`): a notebook alone computes its seeds one after another on one core.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SCALES = ("smoke", "quick", "paper")
ROOT = Path(__file__).resolve().parents[2]  # the repository
# notebooks that re-read runs another one caches (05 and 06 read 04's, 08 the base runs of 07, 09 the base
# run of 08, 05 and 12 the locomotion runs of 11): with --jobs > 1 each starts only after those it reads have finished, rather than recompute
AFTER = {"05": ("04", "11"), "06": ("04",), "08": ("07",), "09": ("08",), "12": ("11",)}
# notebooks that measure wall time and put it in a figure or a claim (07's compute axis, 08's seconds per
# run): with --jobs > 1 each runs alone, so that no other notebook's load enters those numbers
EXCLUSIVE = frozenset({"07", "08"})
# with --jobs > 1, the order in which ready notebooks are started: the exclusive ones, then by the longest
# chain of work that waits on each (11 first: 12 and 05 start only after it; then 04, which 05 also
# waits for), then the long ones, so that the short notebooks fill the gaps. The quick build on 2 cores
# started 04 and 10 before 11 and spent its last 400 s on 12 and 05 alone (each notebook's time is in the
# build's log)
PRIORITY = ("07", "08", "11", "04", "12", "10", "05", "06", "09", "01", "02", "03", "00")
# the overview reads every other notebook's results (its claims and notebook 11's numbers): it runs last, alone
LAST = "00"


def notebooks(only: list[str] | None = None, folder: Path = ROOT / "notebooks") -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` in order (the overview ``00`` last: it reads the others' results),
    filtered by prefixes such as ``["02", "03"]``."""
    nbs = sorted(folder.glob("[0-9][0-9]_*.ipynb"), key=lambda p: (p.name[:2] == LAST, p.name))  # the overview last
    if only:
        nbs = [p for p in nbs if any(p.name.startswith(o) for o in only)]
        if not nbs:
            raise SystemExit(f"no notebook in {folder} matches {only}")
    return nbs


def takes_tasks(nb: Path) -> bool:
    """Whether notebook ``nb`` has a ``tasks`` parameter (the locomotion tasks it runs: 11 and 12)."""
    import papermill as pm

    return "tasks" in pm.inspect_notebook(str(nb))


def run(nb: Path, *, scale: str, seed: int, out_dir: Path, fig_dir: Path, data_dir: Path, tasks=None, log=print) -> float:
    """Executes one notebook with papermill; returns its wall time in seconds.

    ``tasks`` (a list of locomotion task names, or None for the scale's own) goes to a notebook that takes it
    (:func:`takes_tasks`); such a run replaces the notebook's recorded claims on those tasks only and keeps the
    others'. Any other run replaces all of the notebook's claims.

    Raises:
        RuntimeError: naming the notebook, the cell and the error, if a cell fails.
    """
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    params = dict(scale=scale, seed=seed, fig_dir=str(fig_dir.resolve()), data_dir=str(data_dir.resolve()))
    if tasks is not None and takes_tasks(nb):
        params["tasks"] = list(tasks)
    for old in (Path(data_dir).parent / "claims").glob(f"{nb.name[:2]}__*.json"):  # the notebook records its claims anew
        if "tasks" not in params or json.loads(old.read_text()).get("testbed") in params["tasks"]:
            old.unlink()
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(
            str(nb),
            str(out_dir / nb.name),
            parameters=params,
            cwd=str(nb.parent),
            kernel_name="python3",
            progress_bar=False,
        )
    except pm.PapermillExecutionError as e:
        raise RuntimeError(
            f"{nb.name} failed in cell {e.cell_index} (execution count {e.exec_count}): {e.ename}: {e.evalue}\n"
            f"executed copy with the traceback: {out_dir / nb.name}"
        ) from None
    dt = time.perf_counter() - t0
    log(f"{nb.name}: {dt:.1f} s")
    return dt


def run_parallel(nbs: list[Path], jobs: int, launch, *, log=print, poll_s: float = 0.5) -> float:
    """Runs the notebooks ``nbs`` at most ``jobs`` at a time; returns the wall time in seconds.

    ``launch(nb)`` starts one notebook and returns a ``subprocess.Popen``-like handle (``poll()``,
    ``returncode``, ``kill()``). A notebook waits for those it reads (``AFTER``) that are among
    ``nbs``; one in ``EXCLUSIVE`` runs alone; ``LAST`` starts when all others have finished; ready notebooks
    start in ``PRIORITY`` order.

    Raises:
        RuntimeError: naming the first notebook that failed (the others still running are stopped).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    rank = {k: i for i, k in enumerate(PRIORITY)}
    pending = sorted(nbs, key=lambda p: (rank.get(p.name[:2], len(rank)), p.name))
    names = {p.name[:2] for p in nbs}
    running, done = {}, set()
    t_all = time.perf_counter()
    while pending or running:
        for nb in list(pending):
            deps = AFTER.get(nb.name[:2], ())
            alone = nb.name[:2] in EXCLUSIVE
            if any(r.name[:2] in EXCLUSIVE for r in running) or (alone and running):
                break  # an exclusive notebook runs alone, and waits for the others to finish: keep the order
            if nb.name[:2] == LAST and (running or len(pending) > 1):
                break  # the overview waits for every other notebook
            if len(running) < jobs and all(d not in names or d in done for d in deps):
                pending.remove(nb)
                log(f"{nb.name}: started")
                running[nb] = (launch(nb), time.perf_counter())
        time.sleep(poll_s)
        for nb, (h, t0) in list(running.items()):
            if h.poll() is None:
                continue
            del running[nb]
            if h.returncode:
                for other, _ in running.values():
                    other.kill()
                raise RuntimeError(f"{nb.name} failed (exit {h.returncode})")
            done.add(nb.name[:2])
            log(f"{nb.name}: {time.perf_counter() - t0:.1f} s")
    return time.perf_counter() - t_all


def main(argv=None) -> int:
    """Command-line entry point (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", default="quick", choices=SCALES, help="preset of every notebook (default: quick)")
    p.add_argument("--seed", type=int, default=0, help="seed passed to every notebook (default: 0)")
    p.add_argument("--only", nargs="*", default=None, help="notebook prefixes to run, e.g. 02 03 (default: all)")
    p.add_argument("--fig-dir", type=Path, default=None, help="where figures and the ledger go (default: figures/ for quick, figures/<scale>/ otherwise)")
    p.add_argument("--out-dir", type=Path, default=None, help="executed notebooks (default: build/<scale>/)")
    p.add_argument("--data-dir", type=Path, default=None, help="plotted numbers, .npz (default: build/<scale>/data/)")
    p.add_argument("--jobs", type=int, default=1, help="notebooks run at once, each in its own process (default: 1)")
    p.add_argument("--compare", type=Path, default=None, help="another build's claims folder, for the ledger's stability column")
    p.add_argument("--no-ledger", action="store_true", help="do not write CLAIMS.md after the notebooks")
    p.add_argument("--tasks", nargs="+", default=None, help="locomotion tasks for notebooks 11 and 12, e.g. Walker2d-v5 (default: the scale's own)")
    a = p.parse_args(argv)
    if a.jobs < 1:
        p.error(f"--jobs must be >= 1, got {a.jobs}")
    from gvatheory import presets
    from gvatheory.infra import ledger

    if a.tasks is not None:  # checked before any notebook starts
        try:
            a.tasks = list(presets.locomotion_tasks(a.tasks, a.scale))
        except ValueError as e:
            p.error(f"--tasks: {e}")
        if not any(takes_tasks(nb) for nb in notebooks(a.only)):
            p.error(f"--tasks applies to notebooks that take a tasks parameter (11, 12); none of {a.only} does")
    out_dir = a.out_dir or ROOT / "build" / a.scale
    a.fig_dir = a.fig_dir or ledger.fig_dir(a.scale)
    data_dir = a.data_dir or (out_dir / "data" if a.out_dir else ledger.data_dir(a.scale))
    logs = {}

    def launch(nb):  # one notebook per process; its output goes to build/<scale>/NN_*.log
        logs[nb.name] = out_dir / f"{nb.stem}.log"
        cmd = [sys.executable, "-m", "gvatheory.infra.execute", "--scale", a.scale, "--seed", str(a.seed), "--only", nb.name[:2],
               "--fig-dir", str(a.fig_dir), "--out-dir", str(out_dir), "--data-dir", str(data_dir), "--no-ledger"] + (["--tasks", *a.tasks] if a.tasks else [])
        with open(logs[nb.name], "w") as f:
            return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)

    try:
        picked = {nb.name[:2] for nb in notebooks(a.only)}
        if a.scale == "paper" and a.jobs > 1 and picked & {"11", "12"}:  # their seeds in parallel processes first
            from gvatheory.infra import precompute

            precompute.run(a.tasks, a.scale, a.seed, a.jobs, pendulum="11" in picked)
        if a.jobs > 1:
            out_dir.mkdir(parents=True, exist_ok=True)
            wall = run_parallel(notebooks(a.only), a.jobs, launch)
        else:
            wall = sum(run(nb, scale=a.scale, seed=a.seed, out_dir=out_dir, fig_dir=a.fig_dir, data_dir=data_dir, tasks=a.tasks) for nb in notebooks(a.only))
    except RuntimeError as e:
        log = next((f for name, f in logs.items() if str(e).startswith(name)), None)
        print(f"error: {e}" + (f"; its log: {log}\n{log.read_text()[-3000:]}" if log else ""), file=sys.stderr)
        return 1
    at_once = f" ({a.jobs} at a time)" if a.jobs > 1 else ""
    print(f"all notebooks done at scale={a.scale} in {wall:.1f} s{at_once}; figures in {a.fig_dir}")
    if not a.no_ledger:  # the claims every notebook recorded, this run's and earlier ones' of the same build folder
        print(f"ledger: {ledger.write(a.scale, data_dir.parent / 'claims', a.fig_dir, a.compare, ledger.default_readme(a.scale, a.fig_dir))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
