"""The house figure style, the colours shared by every notebook, and the one ``savefig``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

# Same meaning, same colour, in every figure.
COLORS = {
    "raw": "#d95f02",  # raw SGD iterates
    "ema": "#1b9e77",  # exponential moving average
    "bema": "#7570b3",  # bias-corrected EMA
    "decay": "#e7298a",  # learning-rate decay
    "expert": "#222222",  # the expert / theory
    "theory": "#222222",
}
LABELS = {"raw": "raw iterate", "ema": "EMA", "bema": "BEMA", "decay": "LR decay", "expert": "expert"}


def use_style() -> None:
    """Sets matplotlib's rcParams for every figure of the repository (call once per notebook)."""
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "savefig.bbox": "tight",
            "font.size": 10,
            "axes.titlesize": 10,
            "axes.labelsize": 10,
            "legend.fontsize": 8,
            "legend.frameon": False,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.25,
            "lines.linewidth": 1.5,
            "pdf.fonttype": 42,
        }
    )


def savefig(fig, name: str, *, fig_dir, data: dict | None = None, data_dir=None) -> Path:
    """Writes ``fig_dir/name.pdf`` and ``.png`` and, if given, the plotted numbers to ``data_dir/name.npz``.

    The ``.npz`` holds exactly the arrays the figure shows, so two runs can be compared number for
    number (tests/test_notebooks.py does, for determinism). Returns the PNG path.
    """
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(fig_dir / f"{name}.pdf", metadata={"CreationDate": None})  # no timestamp: same figure, same bytes
    fig.savefig(fig_dir / f"{name}.png")
    if data is not None and data_dir is not None:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
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
