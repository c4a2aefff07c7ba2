"""The house figure style, the colours shared by every notebook, the one ``savefig`` and its hygiene audit."""
from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np

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

TEXT_WIDTH = 7.0  # inches: a page's text width; a wider figure is printed scaled down to it
MIN_FONT = 8.0  # points, at the printed size
MAX_PANELS = 4  # in a main figure; a figure named ``*_details`` may have more


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
    placed before it, and stays inside the panel; where none is free, the place covering the fewest. Call it once the figure's layout is final (after :func:`figure_legend` or
    ``tight_layout``): places are measured on the drawn figure. Returns the annotations."""
    import matplotlib.collections as mcoll

    xy = np.asarray(xy, float).reshape(-1, 2)
    if len(xy) != len(texts):
        raise ValueError(f"{len(xy)} points for {len(texts)} labels")
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    marks = [ln.get_transform().transform(ln.get_xydata()) for ln in ax.lines
             if ln.get_visible() and ln.get_marker() not in (None, "", " ", "None", "none") and len(ln.get_xydata())]
    marks += [c.get_offset_transform().transform(c.get_offsets()) for c in ax.collections
              if isinstance(c, mcoll.PathCollection) and c.get_visible() and len(c.get_offsets())]
    marks = np.concatenate([np.asarray(m, float).reshape(-1, 2) for m in marks]) if marks else np.zeros((0, 2))
    segs = []  # the panel's drawn line segments (curves, error bars), display coordinates
    for ln in ax.lines:
        if ln.get_visible() and ln.get_linestyle() not in ("None", "none", "", " ") and len(ln.get_xydata()) > 1:
            p_ = np.asarray(ln.get_transform().transform(ln.get_xydata()), float)
            segs.append(np.stack([p_[:-1], p_[1:]], axis=1))
    for c in ax.collections:
        if isinstance(c, mcoll.LineCollection) and c.get_visible():
            segs += [np.stack([q[:-1], q[1:]], axis=1) for q in (np.asarray(c.get_transform().transform(v), float) for v in c.get_segments()) if len(q) > 1]
    segs = np.concatenate(segs) if segs else np.zeros((0, 2, 2))
    segs = segs[np.isfinite(segs).all(axis=(1, 2))]
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
            cost = int(((marks[:, 0] > inner.x0) & (marks[:, 0] < inner.x1) & (marks[:, 1] > inner.y0) & (marks[:, 1] < inner.y1)).sum())
            cost += int(_segments_through(segs, inner.extents).sum()) if len(segs) else 0
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


def panels(fig) -> list:
    """The figure's panels: visible axes that are neither colour bars, insets nor twins of another panel."""
    out = []
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison or hasattr(ax, "_colorbar"):
            continue
        if any(ax in other.child_axes for other in fig.axes):
            continue  # an inset
        if any(np.allclose(ax.get_position().bounds, o.get_position().bounds) for o in out):
            continue  # a twin (twinx / twiny) of a panel already counted
        out.append(ax)
    return out


