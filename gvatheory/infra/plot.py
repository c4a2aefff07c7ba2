"""The house figure style, the colours shared by every notebook, and the one ``savefig`` (which runs
:func:`gvatheory.infra.audit.audit` on every figure it writes)."""
from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np

from gvatheory.infra.audit import MAX_PANELS, MIN_FONT, TEXT_WIDTH, audit, count_in, data_marks, data_segments, panels, segments_through  # noqa: F401 (re-exported)

# Same meaning, same colour, in every figure: these five are reserved for what they name.
COLORS = {
    "raw": "#d95f02",  # raw SGD iterates
    "ema": "#1b9e77",  # exponential moving average
    "bema": "#7570b3",  # bias-corrected EMA
    "decay": "#e7298a",  # learning-rate decay
    "expert": "#222222",  # the expert / theory
    "theory": "#222222",
}
LABELS = {"raw": "raw iterate", "ema": "EMA", "bema": "BEMA", "decay": "LR decay", "expert": "expert"}
# everything else (systems, arms, directions, sizes): colours that never stand for raw / EMA / BEMA / expert
PALETTE = ["#1f78b4", "#a6761d", "#66a61e", "#e6ab02", "#a6cee3", "#fb9a99", "#666666", "#b15928"]


def use_style() -> None:
    """Sets matplotlib's rcParams for every figure of the repository (call once per notebook)."""
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 200,
            "savefig.bbox": "tight",
            "font.size": 9,
            "axes.titlesize": 9,
            "axes.labelsize": 9,
            "xtick.labelsize": 8,
            "ytick.labelsize": 8,
            "legend.fontsize": 8,
            "legend.frameon": False,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.25,
            "lines.linewidth": 1.3,
            "pdf.fonttype": 42,
            "axes.formatter.limits": (-4, 5),  # 20000 as 20000, not 2.0 with a 1e4 offset that collides with the label
            "axes.prop_cycle": mpl.cycler(color=PALETTE),
        }
    )


def panel_letters(axes, *, dx: float = -26, dy: float = 4) -> None:
    """Writes a, b, c, ... (after z: aa, ab, ...) just above the top-left corner of each panel (in the order given;
    ``dx``, ``dy`` in points from the corner, left of the y tick labels), tagged for :func:`audit`."""
    letters = list(string.ascii_lowercase) + [a + b for a in string.ascii_lowercase for b in string.ascii_lowercase]  # z, then aa
    for ax, letter in zip(np.ravel(axes), letters):
        ax.annotate(letter, xy=(0, 1), xycoords="axes fraction", xytext=(dx, dy), textcoords="offset points",
                    fontsize=10, fontweight="bold", ha="right", va="bottom", gid="panel-letter", annotation_clip=False)


