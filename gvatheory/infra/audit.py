"""The figure audit: what a reader would trip over, checked mechanically on the drawn figure.

:func:`audit` runs on every figure :func:`gvatheory.infra.plot.savefig` writes; the tests require its findings empty.
:func:`data_marks` and :func:`data_segments` (the data a panel draws, in display coordinates) serve the checks and
:func:`gvatheory.infra.plot.label_points`, which places labels clear of the same data.
"""
from __future__ import annotations

import numpy as np

TEXT_WIDTH = 7.0  # inches: a page's text width; a wider figure is printed scaled down to it
MIN_FONT = 8.0  # points, at the printed size
MAX_PANELS = 4  # in a main figure; a figure named ``*_details`` may have more
NO_LINE = ("None", "none", "", " ")  # matplotlib's spellings of "no line" (and of "no marker")


def data_marks(ax, *, every_vertex: bool = False) -> np.ndarray:
    """The centres of the markers and scatter dots ``ax`` draws, in display coordinates [N, 2]; with ``every_vertex``,
    every vertex of every visible line too (marker or not)."""
    import matplotlib.collections as mcoll

    pts = [ln.get_transform().transform(ln.get_xydata()) for ln in ax.lines
           if ln.get_visible() and len(ln.get_xydata()) and (every_vertex or ln.get_marker() not in (None,) + NO_LINE)]
    pts += [c.get_offset_transform().transform(c.get_offsets()) for c in ax.collections
            if isinstance(c, mcoll.PathCollection) and c.get_visible() and len(c.get_offsets())]
    return np.concatenate([np.asarray(p, float).reshape(-1, 2) for p in pts]) if pts else np.zeros((0, 2))


def line_segments(ln) -> np.ndarray:
    """The drawn segments of the line ``ln`` in display coordinates [M, 2, 2]: none for a marker-only line; a NaN
    breaks the line, so no segment spans it."""
    xy = np.asarray(ln.get_transform().transform(ln.get_xydata()), float).reshape(-1, 2)
    if not ln.get_visible() or ln.get_linestyle() in NO_LINE or len(xy) < 2:
        return np.zeros((0, 2, 2))
    seg = np.stack([xy[:-1], xy[1:]], axis=1)
    return seg[np.isfinite(seg).all(axis=(1, 2))]


def data_segments(ax, *, errorbars: bool = False) -> np.ndarray:
    """Every drawn segment of the lines of ``ax`` (and, with ``errorbars``, of its line collections: error bars), in
    display coordinates [M, 2, 2]."""
    import matplotlib.collections as mcoll

    segs = [line_segments(ln) for ln in ax.lines]
    if errorbars:
        for c in ax.collections:
            if isinstance(c, mcoll.LineCollection) and c.get_visible():
                for v in c.get_segments():
                    q = np.asarray(c.get_transform().transform(v), float)
                    if len(q) > 1:
                        segs.append(np.stack([q[:-1], q[1:]], axis=1))
    segs = np.concatenate(segs) if segs else np.zeros((0, 2, 2))
    return segs[np.isfinite(segs).all(axis=(1, 2))]


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
    - a figure of several panels without a letter on each (:func:`gvatheory.infra.plot.panel_letters`);
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


def segments_through(seg, box) -> np.ndarray:
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


def in_box(xy, box) -> np.ndarray:
    """Which points of ``xy`` [N, 2] lie strictly inside the box (a matplotlib ``Bbox``)."""
    return (xy[:, 0] > box.x0) & (xy[:, 0] < box.x1) & (xy[:, 1] > box.y0) & (xy[:, 1] < box.y1)


def count_in(xy, box) -> int:
    """How many points of ``xy`` [N, 2] lie strictly inside the box."""
    return int(in_box(xy, box).sum())


