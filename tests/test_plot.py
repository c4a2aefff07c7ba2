"""The figure audit finds what it says it finds, and passes a figure without those faults."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.lines as mlines
import matplotlib.pyplot as plt
import numpy as np
import pytest

from gvatheory.infra import plot


@pytest.fixture(autouse=True)
def style():
    plot.use_style()
    yield
    plt.close("all")


def _clean(n=2, width=7.0):
    fig, ax = plt.subplots(1, n, figsize=(width, 2.5), squeeze=False)
    for a in ax[0]:
        a.plot([0, 1, 2], [1.0, 3.0, 2.0], color=plot.COLORS["raw"], label="raw iterate")
        a.legend()
        a.set(xlabel="step", ylabel="return")
    plot.panel_letters(ax[0])
    return fig, ax[0]


def test_a_clean_figure_passes():
    fig, _ = _clean()
    assert plot.audit(fig, "x") == []


def test_small_text_at_the_printed_size():
    fig, _ = _clean(width=14.0)  # printed at 7 in: every 8-9 pt label shrinks to half
    assert any("under 8 pt" in p for p in plot.audit(fig, "x"))
    fig, ax = _clean()
    ax[0].set_title("tiny", fontsize=6)
    probs = plot.audit(fig, "x")
    assert len(probs) == 1 and "'tiny' 6.0 pt" in probs[0]


def test_panel_count_and_letters():
    fig, ax = plt.subplots(2, 3, figsize=(7, 4))
    probs = plot.audit(fig, "y")
    assert any("6 panels in a main figure" in p for p in probs) and any("no letter" in p for p in probs)
    plot.panel_letters(ax)
    fig.tight_layout()
    assert plot.audit(fig, "y_details") == [], "a details figure may have more panels"
    fig, ax = plt.subplots(1, 2, figsize=(7, 2.5))
    ax[0].twinx()  # a twin is not a panel
    plot.panel_letters(ax)
    fig.tight_layout()  # else the twin's right-hand tick labels run into the next panel's (the audit says so)
    assert len(plot.panels(fig)) == 2 and plot.audit(fig, "z") == []


def test_legend_entry_without_a_drawn_artist():
    fig, ax = _clean()
    ax[0].plot([], [], "x", label="a rollout fell")  # labelled, but nothing fell: nothing is drawn
    ax[0].legend()
    ax[1].legend(handles=[mlines.Line2D([], [], color="k", label="a proxy")])
    probs = plot.audit(fig, "x")
    assert sorted(probs) == sorted(["legend entry 'a rollout fell' has no drawn artist", "legend entry 'a proxy' has no drawn artist"])
    fig, ax = _clean(1)
    ax[0].plot([5.0], [-40.0], "x", label="off the panel")  # drawn, but outside the limits set below
    ax[0].axhline(2.5, color="k", label="a level")  # spans the panel in axes coordinates: visible
    ax[0].set(xlim=(0, 2), ylim=(0, 4))
    ax[0].legend()
    assert plot.audit(fig, "x") == ["legend entry 'off the panel' has no drawn artist"]


def test_figure_legend_counts_and_bar_containers():
    fig, ax = plt.subplots(1, 2, figsize=(7, 2.5))
    ax[0].bar([0, 1], [1, 2], label="variance")
    ax[1].plot([0, 1], [0, 1], label="EMA")
    plot.panel_letters(ax)
    plot.figure_legend(fig, ncol=2)
    assert plot.audit(fig, "x") == []
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["variance", "EMA"]


def test_figure_legend_makes_room_for_its_own_rows():
    """Without ``top`` the panels end just below the legend, however many rows it has and however short the figure."""
    for n, height in ((2, 2.5), (8, 2.5), (8, 6.0)):
        fig, ax = plt.subplots(1, 2, figsize=(7, height))
        for i in range(n):
            ax[i % 2].plot([0, 1], [0, i], label=f"curve {i}")
        ax[0].set_title("a title")
        plot.panel_letters(ax)
        leg = plot.figure_legend(fig, ncol=4)
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        gap_pt = (leg.get_window_extent(r).y0 - max(a.get_tightbbox(r).y1 for a in fig.axes)) * 72 / fig.dpi
        assert 1 < gap_pt < 12, (n, height, gap_pt)  # no overlap, and no band of empty space above the panels
        assert plot.audit(fig, "x") == []
    with pytest.raises(ValueError):
        plot.figure_legend(fig, top=1.5)


def test_panel_letters_go_on_after_z():
    fig, ax = plt.subplots(5, 6, figsize=(7, 7))
    plot.panel_letters(ax)
    letters = [t.get_text() for a in ax.flat for t in a.texts if t.get_gid() == "panel-letter"]
    assert letters[:2] == ["a", "b"] and letters[25:] == ["z", "aa", "ab", "ac", "ad"]
    assert not any("no letter" in p for p in plot.audit(fig, "x_details"))


def test_a_legend_over_data_points():
    """Markers under a legend's entries are found; the same legend over an empty corner passes."""
    fig, ax = plt.subplots(figsize=(3.5, 2.5))
    x = np.linspace(0, 1, 11)
    ax.plot(x, x, "o", ms=3, label="rises to the upper right")
    ax.legend(loc="upper right")
    probs = plot.audit(fig, "x")
    assert len(probs) == 1 and probs[0].startswith("the legend of 'axes 0' covers"), probs
    ax.legend(loc="upper left")
    assert plot.audit(fig, "x") == []


