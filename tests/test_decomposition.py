"""The variance-or-bias measurements against closed forms and Monte Carlo (gvatheory.control.decomposition)."""
import numpy as np
import pytest

from gvatheory import presets
from gvatheory.control import decomposition as dec
from gvatheory.core import claims
from gvatheory.core.schedules import make_schedule


def test_start_concentration_fixed_starts_is_one_independent_is_zero():
    rng = np.random.default_rng(0)
    bad = rng.random(400) < 0.3
    assert dec.start_concentration(np.tile(bad, (20, 1))) == pytest.approx(1.0)
    # independent Bernoulli(0.3) outcomes: the intraclass correlation is 0; its estimate over 400 starts x 50
    # checkpoints has a standard error of about sqrt(2 / (N (C - 1))) ~ 0.01: a 0.04 tolerance is 4 of them
    F = rng.random((50, 400)) < 0.3
    assert abs(dec.start_concentration(F)) < 0.04
    assert np.isnan(dec.start_concentration(np.zeros((5, 8), bool)))
    assert np.isnan(dec.start_concentration(np.ones((5, 8), bool)))
    with pytest.raises(ValueError, match="checkpoints, starts"):
        dec.start_concentration(np.zeros(5))


def test_path_flats_endpoints_exact_and_linear():
    rng = np.random.default_rng(1)
    raw, avg = rng.standard_normal(7).astype(np.float32), rng.standard_normal(7).astype(np.float32)
    p = dec.path_flats(raw, avg, (0.0, 0.5, 1.0, 1.5))
    np.testing.assert_array_equal(p[0], avg)
    np.testing.assert_array_equal(p[2], raw)
    np.testing.assert_allclose(p[1], (raw + avg) / 2, rtol=1e-6)
    np.testing.assert_allclose(p[3], avg + 1.5 * (raw - avg), rtol=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        dec.path_flats(raw, avg[:3])


def test_fall_share_slope_and_conclusion():
    num, den, best = dec.fall_share((0.4, 100.0), {"a": (0.3, 120.0), "b": (0.1, 100.0)})
    assert (num, den, best) == (pytest.approx(0.3), 0.4, "b")
    # a reference that falls least but returns less than the raw iterates does not compete
    assert dec.fall_share((0.4, 100.0), {"a": (0.3, 120.0), "b": (0.0, 99.0)}) == (pytest.approx(0.1), 0.4, "a")
    assert dec.fall_share((0.4, 100.0), {"b": (0.0, 99.0)}) == (0.0, 0.4, None)  # none keeps the score: no fall removed
    assert dec.path_slope([0, 1, 2], [0.1, 0.3, 0.5]) == pytest.approx(0.2)
    assert dec.conclusion((0.6, 0.9)) == "variance-dominated"
    assert dec.conclusion((0.1, 0.4)) == "bias-dominated"
    assert dec.conclusion((0.3, 0.7)) == "mixed"
    assert dec.conclusion((np.nan, np.nan)) == "no falls to split"
    # the edge reads as the ledger's verdict on R4 reads it: an interval ending exactly at 1/2 holds 1/2
    for ci in ((0.5, 0.72), (0.2, 0.5), (0.5, 0.5)):
        v = claims.assess("falls_variance", estimate=np.mean(ci), ci=ci)["verdict"]
        assert dec.conclusion(ci) == {"holds": "variance-dominated", "fails": "bias-dominated"}.get(v, "mixed")
    assert dec.conclusion((0.5, 0.72)) == dec.conclusion((0.2, 0.5)) == "mixed"
    with pytest.raises(ValueError):
        dec.fall_share((0.4, 100.0), {})


@pytest.mark.parametrize("scale", ["smoke", "quick", "paper"])
def test_decayed_branch_matches_until_the_branch_and_evaluates_small_steps(scale):
    cfg = presets.locomotion_config("Walker2d-v5", scale)
    d = dec.decayed(cfg)
    lr = make_schedule(d.schedule, d.lr, d.steps, d.decay_steps)
    assert float(lr(cfg.eval_start)) == pytest.approx(cfg.lr)  # identical to the constant run up to the branch
    assert float(lr(d.checkpoints[0])) <= cfg.lr / 4 + 1e-9  # evaluated where the step is at most a quarter
    assert float(lr(d.steps)) == pytest.approx(0.0, abs=1e-9)
    assert d.checkpoints[-1] == cfg.steps and len(d.checkpoints) == 10
    assert dec.clean(cfg).clean_labels and not cfg.clean_labels


def test_long_averages_need_a_second_half():
    import dataclasses

    cfg = dataclasses.replace(presets.MUJOCO["smoke"], system="Hopper-v5", eval_start=0)
    with pytest.raises(ValueError, match="eval_start"):
        dec.with_long_averages(cfg)
