"""The HTML book in a real browser: every page loads in headless Chromium without console errors and shows its figures.

Skipped with a message where Chromium is absent (Debian/Ubuntu: ``apt-get install chromium``; or set ``CHROMIUM``).
The book here is built from two small executed notebooks made in the test (a figure, a table, a progress bar on
stderr) and a ledger; ``make book`` builds the same from the last ``make figures`` (the notebooks' own execution is
tested in test_notebooks.py).
"""
import base64
import io

import nbformat
import pytest

from gvatheory.core import claims
from gvatheory.infra import book, browser, ledger


def _png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2], [1, 3, 2], label="raw iterate")
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    for name in ("01_first", "02_second"):
        nb = nbformat.v4.new_notebook()
        code = nbformat.v4.new_code_cell("plot()", execution_count=1)
        code.outputs = [
            nbformat.v4.new_output("stream", name="stderr", text="runs: 100%|██████████| 3/3\n"),
            nbformat.v4.new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"}),
            nbformat.v4.new_output("display_data", data={"text/markdown": "| a | b |\n|---|---|\n| 1 | 2 |"}),
        ]
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}: a title\n\nSome $x_t$ text."), code]
        nbformat.write(nb, root / f"{name}.ipynb")
    claims.record("gva", "cartpole", [5.0, 6.0, 7.0], notebook="04", data_dir=root / "data")
    ledger.write("smoke", root / "claims", root / "figures")
    return book.build("smoke", build_dir=root, fig_dir=root / "figures", out=root / "book")


def test_the_book_has_an_index_and_a_page_per_notebook(site):
    pages = sorted(p.name for p in site.parent.glob("*.html"))
    assert pages == ["01_first.html", "02_second.html", "index.html"]
    index = site.read_text()
    assert "Claims ledger" in index and 'href="01_first.html"' in index and "data:image/png;base64," in index
    page = (site.parent / "01_first.html").read_text()
    assert 'href="index.html"' in page and 'href="02_second.html"' in page  # navigation
    assert 'src="http' not in page and "100%|" not in page  # nothing from the network; progress bars are dropped


def test_every_page_loads_in_chromium_without_errors_and_shows_its_figures(site, tmp_path):
    if browser.find_chromium() is None:
        pytest.skip("Chromium is not installed (Debian/Ubuntu: apt-get install chromium; or set CHROMIUM=/path/to/chrome)")
    results = browser.check(sorted(site.parent.glob("*.html")), tmp_path / "shots")
    assert len(results) == 3
    for r in results:
        assert r["loaded"], r["url"]
        assert not r["errors"], f"{r['url']}: console errors {r['errors']}"
        assert r["images"] >= 1 and r["images_decoded"] == r["images"], f"{r['url']}: {r['images_decoded']}/{r['images']} images decoded"
        assert not r["blank"], f"{r['url']}: blank screenshot {r['screenshot']}"


def test_a_missing_build_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="no executed notebook"):
        book.build("smoke", build_dir=tmp_path, fig_dir=tmp_path, out=tmp_path / "book")
