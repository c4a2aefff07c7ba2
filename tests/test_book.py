"""The HTML book in a real browser: every page loads in headless Chromium without console errors and shows its figures.

Skipped with a message where Chromium is absent (Debian/Ubuntu: ``apt-get install chromium``; or set ``CHROMIUM``).
The book here is built from notebook 01 executed at smoke scale with its ledger; ``make book`` builds the same
from the last ``make figures``.
"""
import pytest

from gvatheory.infra import book, browser, execute, ledger


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    nb = next(p for p in execute.notebooks() if p.name.startswith("01"))
    import os

    old = os.environ.get("GVATHEORY_CACHE")
    os.environ["GVATHEORY_CACHE"] = str(root / "cache")
    try:
        execute.run(nb, scale="smoke", seed=0, out_dir=root, fig_dir=root / "figures", data_dir=root / "data", log=lambda *_: None)
    finally:
        os.environ.pop("GVATHEORY_CACHE") if old is None else os.environ.__setitem__("GVATHEORY_CACHE", old)
    ledger.write("smoke", root / "claims", root / "figures")
    return book.build("smoke", build_dir=root, fig_dir=root / "figures", out=root / "book")


def test_the_book_has_an_index_and_a_page_per_notebook(site):
    pages = sorted(p.name for p in site.parent.glob("*.html"))
    assert pages == ["01_marginal_stability.html", "index.html"]
    index = site.read_text()
    assert "Claims ledger" in index and 'href="01_marginal_stability.html"' in index and "data:image/png;base64," in index
    page = (site.parent / pages[0]).read_text()
    assert 'href="index.html"' in page and 'src="http' not in page  # navigation, and nothing loaded from the network


def test_every_page_loads_in_chromium_without_errors_and_shows_its_figures(site, tmp_path):
    if browser.find_chromium() is None:
        pytest.skip("Chromium is not installed (Debian/Ubuntu: apt-get install chromium; or set CHROMIUM=/path/to/chrome)")
    results = browser.check(sorted(site.parent.glob("*.html")), tmp_path / "shots")
    for r in results:
        assert r["loaded"], r["url"]
        assert not r["errors"], f"{r['url']}: console errors {r['errors']}"
        assert r["images"] >= 1 and r["images_decoded"] == r["images"], f"{r['url']}: {r['images_decoded']}/{r['images']} images decoded"
        assert not r["blank"], f"{r['url']}: blank screenshot {r['screenshot']}"
