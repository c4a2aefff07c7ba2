"""Executes the notebooks headless with papermill: ``python -m gvatheory.execute --scale quick``.

Writes executed copies to ``build/<scale>/`` and figures to the figure folder. A failing notebook
stops the build with a non-zero exit that names the notebook and the cell.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

SCALES = ("smoke", "quick", "paper")
ROOT = Path(__file__).resolve().parents[1]


def notebooks(only: list[str] | None = None, folder: Path = ROOT / "notebooks") -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` in order, filtered by prefixes such as ``["02", "03"]``."""
    nbs = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        nbs = [p for p in nbs if any(p.name.startswith(o) for o in only)]
        if not nbs:
            raise SystemExit(f"no notebook in {folder} matches {only}")
    return nbs


def run(nb: Path, *, scale: str, seed: int, out_dir: Path, fig_dir: Path, data_dir: Path, log=print) -> float:
    """Executes one notebook with papermill; returns its wall time in seconds.

    Raises:
        RuntimeError: naming the notebook, the cell and the error, if a cell fails.
    """
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(
            str(nb),
            str(out_dir / nb.name),
            parameters=dict(scale=scale, seed=seed, fig_dir=str(fig_dir.resolve()), data_dir=str(data_dir.resolve())),
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


def main(argv=None) -> int:
    """Command-line entry point (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", default="quick", choices=SCALES, help="preset of every notebook (default: quick)")
    p.add_argument("--seed", type=int, default=0, help="seed passed to every notebook (default: 0)")
    p.add_argument("--only", nargs="*", default=None, help="notebook prefixes to run, e.g. 02 03 (default: all)")
    p.add_argument("--fig-dir", type=Path, default=ROOT / "figures", help="where figures go (default: figures/)")
    p.add_argument("--out-dir", type=Path, default=None, help="executed notebooks (default: build/<scale>/)")
    p.add_argument("--data-dir", type=Path, default=None, help="plotted numbers, .npz (default: build/<scale>/data/)")
    a = p.parse_args(argv)
    out_dir = a.out_dir or ROOT / "build" / a.scale
    data_dir = a.data_dir or out_dir / "data"
    total = 0.0
    for nb in notebooks(a.only):
        try:
            total += run(nb, scale=a.scale, seed=a.seed, out_dir=out_dir, fig_dir=a.fig_dir, data_dir=data_dir)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    print(f"all notebooks done at scale={a.scale} in {total:.1f} s; figures in {a.fig_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