def _legends_over_data(fig) -> list[str]:
    """The legends inside a panel whose entries (each one's handle and text: the house style draws no frame) cover
    data: a point of a line (a marker or a vertex of its path), a scatter's dot, a drawn segment of a line passing
    through an entry between two vertices (a level line, a sparse curve), or a bar or histogram (its outline through an
    entry, or an entry drawn on its filled inside), of any panel."""
    from matplotlib.path import Path as MplPath
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    xy = np.concatenate([data_marks(ax, every_vertex=True) for ax in fig.axes]) if fig.axes else np.zeros((0, 2))
    lines, areas = [], []  # lines: (segments in display coordinates, the box they are clipped to or None, their reach in pt)
    for ax in fig.axes:
        for ln in ax.lines:
            clip = ln.get_clip_box() if ln.get_clip_on() else None
            lines.append((line_segments(ln), None if clip is None else clip.extents, ln.get_linewidth() / 2 + 1))
        for pa in ax.patches:  # bars and histograms: their outlines as segments, their filled insides as areas
            if not pa.get_visible():
                continue
            clip = pa.get_clip_box() if pa.get_clip_on() else None
            for poly in pa.get_path().to_polygons(pa.get_transform(), closed_only=False):
                if len(poly) > 1 and (pa.get_linewidth() > 0 and pa.get_edgecolor()[3] > 0):
                    lines.append((np.stack([poly[:-1], poly[1:]], axis=1), None if clip is None else clip.extents, pa.get_linewidth() / 2 + 1))
                if pa.get_fill() and pa.get_facecolor()[3] > 0 and len(poly) > 2:
                    areas.append(MplPath(poly))
    out = []
    for i, ax in enumerate(fig.axes):
        leg = ax.get_legend()
        if leg is None or not leg.get_visible():
            continue
        entries = []  # each entry: its text's box, stretched left over the handle drawn before it (a handle's own box
        for t in leg.get_texts():  # is not reliable: a scatter's spans its whole panel)
            box, em = t.get_window_extent(renderer), fig.dpi / 72 * t.get_fontsize()  # the font size, in pixels
            entries.append(Bbox.from_extents(box.x0 - (leg.handlelength + leg.handletextpad) * em, box.y0, box.x1, box.y1))
        # 3 pt: a marker centred just outside an entry still reaches in; a point under two entries counts once
        covered = int(np.logical_or.reduce([in_box(xy, e.padded(3 * fig.dpi / 72)) for e in entries] + [np.zeros(len(xy), bool)]).sum())
        crossing = 0
        for e in entries:
            for seg, clip, reach in lines:  # a line reaches half its width, and 1 pt, beyond its path
                b = e.padded(reach * fig.dpi / 72).extents
                b = b if clip is None else (max(b[0], clip[0]), max(b[1], clip[1]), min(b[2], clip[2]), min(b[3], clip[3]))
                if b[0] < b[2] and b[1] < b[3]:
                    crossing += int(segments_through(seg, b).any())
            probe = [(e.x0, e.y0), (e.x1, e.y0), (e.x0, e.y1), (e.x1, e.y1), ((e.x0 + e.x1) / 2, (e.y0 + e.y1) / 2)]
            crossing += int(any(a.contains_points(probe).any() for a in areas))  # an entry drawn on a filled bar
        if covered:
            out.append(f"the legend of {ax.get_title() or f'axes {i}'!r} covers {covered} data point{'s' if covered != 1 else ''}")
        elif crossing:
            out.append(f"the legend of {ax.get_title() or f'axes {i}'!r} has a line or bar drawn through {crossing} of its entries")
    return out


def _notes_over_data(fig) -> list[str]:
    """The notes written inside a panel (``ax.text``, ``ax.annotate``; not its letter) whose box, less 1 pt of the blank
    room a text's box holds, contains the centre of one of the panel's markers or scatter dots inside its view. A
    marker-less line is not counted: a label is often meant to sit on the curve it names."""
    renderer = fig.canvas.get_renderer()
    out = []
    for i, ax in enumerate(fig.axes):
        notes = [t for t in ax.texts if t.get_visible() and t.get_text().strip() and t.get_gid() != "panel-letter"]
        xy = data_marks(ax)
        v = ax.bbox
        xy = xy[(xy[:, 0] >= v.x0) & (xy[:, 0] <= v.x1) & (xy[:, 1] >= v.y0) & (xy[:, 1] <= v.y1)]
        for t in notes:
            n = count_in(xy, t.get_window_extent(renderer).padded(-1 * fig.dpi / 72))
            if n:
                out.append(f"the note {t.get_text()!r} in {ax.get_title() or f'axes {i}'!r} is written over {n} data point{'s' if n != 1 else ''}")
    return out