def test_segments_through_a_box_match_dense_sampling():
    """The slab test against ground truth: a segment passes through the open box iff one of 2,001 points along it is
    inside (random segments, some ends inside, some axis-parallel)."""
    from gvatheory.infra.audit import segments_through

    rng = np.random.default_rng(0)
    seg = rng.uniform(-1, 2, size=(2000, 2, 2))
    seg[:400, 1, 0] = seg[:400, 0, 0]  # vertical
    seg[400:800, 1, 1] = seg[400:800, 0, 1]  # horizontal
    box = (0.2, 0.3, 0.9, 0.7)
    t = np.linspace(0, 1, 2001)[None, :, None]
    p = seg[:, :1] + t * (seg[:, 1:] - seg[:, :1])
    truth = ((p[..., 0] > box[0]) & (p[..., 0] < box[2]) & (p[..., 1] > box[1]) & (p[..., 1] < box[3])).any(axis=1)
    got = segments_through(seg, box)
    assert 200 < truth.sum() < 1800 and truth[:800].sum() > 50  # both outcomes, axis-parallel ones too
    # sampling can miss a segment that clips a corner by less than 1/2000 of its length: allow a handful (of ~1000)
    assert (got & ~truth).sum() <= 5 and not (truth & ~got).any()


def test_a_level_line_through_a_legend():
    """A horizontal line crossing a legend between its two vertices is caught; moved below the legend, it passes."""
    fig, ax = plt.subplots(figsize=(3.5, 2.5))
    ax.plot([0, 1], [0, 0.2], label="a rising curve")
    line = ax.axhline(0.93, color="k", ls="--", label="the expert")  # two vertices, at the panel's edges
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper center")
    probs = plot.audit(fig, "x")
    assert len(probs) == 1 and "drawn through" in probs[0], probs
    line.set_ydata([0.5, 0.5])
    assert plot.audit(fig, "x") == []


def test_a_note_over_data_points():
    """A text written across a diagonal of dots is found; moved to an empty corner, it passes; the panel letter and a
    label beside a marker-less curve are not notes over data."""
    fig, ax = plt.subplots(figsize=(3.5, 2.5))
    x = np.linspace(0, 1, 21)
    ax.plot(x, x, "o", ms=3)
    ax.plot(x, 1 - x, "-")
    note = ax.text(0.5, 0.5, "over the dots", ha="center", va="center")
    ax.text(0.1, 0.9, "on the curve", ha="left", va="center")  # no markers on that line: a label, not a cover
    plot.panel_letters([ax])
    probs = plot.audit(fig, "x")
    assert probs == ["the note 'over the dots' in 'axes 0' is written over 1 data point"], probs
    note.set_position((0.8, 0.1))
    assert plot.audit(fig, "x") == []


def test_label_points_keeps_crowded_labels_apart():
    """Five labels on five points bunched in a corner of a line plot: written at the audit's standard (no text over
    text, no note over a marker), each within 20 pt of its point; a length mismatch is refused."""
    fig, ax = plt.subplots(figsize=(3.5, 2.5))
    xy = np.array([(1.0, 1.0), (1.1, 1.05), (1.15, 0.95), (1.3, 1.0), (1.25, 1.1)])
    ax.plot(xy[:, 0], xy[:, 1], "o-", ms=4)
    ax.set(xlim=(0, 2), ylim=(0, 2))
    notes = plot.label_points(ax, xy, [f"point {i}" for i in range(5)])
    assert plot.audit(fig, "x") == []
    r = fig.canvas.get_renderer()
    for n, p in zip(notes, ax.transData.transform(xy)):
        b = n.get_window_extent(r)
        dist = np.hypot(max(b.x0 - p[0], 0, p[0] - b.x1), max(b.y0 - p[1], 0, p[1] - b.y1)) * 72 / fig.dpi
        assert dist < 20, (n.get_text(), dist)
    with pytest.raises(ValueError):
        plot.label_points(ax, xy, ["one"])


