"""The HTML book: the executed notebooks of the last build as a static site, ``python -m gvatheory.infra.book --scale quick``.

``make book`` (after ``make figures``) converts ``build/<scale>/NN_*.ipynb`` with nbconvert into
``build/<scale>/book/``: one page per notebook with a navigation bar (index, previous, next) and an
``index.html`` that shows the claims ledger and the summary figure. We chose nbconvert plus a generated index
over Jupyter Book or mystmd: nbconvert is already installed with JupyterLab and renders the executed outputs
as they are (no re-execution, no build server, no extra toolchain). Every image is embedded; the pages load
nothing from the network — nbconvert's links to a CDN (require.js, MathJax) are removed, so formulas show
as their TeX source.
"""
from __future__ import annotations

import argparse
import base64
import html
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STYLE = """<style>
.gva-nav{position:sticky;top:0;z-index:100;background:#f7f7f7;border-bottom:1px solid #ddd;padding:6px 16px;font:14px sans-serif}
.gva-nav a{margin-right:18px;color:#1b5e9e;text-decoration:none}
.gva-index{max-width:1100px;margin:24px auto;font:15px/1.5 sans-serif;padding:0 16px}
.gva-index table{border-collapse:collapse;font-size:13px}.gva-index td,.gva-index th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}
.gva-index img{max-width:100%}
</style>"""


def _strip_network(page: str) -> str:
    """Removes every ``<script src="http...">`` and ``<link href="http...">``: the book loads nothing from the network."""
    page = re.sub(r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>', "", page)
    return re.sub(r'<link[^>]*\shref="https?://[^"]*"[^>]*/?>', "", page)


def _nav(pages: list[str], i: int | None) -> str:
    links = ['<a href="index.html">index</a>']
    if i is not None:
        if i > 0:
            links.append(f'<a href="{pages[i - 1]}">← {html.escape(pages[i - 1][:-5])}</a>')
        if i + 1 < len(pages):
            links.append(f'<a href="{pages[i + 1]}">{html.escape(pages[i + 1][:-5])} →</a>')
    return '<div class="gva-nav">' + "".join(links) + "</div>"


def _inject(page: str, nav: str) -> str:
    page = page.replace("</head>", STYLE + "</head>", 1)
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav, page, count=1)


def _markdown_to_html(text: str) -> str:
    from nbconvert.filters import markdown2html

    return markdown2html(text)


def build(scale: str = "quick", *, build_dir: Path | None = None, fig_dir: Path | None = None, out: Path | None = None) -> Path:
    """Writes the book of ``build/<scale>/`` to ``build/<scale>/book/``; returns the index's path.

    Raises:
        SystemExit: if the build folder holds no executed notebook (run ``make figures`` first).
    """
    from nbconvert import HTMLExporter
    import nbformat

    from gvatheory.infra import ledger

    build_dir = Path(build_dir or ROOT / "build" / scale)
    fig_dir = Path(fig_dir or ledger.fig_dir(scale))
    out = Path(out or build_dir / "book")
    nbs = sorted(build_dir.glob("[0-9][0-9]_*.ipynb"))
    if not nbs:
        raise SystemExit(f"no executed notebook in {build_dir}: run `make figures SCALE={scale}` first")
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    pages = [nb.stem + ".html" for nb in nbs]
    titles = []
    from tqdm import tqdm

    for i, nb in enumerate(tqdm(nbs, desc="book", disable=len(nbs) < 4)):
        node = nbformat.read(nb, as_version=4)
        for c in node.cells:  # progress bars (stderr) are for the person waiting, not the reader
            if c.cell_type == "code":
                c.outputs = [o for o in c.get("outputs", []) if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
        first = next((c.source for c in node.cells if c.cell_type == "markdown"), nb.stem)
        titles.append(first.splitlines()[0].lstrip("# ").strip() if first else nb.stem)
        body, _ = exporter.from_notebook_node(node, resources={"metadata": {"name": titles[-1]}})
        (out / pages[i]).write_text(_inject(_strip_network(body), _nav(pages, i)), encoding="utf-8")
    claims_md = fig_dir / "CLAIMS.md"
    claims = _markdown_to_html(claims_md.read_text()) if claims_md.exists() else "<p>No claims ledger in this build's figure folder.</p>"
    figs = []
    for name, alt in (("headline.png", "headline figure"), ("claims.png", "the claims: estimates and intervals")):
        p = fig_dir / name
        if p.exists():
            figs.append(f'<p><img alt="{alt}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}"></p>')
    toc = "".join(f'<li><a href="{p}">{html.escape(t)}</a></li>' for p, t in zip(pages, titles))
    index = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>gvatheory — {scale} build</title>{STYLE}</head><body>"
             f"{_nav(pages, None)}<div class='gva-index'><h1>gvatheory: gradient variance amplification, reproduced ({scale} scale)</h1>"
             f"<p>The executed notebooks of the last <code>make figures SCALE={scale}</code>, read in order; built {time.strftime('%Y-%m-%d')}.</p>"
             f"{''.join(figs[:1])}<h2>Notebooks</h2><ol>{toc}</ol>{''.join(figs[1:])}{claims}</div></body></html>")
    path = out / "index.html"
    path.write_text(index, encoding="utf-8")
    return path


def main(argv=None) -> int:
    """Command-line entry point (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", default="quick", choices=("smoke", "quick", "paper"))
    p.add_argument("--build-dir", type=Path, default=None, help="executed notebooks (default: build/<scale>/)")
    p.add_argument("--out", type=Path, default=None, help="where the site goes (default: build/<scale>/book/)")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    path = build(a.scale, build_dir=a.build_dir, out=a.out)
    print(f"book: {path} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