def figure_legend(fig, *, ncol: int = 4, top: float | None = None, axes=None):
    """One legend for the whole figure above its panels: every labelled artist of every panel (of ``axes`` only, when
    given: the other panels keep legends of their own), each label once (the first artist carrying it). The panels are
    laid out below the legend: below ``top`` (a fraction of the figure's height) when given, else below the legend's
    own measured height (tight_layout's padding is the gap), so a legend of two rows, or a short figure, needs no
    hand-tuned number. A figure made with ``layout="constrained"`` (gaps sized column by column) keeps its layout, the
    legend placed above it."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    if top is not None and not 0 < top <= 1:
        raise ValueError(f"top must be in (0, 1], got {top}")
    handles, labels = [], []
    for ax in fig.axes if axes is None else np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        return fig.legend(handles, labels, loc="outside upper center", ncol=ncol)
    leg = fig.legend(handles, labels, loc="upper center", ncol=ncol, bbox_to_anchor=(0.5, 1.0))
    if top is None:
        height = leg.get_window_extent(fig.canvas.get_renderer()).height  # display units (pixels at fig.dpi)
        top = 1 - height / fig.bbox.height
    fig.tight_layout(rect=(0, 0, 1, top))
    return leg


def quiet_minor_ticks(*axes) -> None:
    """Minor ticks of a log axis labelled plainly (``2``, ``0.3``) where matplotlib would label them at all, not
    as ``2×10⁰`` (a log axis that spans under a decade labels its minor ticks, in scientific notation)."""
    import matplotlib.ticker as mticker

    class Plain(mticker.LogFormatterSciNotation):
        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    for ax in axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                axis.set_minor_formatter(Plain(labelOnlyBase=False))


def thousands(*axes, axis: str = "x") -> None:
    """Ticks of ``axis`` ("x" or "y") labelled in thousands, ``50k`` rather than ``50000`` or an offset ``1e5`` that
    collides with the axis label (training steps, returns)."""
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    for ax in axes:
        getattr(ax, f"{axis}axis").set_major_formatter(lambda x, _: f"{x / 1000:g}k")


def label_points(ax, xy, texts, *, fontsize: float = 8, gap: float = 3.0) -> list:
    """Writes ``texts[i]`` next to the data point ``xy[i]`` of ``ax``, each at the first of eight places around its
    point (right-above, right-below, left-above, left-below, above, below, right, left; ``gap`` points away, then 3 and
    5 times as far) where it covers no marker, scatter dot or drawn line (curves, error bars) of the panel, no label
    placed before it, and stays inside the panel; where none is free, the place covering the fewest. Call it once the
    figure's layout is final (after :func:`figure_legend` or ``tight_layout``): places are measured on the drawn figure.
    Returns the annotations."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    if len(xy) != len(texts):
        raise ValueError(f"{len(xy)} points for {len(texts)} labels")
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    marks, segs = data_marks(ax), data_segments(ax, errorbars=True)  # display coordinates
    places = [((k * gap * dx, k * gap * dy), ha, va) for k in (1, 3, 5)  # nearest first, then further out
              for (dx, dy), ha, va in (((1, 1), "left", "bottom"), ((1, -1), "left", "top"), ((-1, 1), "right", "bottom"),
                                       ((-1, -1), "right", "top"), ((0, 2), "center", "bottom"), ((0, -2), "center", "top"),
                                       ((2, 0), "left", "center"), ((-2, 0), "right", "center"))]
    view, taken, out = ax.bbox, [], []
    for p, text in zip(xy, texts):
        best = None
        for off, ha, va in places:
            a = ax.annotate(text, p, textcoords="offset points", xytext=off, ha=ha, va=va, fontsize=fontsize)
            b = a.get_window_extent(renderer)
            inner = b.padded(-1 * fig.dpi / 72)  # a text's box holds blank room: a dot at its very edge is clear
            cost = count_in(marks, inner)
            cost += int(segments_through(segs, inner.extents).sum())
            cost += 10 * sum(b.overlaps(t) for t in taken) + 10 * (b.x0 < view.x0 or b.x1 > view.x1 or b.y0 < view.y0 or b.y1 > view.y1)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, a, b)
            else:
                a.remove()
            if cost == 0:
                break
        taken.append(best[2])
        out.append(best[1])
    return out


def savefig(fig, name: str, *, fig_dir, data: dict | None = None, data_dir=None) -> Path:
    """Writes ``fig_dir/name.pdf`` and ``.png`` and, if given, the plotted numbers to ``data_dir/name.npz``.

    The ``.npz`` holds exactly the arrays the figure shows, so two runs can be compared number for
    number (tests/test_notebooks.py does, for determinism). With ``data_dir``, :func:`audit`'s findings go
    to ``data_dir/name.audit.json`` (the tests require it empty) and are printed. Returns the PNG path.
    """
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(fig_dir / f"{name}.pdf", metadata={"CreationDate": None})  # no timestamp: same figure, same bytes
    fig.savefig(fig_dir / f"{name}.png")
    problems = audit(fig, name)
    for p in problems:
        print(f"figure {name}: {p}")
    if data_dir is not None:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        (Path(data_dir) / f"{name}.audit.json").write_text(json.dumps({"figure": name, "panels": len(panels(fig)), "problems": problems}, indent=1))
        if data is not None:
            np.savez(Path(data_dir) / f"{name}.npz", **{k: np.asarray(v) for k, v in data.items()})
    return fig_dir / f"{name}.png"


def markdown_table(head, rows, digits: int = 3) -> str:
    """A Markdown table for ``IPython.display.Markdown``: floats to ``digits`` significant digits, NaN as "—"."""

    def fmt(x):
        if isinstance(x, (float, np.floating)):
            return "—" if np.isnan(x) else f"{x:.{digits}g}"
        return str(x)

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(fmt(x) for x in r) + " |" for r in rows])