def test_a_legend_over_a_histogram_or_a_bar():
    """A step histogram's tall bar through a legend entry, and a legend drawn on a filled bar, are found (neither has a
    line vertex or marker under the legend); moved clear, both pass."""
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(3.5, 2.5))
    ax.hist(np.r_[rng.normal(0.1, 0.01, 2000), rng.uniform(0, 1, 200)], bins=40, histtype="step", label="a tall spike")
    ax.legend(loc="upper left")
    probs = plot.audit(fig, "x")
    assert len(probs) == 1 and "drawn through" in probs[0], probs
    ax.legend(loc="upper right")
    assert plot.audit(fig, "x") == []
    fig, ax = plt.subplots(figsize=(3.5, 2.5))
    ax.bar([0, 1, 2], [10, 1, 1], width=0.9, label="bars")
    ax.set_ylim(0, 10.5)
    ax.legend(loc="upper left")  # on the first bar's filled inside, away from its outline
    probs = plot.audit(fig, "x")
    assert len(probs) == 1 and "drawn through" in probs[0], probs
    ax.legend(loc="upper right")
    assert plot.audit(fig, "x") == []


def test_figure_legend_above_a_constrained_layout():
    """A constrained layout stays one (tight_layout would replace it) and the legend sits above every panel."""
    fig, ax = plt.subplots(2, 3, figsize=(7, 4), layout="constrained")
    for a in ax.flat:
        a.plot([0, 1], [0, 1], label="EMA")
        a.set(title="return", ylabel="validation loss")
    plot.panel_letters(ax)
    leg = plot.figure_legend(fig, ncol=1)
    fig.canvas.draw()
    assert fig.get_layout_engine().__class__.__name__ == "ConstrainedLayoutEngine"
    renderer = fig.canvas.get_renderer()
    assert leg.get_window_extent(renderer).y0 >= max(a.get_tightbbox(renderer).y1 for a in ax.flat)
    assert plot.audit(fig, "x_details") == []


def test_scientific_tick_labels_and_the_fix():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.semilogy([1, 2], [1.2, 1.9])  # under a decade: matplotlib labels minor ticks as 1.2×10⁰
    assert any("scientific notation" in p for p in plot.audit(fig, "x"))
    plot.quiet_minor_ticks(ax)
    assert plot.audit(fig, "x") == []
    labels = [t.get_text() for t in ax.get_yticklabels(minor=True) if t.get_text()]
    assert labels and all("times" not in s for s in labels)
    assert any(np.isclose(float(s.replace("−", "-")), v) for s in labels for v in (1.2, 1.5, 2.0))


def test_thousands_labels_steps_without_an_offset():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([51_000, 100_000], [0, 1])
    fig.canvas.draw()
    assert ax.xaxis.get_major_formatter().get_offset() == "1e5"  # what matplotlib does unasked: an offset under the axis
    plot.thousands(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and all(s.endswith("k") for s in labels) and "100k" in labels
    with pytest.raises(ValueError, match="axis"):
        plot.thousands(ax, axis="z")
    plt.close(fig)


def test_a_panel_letter_over_a_title():
    """The letter sits just above a panel's top-left corner: a centred title as wide as the panel runs into it."""
    fig, ax = _clean(2)
    assert plot.audit(fig, "x") == []
    ax[1].set_title("a centred title that runs wider than its own panel on both sides")
    probs = plot.audit(fig, "x")
    assert len(probs) == 1 and probs[0].startswith("text 'b' drawn over 'a centred title"), probs


def test_savefig_writes_the_audit(tmp_path):
    import json

    fig, ax = _clean()
    ax[0].set_title("tiny", fontsize=5)
    plot.savefig(fig, "t_fig", fig_dir=tmp_path, data_dir=tmp_path, data=dict(x=np.arange(3)))
    a = json.loads((tmp_path / "t_fig.audit.json").read_text())
    assert a["panels"] == 2 and len(a["problems"]) == 1
    assert (tmp_path / "t_fig.png").exists() and (tmp_path / "t_fig.npz").exists()
