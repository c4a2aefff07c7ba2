"""The ablation machinery of notebooks 07–09: arms, full-batch descent, the metric, post-hoc EMA on a real run."""
import dataclasses

import numpy as np
import pytest

from gvatheory import presets
from gvatheory.control import ablations as A, bc
from gvatheory.core.averaging import AveragingConfig


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke base run (all averages tracked and stored), seed 0, in a private cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GVATHEORY_CACHE", str(tmp_path_factory.mktemp("cache")))
    cfg = presets.ablation_base("smoke")
    out = bc.run_seeds(cfg, [0])[0]
    yield cfg, out
    mp.undo()


def test_every_mitigation_is_one_edit_of_the_base():
    base = presets.ablation_base("quick")
    lean = A.lean(base)
    for arm in A.mitigation_arms(base):
        if arm.variant != "raw":  # the averages are read from the reference run or the base run itself
            assert arm.cfg in (base, lean)
            continue
        changed = [f.name for f in dataclasses.fields(bc.BCConfig) if getattr(arm.cfg, f.name) != getattr(lean, f.name)]
        assert len(changed) <= 1 and (changed or arm.label.startswith("none")), (arm.label, changed)


def test_cause_arms_scale_data_batch_and_lr_as_labelled():
    base = presets.ablation_base("quick")
    arms = A.cause_arms(base)
    assert [a.cfg.n_demos / base.n_demos for a in arms["data"]] == [1, 4, 16]
    evals = [a.cfg.grad_evals / base.grad_evals for a in arms["batch"]]
    assert evals == [0.25, 1, 8, base.n_demos * base.demo_horizon / base.batch_size]
    assert [base.lr / a.cfg.lr for a in arms["lr"]] == pytest.approx([1, 4, 8])
    assert arms["order"][0].cfg.init_seed is not None


def test_arm_rejects_an_untracked_variant():
    with pytest.raises(ValueError, match="not tracked"):
        A.Arm("x", A.lean(presets.ablation_base("smoke")), "bema")
    with pytest.raises(ValueError, match="scale"):
        presets.ablation_base("huge")


def test_score_is_the_mean_adjacent_change_of_the_second_half():
    """Closed form on a hand-made run: returns that alternate ±a around a level change by 2a between checkpoints."""
    cfg = A.lean(presets.ablation_base("smoke"))
    C, N, a = 8, 3, 1.5
    mean = -100 + a * (-1.0) ** np.arange(C)
    ret = np.broadcast_to(mean[None, :, None], (2, C, N)).copy()
    ret[1] = -100.0  # the EMA: constant
    out = dict(steps=np.arange(1, C + 1), val_loss=np.ones((2, C)), ret=ret, failed=np.zeros((2, C, N), bool), expert_ret=np.full(N, -90.0), wall_s=1.0)
    raw = A.score(A.Arm("r", cfg), [out, out])
    ema = A.score(A.Arm("e", cfg, "ema"), [out])
    np.testing.assert_allclose(raw["osc"], 2 * a)
    np.testing.assert_allclose(raw["mean_return"], -100.0)
    assert ema["osc"][0] == 0.0 and raw["grad_evals"] == cfg.steps * cfg.batch_size
    r, lo, hi = A.ratio(raw, dict(osc=np.array([a, 2 * a])))
    assert (r, lo, hi) == pytest.approx((2 * a / (1.5 * a), 1.0, 2.0))


def test_full_batch_descent_has_no_sampling_noise(tmp_path, monkeypatch):
    """With batch_size = 0 and a fixed initialisation the run key changes nothing: gradient descent is deterministic."""
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path))
    cfg = A.lean(presets.ablation_base("smoke"), batch_size=0, init_seed=3)
    a, b = bc.run_seeds(cfg, [0, 1])
    np.testing.assert_array_equal(a["final_params"], b["final_params"])
    mini = bc.run_seeds(dataclasses.replace(cfg, batch_size=cfg.n_demos * cfg.demo_horizon), [0, 1])
    assert not np.array_equal(mini[0]["final_params"], mini[1]["final_params"])  # sampling with replacement is noisy
    assert cfg.grad_evals == cfg.steps * cfg.n_demos * cfg.demo_horizon
    with pytest.raises(ValueError, match="batch_size"):
        dataclasses.replace(cfg, batch_size=-1)


