"""The claims registry, its verdicts and bootstrap intervals, the ledger, and the statistics the notebooks feed it."""
import json
import math
import re

import numpy as np
import pytest

from gvatheory.core import claims as C
from gvatheory.core import diagnostics as D
from gvatheory.infra import execute, ledger


def _numpy_bootstrap(x, den=None, n=20000, seed=1):
    """An independent percentile bootstrap: resample seeds (in pairs for a ratio), take the 2.5% and 97.5% quantiles."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), (n, len(x)))
    stat = x[idx].mean(1) if den is None else x[idx].mean(1) / den[idx].mean(1)
    return np.quantile(stat, [0.025, 0.975])


def test_verdict_from_interval_and_band():
    assert C.verdict((11, 20), (10, math.inf)) == "holds"
    assert C.verdict((2, 9), (10, math.inf)) == "fails"
    assert C.verdict((8, 12), (10, math.inf)) == "inconclusive"
    assert C.verdict((0.6, 1.5), (0.5, 2.0)) == "holds"
    assert C.verdict((2.5, 4.0), (0.5, 2.0)) == "fails"
    assert C.verdict((0.1, 0.3), (0.5, 2.0)) == "fails"
    assert C.verdict((1.5, 2.5), (0.5, 2.0)) == "inconclusive"
    assert C.verdict((math.nan, math.nan), (1, math.inf)) == "not applicable"
    # an interval touching a finite edge cannot place the value on either side; an unbounded one reaches an infinite edge
    assert C.verdict((10, 20), (10, math.inf)) == C.verdict((5, 10), (10, math.inf)) == C.verdict((0.6, 2.0), (0.5, 2.0)) == "inconclusive"
    assert C.verdict((0.978, 0.978), (0.5, 2.0)) == "holds" and C.verdict((0.5, 0.5), (0.5, 2.0)) == "inconclusive"
    assert C.verdict((13.6, math.inf), (10, math.inf)) == "holds" and C.verdict((-math.inf, 1.0), (-math.inf, 2.0)) == "holds"
    with pytest.raises(ValueError):
        C.verdict((3, 2), (1, math.inf))


def test_bootstrap_matches_an_independent_resampler():
    x = np.array([3.1, 4.7, 2.2, 5.9, 4.0, 3.3, 6.1, 2.8])
    est, lo, hi = C.bootstrap_ci(x)
    ref = _numpy_bootstrap(x)
    assert est == pytest.approx(x.mean())
    # two Monte Carlo estimates of the same quantiles: within 3% of the interval's width
    assert lo == pytest.approx(ref[0], abs=0.03 * (ref[1] - ref[0]))
    assert hi == pytest.approx(ref[1], abs=0.03 * (ref[1] - ref[0]))


def test_paired_ratio_bootstrap_resamples_seeds_together():
    num = np.array([5.0, 9.0, 2.0, 7.0, 4.0])
    den = 0.5 * num + np.array([0.1, -0.2, 0.05, 0.0, 0.1])  # strongly paired: the ratio is near 2 for every seed
    est, lo, hi = C.bootstrap_ci(num, den)
    ref = _numpy_bootstrap(num, den)
    assert est == pytest.approx(num.mean() / den.mean())
    assert lo == pytest.approx(ref[0], abs=0.05 * (ref[1] - ref[0]) + 1e-9) and hi == pytest.approx(ref[1], abs=0.05 * (ref[1] - ref[0]) + 1e-9)
    # resampling the two arrays independently would give a far wider interval: pairing is what keeps it narrow
    assert hi - lo < 0.2


def test_identical_values_give_a_zero_width_interval():
    assert C.bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)


@pytest.mark.parametrize("claim", C.REGISTRY, ids=lambda c: c.key)
def test_nothing_to_compare_is_not_applicable_for_every_claim(claim):
    if claim.ratio:
        o = C.assess(claim.key, [0.0, 0.0, 0.0], den=[0.0, 0.0, 0.0])  # e.g. raw and EMA both lose every rollout: no oscillation at all
        assert o["dropped"] == 3
    else:
        o = C.assess(claim.key, [])
    assert o["verdict"] == "not applicable"
    assert C.assess(claim.key, [math.nan] * 5, **({"den": [1.0] * 5} if claim.ratio else {}))["verdict"] == "not applicable"
    assert C.assess(claim.key, estimate=math.nan, exact=True)["verdict"] == "not applicable"


def test_both_policies_losing_everything_is_not_a_pass():
    # the vacuous case of the old check: raw and EMA lose every rollout, equal returns, zero change
    C_, N = 6, 4
    loss = np.tile(np.linspace(1.0, 0.9, C_), (2, 1))
    R = np.full((2, C_, N), -20_000.0)
    F = np.ones((2, C_, N), bool)
    v = D.claim_values(loss, R, F, expert_return=-50.0, reference_return=-20_000.0)
    assert math.isnan(v["osc_raw"]) and math.isnan(v["gap"])
    out = C.assess("ema_cures", [v["osc_raw"]] * 5, den=[v["osc_avg"]] * 5)
    assert out["verdict"] == "not applicable"
    assert C.assess("variance_share", [v["closed"]] * 5, den=[v["gap"]] * 5)["verdict"] == "not applicable"


def test_too_few_seeds_are_inconclusive_and_clear_cases_are_decided():
    assert C.assess("gva", [50.0, 60.0])["verdict"] == "inconclusive"
    assert C.assess("gva", [50.0, 60.0, 55.0, 52.0, 58.0])["verdict"] == "holds"
    assert C.assess("gva", [0.01, 0.02, 0.015, 0.012, 0.018])["verdict"] == "fails"
    assert C.assess("ema_cures", [30.0, 40.0, 35.0], den=[1.0, 1.2, 0.9])["verdict"] == "holds"
    o = C.assess("marginal", estimate=1.02, exact=True)
    assert o["verdict"] == "holds" and o["ci"] == [1.02, 1.02] and o["basis"] == "exact"


def test_bad_arguments_are_refused():
    with pytest.raises(KeyError, match="no claim"):
        C.assess("nonsense", [1.0])
    with pytest.raises(ValueError, match="ratio"):
        C.assess("ema_cures", [1.0, 2.0, 3.0])  # a ratio claim needs den=
    with pytest.raises(ValueError, match="same shape"):
        C.assess("ema_cures", [1.0, 2.0, 3.0], den=[1.0, 2.0])
    with pytest.raises(ValueError, match="estimate"):
        C.assess("ou")
    with pytest.raises(ValueError, match="notebooks"):
        C.record("ou", "x", estimate=1.0, exact=True, notebook="04", data_dir="/tmp/unused/data")


def test_record_collect_markdown_and_stability(tmp_path):
    data = tmp_path / "a" / "data"
    C.record("gva", "cartpole", [5.0, 6.0, 7.0, 5.5, 6.5], notebook="04", data_dir=data)
    C.record("ou", "T = 100", estimate=1.3, exact=True, notebook="03", data_dir=data)
    other = tmp_path / "b" / "data"
    C.record("gva", "cartpole", [0.1, 0.2, 0.15, 0.12, 0.11], notebook="04", data_dir=other)  # fails in the other build
    C.record("ou", "T = 100", estimate=1.31, exact=True, notebook="03", data_dir=other)
    outs = ledger.collect(tmp_path / "a" / "claims")
    assert [o["claim"] for o in outs] == ["gva", "ou"]  # the registry's order: claim 1 before T3
    moved = ledger.compare(outs, ledger.collect(tmp_path / "b" / "claims"))
    assert moved[0]["verdict"] == "inconclusive" and moved[0]["stability"] == "moved: holds → fails"
    assert moved[1]["verdict"] == "holds" and moved[1]["stability"] == "same"
    md = ledger.write("quick", tmp_path / "a" / "claims", tmp_path / "fig", tmp_path / "b" / "claims").read_text()
    assert "| 1 | GVA exists | cartpole (04) |" in md and "moved: holds → fails" in md
    assert (tmp_path / "fig" / "claims.png").stat().st_size > 10_000
    assert all(f"| {c.number} | {c.name} |" in md for c in C.REGISTRY)  # the definitions table lists every claim
    with pytest.raises(SystemExit, match="no recorded claims"):
        ledger.write("quick", tmp_path / "empty", tmp_path / "fig")


def test_a_scales_ledger_has_its_own_folder():
    assert ledger.fig_dir("quick") != ledger.fig_dir("paper") != ledger.fig_dir("smoke")


def test_every_registered_testbed_records_its_claim_and_every_record_is_registered():
    src = {p.name[:2]: p.read_text() for p in execute.notebooks()}
    for c in C.REGISTRY:
        for nb in c.testbeds:
            assert f'record(\\"{c.key}\\"' in src[nb], f"notebook {nb} does not record claim {c.key}"
    for nb, text in src.items():
        for key in re.findall(r'record\(\\"(\w+)\\"', text):
            assert nb in C.get(key).testbeds, f"notebook {nb} records {key}, registered for {C.get(key).testbeds}"


def test_normalized_score_and_amplification_closed_forms():
    assert D.normalized_score(-50.0, -50.0, -1050.0) == pytest.approx(100.0)
    assert D.normalized_score(-1050.0, -50.0, -1050.0) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="must exceed"):
        D.normalized_score(0.0, -10.0, -5.0)
    # score alternates 90, 100, 90, ...: |Δscore| = 10 points = 0.1 of the range; loss alternates 1.00, 1.01: median rel. change ≈ 0.01
    C_ = 9
    R = np.where(np.arange(C_) % 2 == 0, -150.0, -50.0)[:, None] * np.ones((1, 3))
    loss = np.where(np.arange(C_) % 2 == 0, 1.0, 1.01)
    d_loss = np.median(np.abs(np.diff(loss)) / loss[:-1])
    assert D.score_amplification(loss, R, -50.0, -1050.0) == pytest.approx(0.1 / d_loss)
    assert math.isnan(D.score_amplification(np.ones(C_), R, -50.0, -1050.0))  # a loss that never moves: nothing to divide by
    closed, gap = D.variance_share(np.full((C_, 3), -550.0), np.full((C_, 3), -100.0), -50.0, -1050.0)
    assert (closed, gap) == pytest.approx((45.0, 50.0))


def test_excess_swing_removes_binomial_noise_in_quadrature():
    assert D.excess_swing(dict(swing=0.05, noise=0.03)) == pytest.approx(0.04)
    assert D.excess_swing(dict(swing=0.02, noise=0.03)) == 0.0


def test_dominant_period_of_a_sine_in_noise():
    rng = np.random.default_rng(0)
    t = np.arange(200)
    p = D.dominant_period(2.0 * np.sin(2 * np.pi * t / 20) + 0.05 * t + 0.2 * rng.standard_normal(200))
    assert p["period"] == pytest.approx(20.0, rel=0.06)  # the FFT's bins at n = 200 are 200/k steps
    assert p["amplitude"] == pytest.approx(np.sqrt(2.0**2 / 2 + 0.2**2), rel=0.05)  # a sine's sd is A/√2
    assert p["share"] > 0.8
    assert D.dominant_period(rng.standard_normal(200))["share"] < 0.2
    with pytest.raises(ValueError):
        D.dominant_period(np.ones(5))


def test_recorded_outcome_is_valid_json(tmp_path):
    o = C.record("cliff", "η = 0.1", estimate=40.0, ci=(12.0, math.inf), notebook="02", data_dir=tmp_path / "data")
    back = json.loads(next((tmp_path / "claims").glob("*.json")).read_text())
    assert back["verdict"] == o["verdict"] == "holds" and back["ci"][1] == math.inf


def test_readme_claims_table_is_rewritten_between_its_markers(tmp_path):
    C.record("gva", "cartpole", [5.0, 6.0, 7.0, 5.5, 6.5], notebook="04", data_dir=tmp_path / "data")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{ledger.BEGIN}\nold table\n{ledger.END}\noutro\n")
    ledger.write("quick", tmp_path / "claims", tmp_path / "fig", readme=readme)
    text = readme.read_text()
    assert "old table" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    assert "| 1 | GVA exists | **holds**: cartpole |" in text and "| 2 | jagged return landscape | not recorded |" in text
    assert ledger.default_readme("quick", tmp_path / "fig") is None  # only the default build's folder touches the repository's README


def test_an_infinite_ratio_in_some_resamples_gives_an_infinite_endpoint_not_nan():
    o = C.assess("ema_cures", [5.0, 6.0, 7.0, 3.0, 4.0], den=[0.0, 0.0, 0.1, 0.0, 0.2])  # an EMA that never moved on 3 seeds
    assert o["ci"][1] == math.inf and not math.isnan(o["ci"][0]) and o["verdict"] == "holds"


def test_the_ledger_refuses_a_verdict_recorded_under_another_rule(tmp_path):
    data = tmp_path / "a" / "data"
    C.record("gva", "cartpole", [5.0, 6.0, 7.0, 5.5, 6.5], notebook="04", data_dir=data)
    C.record("gva", "acrobot", [5.0, 6.0], notebook="04", data_dir=data)  # two seeds: inconclusive by the seed rule
    C.record("ou", "T = 100", estimate=1.3, exact=True, notebook="03", data_dir=data)  # one value, exact: decided
    C.record("cliff", "mc", estimate=12.0, ci=(11.0, math.inf), notebook="02", data_dir=data)
    folder = tmp_path / "a" / "claims"
    assert [(o["testbed"], o["verdict"]) for o in ledger.collect(folder)] == [("acrobot", "inconclusive"), ("cartpole", "holds"), ("mc", "holds"), ("T = 100", "holds")]
    path = next(folder.glob("04__gva__cartpole*.json"))
    o = json.loads(path.read_text())
    path.write_text(json.dumps(o | {"verdict": "fails"}))  # a verdict today's rule does not give that interval
    with pytest.raises(ValueError, match=r"04__gva__cartpole.*recorded fails against ≥ 1, today's rule gives holds"):
        ledger.collect(folder)
    path.write_text(json.dumps(o | {"threshold": "≥ 2"}))  # a band that has since changed
    with pytest.raises(ValueError, match="re-run their notebooks"):
        ledger.collect(folder)
    path.write_text(json.dumps(o | {"ci": [1.0, 2.0]}))  # an interval touching the band's edge: inconclusive today
    with pytest.raises(ValueError, match="today's rule gives inconclusive"):
        ledger.collect(folder)
    path.write_text(json.dumps({k: v for k, v in o.items() if k != "kind"}))  # an outcome from before outcomes stored their kind
    with pytest.raises(ValueError, match=r"04__gva__cartpole.*no kind.*older version"):
        ledger.collect(folder)
    exact = next(folder.glob("03__ou__*.json"))  # one exact value decides; read as one seed it would be inconclusive
    exact.write_text(json.dumps(json.loads(exact.read_text()) | {"kind": "per seed"}))
    path.write_text(json.dumps(o))
    with pytest.raises(ValueError, match=r"03__ou__.*recorded holds.*today's rule gives inconclusive"):
        ledger.collect(folder)


def test_the_committed_paper_build_is_what_its_claims_and_numbers_give_today():
    """figures/paper/ is committed (a paper-scale build takes hours): its ledger must be what its recorded claims give
    under today's rules, and each of its figures must have the plotted numbers and a clean audit beside it."""
    figs, data = ledger.fig_dir("paper"), ledger.data_dir("paper")
    claims_dir = data.parent / "claims"
    if not any(claims_dir.glob("*.json")):
        pytest.skip("no paper-scale build is committed")
    outcomes = ledger.collect(claims_dir)  # raises for an outcome recorded under another rule or band
    assert (figs / "CLAIMS.md").read_text() == ledger.markdown(outcomes, scale="paper")
    pngs = sorted(p.stem for p in figs.glob("*.png") if p.stem not in ("claims", "headline"))
    assert pngs, "a paper-scale ledger without a figure"
    for name in pngs:
        assert (figs / f"{name}.pdf").exists() and (data / f"{name}.npz").exists(), name
        assert json.loads((data / f"{name}.audit.json").read_text())["problems"] == [], name