def _inside(ax, xy) -> bool:
    """Whether any finite point of ``xy`` [N, 2] (data coordinates) lies within the axes' view limits."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    ok = np.isfinite(xy).all(1) & (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    return bool(ok.any())


def _drawn_labels(fig) -> set[str]:
    """Labels of the artists that show something (lines and collections with data, patches, images, bar containers)."""
    import matplotlib.collections as mcoll
    import matplotlib.lines as mlines

    seen = set()
    for ax in fig.axes:
        for a in ax.get_children():
            lab = a.get_label() if hasattr(a, "get_label") else None
            if not isinstance(lab, str) or not lab or lab.startswith("_") or not a.get_visible():
                continue
            if isinstance(a, mlines.Line2D) and (len(a.get_xdata()) == 0 or (a.get_transform() is ax.transData and not _inside(ax, a.get_xydata()))):
                continue  # no point of it inside the panel's limits (axhline & co. span it in axes coordinates): nothing a reader sees
            if isinstance(a, mcoll.Collection) and len(a.get_offsets()) == 0 and len(a.get_paths()) == 0:
                continue
            seen.add(lab)
        for c in ax.containers:
            if c.get_label() and not c.get_label().startswith("_") and len(c) > 0:
                seen.add(c.get_label())
    return seen


def audit(fig, name: str) -> list[str]:
    """What a reader would trip over, checked mechanically; returns the problems (empty: the figure passes).

    - text smaller than ``MIN_FONT`` points once the figure is printed at ``TEXT_WIDTH`` inches (wider
      figures shrink; narrower ones print at their size);
    - a main figure (a name not ending in ``_details``) with more than ``MAX_PANELS`` panels;
    - a figure of several panels without a letter on each (:func:`panel_letters`);
    - a legend entry whose label no drawn artist of the figure carries (a proxy for something never shown,
      or a line whose every point lies outside the panel's limits);
    - a tick label in scientific notation (``1.65×10⁰``: log-axis clutter);
    - text drawn over text (a panel letter over a title, tick labels that run into each other);
    - a legend inside a panel that covers data points, or has a line, a bar or a histogram drawn through it;
    - a note written in a panel (a text, an annotation) over the panel's markers or scatter dots.
    """
    fig.canvas.draw()
    problems = []
    scale = min(1.0, TEXT_WIDTH / fig.get_size_inches()[0])
    small = sorted({f"{t.get_text()!r} {t.get_fontsize() * scale:.1f} pt" for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text"))
                    if t.get_visible() and t.get_text().strip() and t.get_fontsize() * scale < MIN_FONT - 1e-6})
    if small:
        problems.append(f"text under {MIN_FONT:g} pt at {TEXT_WIDTH:g} in wide: " + ", ".join(small[:6]) + (" ..." if len(small) > 6 else ""))
    ps = panels(fig)
    if not name.endswith("_details") and len(ps) > MAX_PANELS:
        problems.append(f"{len(ps)} panels in a main figure (at most {MAX_PANELS}; move the rest to {name}_details)")
    if len(ps) > 1:
        unlettered = [i for i, ax in enumerate(ps) if not any(t.get_gid() == "panel-letter" for t in ax.texts)]
        if unlettered:
            problems.append(f"panels {unlettered} have no letter")
    drawn = _drawn_labels(fig)
    for leg in [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends):
        for t in leg.get_texts():
            if t.get_text() not in drawn:
                problems.append(f"legend entry {t.get_text()!r} has no drawn artist")
    for ax in ps:
        for t in ax.get_xticklabels() + ax.get_yticklabels() + ax.get_xticklabels(minor=True) + ax.get_yticklabels(minor=True):
            if t.get_visible() and "times" in t.get_text():
                problems.append(f"tick label {t.get_text()!r}: scientific notation on a tick")
                break
    problems += _text_over_text(fig)
    problems += _legends_over_data(fig)
    problems += _notes_over_data(fig)
    return problems


def _text_over_text(fig, *, slack: float = 1.5) -> list[str]:
    """Pairs of drawn texts (titles, labels, tick labels, panel letters, legend entries, annotations) whose boxes
    overlap by more than ``slack`` points both across and down: a text's box holds blank room above and below its
    glyphs, so boxes that merely touch are not text drawn over text."""
    import matplotlib.text as mtext

    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72  # pixels per point
    unseen = set()  # visible by their own flag, never drawn: the texts of a hidden axis (a twin's shared one), tick
    for ax in fig.axes:  # labels the locator placed outside the view limits
        for axis in (ax.xaxis, ax.yaxis):
            hidden = not (ax.get_visible() and ax.axison and axis.get_visible())
            lo, hi = sorted(axis.get_view_interval())
            eps = 1e-9 * max(1.0, abs(hi - lo))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if hidden or not lo - eps <= tick.get_loc() <= hi + eps:
                    unseen.update(map(id, (tick.label1, tick.label2)))
            if hidden:
                unseen.update(map(id, (axis.label, axis.get_offset_text())))
    texts = {id(t): t for t in fig.findobj(mtext.Text)  # (a legend's TextArea wraps one of these: not counted twice)
             if t.get_visible() and isinstance(t.get_text(), str) and t.get_text().strip() and id(t) not in unseen}
    names = [t.get_text() for t in texts.values()]
    b = np.array([t.get_window_extent(renderer).extents for t in texts.values()]).reshape(-1, 4)  # x0, y0, x1, y1
    # every pair at once (a details figure holds hundreds of texts): the overlap across and down, in pixels
    w = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
    h = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
    i, j = np.nonzero(np.triu((w > slack * px) & (h > slack * px), k=1))
    return [f"text {names[a]!r} drawn over {names[c]!r} ({w[a, c] / px:.1f} x {h[a, c] / px:.1f} pt)" for a, c in zip(i, j)]


def _segments_through(seg, box) -> np.ndarray:
    """Which of the segments ``seg`` (n x 2 x 2, display coordinates) pass through the open box ``(x0, y0, x1, y1)``:
    the slab test (Liang–Barsky), so a segment counts even when neither end lies inside."""
    p, d = seg[:, 0], seg[:, 1] - seg[:, 0]
    lo, hi = np.zeros(len(seg)), np.ones(len(seg))
    with np.errstate(divide="ignore", invalid="ignore"):
        for k, (a, b) in enumerate(((box[0], box[2]), (box[1], box[3]))):
            t0, t1 = (a - p[:, k]) / d[:, k], (b - p[:, k]) / d[:, k]
            flat = d[:, k] == 0  # parallel to this slab: inside it for every t, or never
            t0, t1 = np.where(flat, np.where((p[:, k] > a) & (p[:, k] < b), -np.inf, np.inf), np.minimum(t0, t1)), \
                np.where(flat, np.where((p[:, k] > a) & (p[:, k] < b), np.inf, -np.inf), np.maximum(t0, t1))
            lo, hi = np.maximum(lo, t0), np.minimum(hi, t1)
    return lo < hi


def _legends_over_data(fig) -> list[str]:
    """The legends inside a panel whose entries (each one's handle and text: the house style draws no frame) cover
    data: a point of a line (a marker or a vertex of its path), a scatter's dot, a drawn segment of a line passing
    through an entry between two vertices (a level line, a sparse curve), or a bar or histogram (its outline through an
    entry, or an entry drawn on its filled inside), of any panel."""
    import matplotlib.collections as mcoll
    from matplotlib.transforms import Bbox

    from matplotlib.path import Path as MplPath

    renderer = fig.canvas.get_renderer()
    pts, lines, areas = [], [], []  # lines: (segments in display coordinates, the box the line is clipped to or None, its reach in pt)
    for ax in fig.axes:
        for ln in ax.lines:
            if not ln.get_visible() or not len(ln.get_xydata()):
                continue
            xy_ln = np.asarray(ln.get_transform().transform(ln.get_xydata()), float).reshape(-1, 2)
            pts.append(xy_ln)
            if ln.get_linestyle() not in ("None", "none", "", " ") and len(xy_ln) > 1:
                seg = np.stack([xy_ln[:-1], xy_ln[1:]], axis=1)
                seg = seg[np.isfinite(seg).all(axis=(1, 2))]  # a NaN breaks the line: no segment across it
                clip = ln.get_clip_box() if ln.get_clip_on() else None
                lines.append((seg, None if clip is None else clip.extents, ln.get_linewidth() / 2 + 1))
        pts += [c.get_offset_transform().transform(c.get_offsets()) for c in ax.collections
                if isinstance(c, mcoll.PathCollection) and c.get_visible() and len(c.get_offsets())]
        for pa in ax.patches:  # bars and histograms: their outlines as segments, their filled insides as areas
            if not pa.get_visible():
                continue
            clip = pa.get_clip_box() if pa.get_clip_on() else None
            for poly in pa.get_path().to_polygons(pa.get_transform(), closed_only=False):
                if len(poly) > 1 and (pa.get_linewidth() > 0 and pa.get_edgecolor()[3] > 0):
                    lines.append((np.stack([poly[:-1], poly[1:]], axis=1), None if clip is None else clip.extents, pa.get_linewidth() / 2 + 1))
                if pa.get_fill() and pa.get_facecolor()[3] > 0 and len(poly) > 2:
                    areas.append(MplPath(poly))
    xy = np.concatenate([np.asarray(p, float).reshape(-1, 2) for p in pts]) if pts else np.zeros((0, 2))
    out = []
    for i, ax in enumerate(fig.axes):
        leg = ax.get_legend()
        if leg is None or not leg.get_visible():
            continue
        entries = []  # each entry: its text's box, stretched left over the handle drawn before it (a handle's own box
        for t in leg.get_texts():  # is not reliable: a scatter's spans its whole panel)
            box, em = t.get_window_extent(renderer), fig.dpi / 72 * t.get_fontsize()  # the font size, in pixels
            entries.append(Bbox.from_extents(box.x0 - (leg.handlelength + leg.handletextpad) * em, box.y0, box.x1, box.y1))
        inside = np.zeros(len(xy), bool)
        crossing = 0
        for e in entries:
            m = e.padded(3 * fig.dpi / 72)  # 3 pt: a marker centred just outside still reaches in
            inside |= (xy[:, 0] > m.x0) & (xy[:, 0] < m.x1) & (xy[:, 1] > m.y0) & (xy[:, 1] < m.y1)
            for seg, clip, reach in lines:  # a line reaches half its width, and 1 pt, beyond its path
                b = e.padded(reach * fig.dpi / 72).extents
                b = b if clip is None else (max(b[0], clip[0]), max(b[1], clip[1]), min(b[2], clip[2]), min(b[3], clip[3]))
                if b[0] < b[2] and b[1] < b[3]:
                    crossing += int(_segments_through(seg, b).any())
            probe = [(e.x0, e.y0), (e.x1, e.y0), (e.x0, e.y1), (e.x1, e.y1), ((e.x0 + e.x1) / 2, (e.y0 + e.y1) / 2)]
            crossing += int(any(a.contains_points(probe).any() for a in areas))  # an entry drawn on a filled bar
        if inside.any():
            out.append(f"the legend of {ax.get_title() or f'axes {i}'!r} covers {inside.sum()} data point{'s' if inside.sum() != 1 else ''}")
        elif crossing:
            out.append(f"the legend of {ax.get_title() or f'axes {i}'!r} has a line or bar drawn through {crossing} of its entries")
    return out


def _notes_over_data(fig) -> list[str]:
    """The notes written inside a panel (``ax.text``, ``ax.annotate``; not its letter) whose box, less 1 pt of the blank
    room a text's box holds, contains the centre of one of the panel's markers or scatter dots inside its view. A
    marker-less line is not counted: a label is often meant to sit on the curve it names."""
    import matplotlib.collections as mcoll

    renderer = fig.canvas.get_renderer()
    out = []
    for i, ax in enumerate(fig.axes):
        notes = [t for t in ax.texts if t.get_visible() and t.get_text().strip() and t.get_gid() != "panel-letter"]
        if not notes:
            continue
        pts = [ln.get_transform().transform(ln.get_xydata()) for ln in ax.lines
               if ln.get_visible() and ln.get_marker() not in (None, "", " ", "None", "none") and len(ln.get_xydata())]
        pts += [c.get_offset_transform().transform(c.get_offsets()) for c in ax.collections
                if isinstance(c, mcoll.PathCollection) and c.get_visible() and len(c.get_offsets())]
        if not pts:
            continue
        xy = np.concatenate([np.asarray(p, float).reshape(-1, 2) for p in pts])
        view = ax.bbox
        xy = xy[(xy[:, 0] >= view.x0) & (xy[:, 0] <= view.x1) & (xy[:, 1] >= view.y0) & (xy[:, 1] <= view.y1)]
        for t in notes:
            b = t.get_window_extent(renderer).padded(-1 * fig.dpi / 72)
            n = int(((xy[:, 0] > b.x0) & (xy[:, 0] < b.x1) & (xy[:, 1] > b.y0) & (xy[:, 1] < b.y1)).sum())
            if n:
                out.append(f"the note {t.get_text()!r} in {ax.get_title() or f'axes {i}'!r} is written over {n} data point{'s' if n != 1 else ''}")
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