def test_posthoc_rebuilds_a_stored_average_exactly(smoke):
    """A target that is itself a stored snapshot (at the last checkpoint) is rebuilt to float precision."""
    cfg, out = smoke
    C = len(cfg.checkpoints)
    conf = dict(cfg.extra_averages)
    for name in A.SNAPSHOTS:
        flat, resid = A.posthoc_params(cfg, out, conf[name], C - 1)
        assert resid < 1e-6
        np.testing.assert_allclose(flat, out["params"][cfg.stored.index(name), C - 1], atol=1e-4)


def test_posthoc_rebuild_error_is_bounded_by_the_weight_residual():
    """Synthetic iterates θ_0..θ_T (a random walk): snapshots = exact weights @ θ; the rebuilt EMA differs from
    the true EMA by at most residual · ‖w*‖ · ‖θ_p‖ per coordinate (Cauchy–Schwarz)."""
    from gvatheory.core import posthoc

    cfg = presets.ablation_base("smoke")
    T, P = int(cfg.checkpoints[-1]), 5
    theta = np.cumsum(np.random.default_rng(0).normal(size=(T + 1, P)), 0)
    conf = dict(cfg.extra_averages)
    params = np.zeros((len(cfg.stored), len(cfg.checkpoints), P))
    for name in A.SNAPSHOTS:
        for c, t in enumerate(cfg.checkpoints):
            params[cfg.stored.index(name), c] = posthoc.weights(conf[name], int(t)) @ theta[: t + 1]
    out = dict(steps=cfg.checkpoints, params=params)
    for decay in (0.9, 0.95, 0.98):
        target = AveragingConfig(decay=decay)
        flat, resid = A.posthoc_params(cfg, out, target, len(cfg.checkpoints) - 1)
        w = posthoc.weights(target, T)
        truth = w @ theta
        bound = resid * np.linalg.norm(w) * np.linalg.norm(theta, axis=0)
        assert np.all(np.abs(flat - truth) <= bound * (1 + 1e-4) + 1e-3), (decay, resid)
        assert resid < 0.5  # the memories 10..50 steps are within reach of snapshots every 25 steps


def test_vmapped_evaluation_matches_evaluating_each_variant(smoke):
    """The run rolls all variants out in one vmap; re-evaluating the stored parameters one by one agrees."""
    cfg, out = smoke
    ev = A.evaluate_flat(cfg, out["params"][:, -1])
    rows = [cfg.variants.index(v) for v in cfg.stored]
    np.testing.assert_array_equal(ev["failed"], out["failed"][rows, -1])
    np.testing.assert_allclose(ev["ret"], out["ret"][rows, -1], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(ev["val_loss"], out["val_loss"][rows, -1], rtol=1e-5)


def test_store_params_keeps_only_the_named_variants(smoke):
    cfg, out = smoke
    rows = [cfg.variants.index(v) for v in cfg.stored]
    assert cfg.stored == A.SNAPSHOTS + ("ema",) and out["params"].shape[:2] == (len(cfg.stored), len(cfg.checkpoints))
    np.testing.assert_allclose(out["params"][:, -1], out["final_params"][rows], rtol=1e-6)
    with pytest.raises(ValueError, match="store_params"):
        dataclasses.replace(cfg, store_params=("no such average",))
    with pytest.raises(ValueError, match="not stored"):
        A.posthoc_params(dataclasses.replace(cfg, store_params=("ema",)), out, AveragingConfig(decay=0.9), 0)
