"""The precompute step computes exactly what notebooks 11 and 12 then read from the cache."""
import numpy as np
import pytest

from gvatheory import presets
from gvatheory.control import bc
from gvatheory.control import decomposition as dec
from gvatheory.control import locomotion
from gvatheory.infra import cache, precompute


def test_path_checkpoints_spread_evenly_with_both_ends():
    np.testing.assert_array_equal(locomotion.path_checkpoints(51, 5), [0, 12, 25, 38, 50])  # paper: 51 checkpoints
    np.testing.assert_array_equal(locomotion.path_checkpoints(11, 5), [0, 2, 5, 8, 10])  # quick
    np.testing.assert_array_equal(locomotion.path_checkpoints(3, 5), [0, 1, 2])  # fewer checkpoints than path points
    with pytest.raises(ValueError):
        locomotion.path_checkpoints(0, 5)


def test_units_are_the_notebooks_seeds_and_bad_tasks_are_refused():
    u = precompute.units(["Walker2d-v5"], "paper", seed=3)
    assert u == [(precompute.PENDULUM, s) for s in range(3, 8)] + [("Walker2d-v5", s) for s in range(3, 8)]
    assert precompute.units(None, "quick", pendulum=False) == [(t, s) for t in presets.LOCOMOTION_TASKS["quick"] for s in range(3)]
    with pytest.raises(ValueError):
        precompute.units(["Nope-v5"], "paper")
    with pytest.raises(ValueError):
        precompute.run(None, "smoke", jobs=0)


def test_two_processes_leave_every_run_the_notebooks_read_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path))
    task = "Hopper-v5"
    precompute.run([task], "smoke", jobs=2, log=lambda *_: None)
    cfg, p11, p12 = presets.locomotion_config(task, "smoke"), presets.notebook("11", "smoke"), presets.notebook("12", "smoke")
    assert all(bc.is_cached(p11.cfg, s) for s in range(p11.n_seeds))
    for c in (cfg, dec.decayed(cfg), dec.clean(cfg)):
        assert all(bc.is_cached(c, s) for s in range(p12.n_seeds)), c
    # the path, under the key notebook 12 asks for: same checkpoints, same s values
    idx = [int(i) for i in locomotion.path_checkpoints(len(cfg.checkpoints), p12.n_path)]
    s_values = tuple(float(v) for v in p12.s_values)
    assert all(cache.is_cached(f"path-{task}", cfg, s, idx, s_values, code=dec.__name__) for s in range(p12.n_seeds))


def test_execute_precomputes_only_at_paper_scale_with_several_jobs(tmp_path, monkeypatch):
    from gvatheory.infra import execute

    calls = []
    monkeypatch.setattr(precompute, "run", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(execute, "run_parallel", lambda *a, **k: 0.0)
    monkeypatch.setattr(execute, "run", lambda *a, **k: 0.0)
    common = ["--out-dir", str(tmp_path), "--fig-dir", str(tmp_path), "--no-ledger"]
    assert execute.main(["--scale", "paper", "--only", "12", "--jobs", "2", "--tasks", "Hopper-v5"] + common) == 0
    assert calls == [((["Hopper-v5"], "paper", 0, 2), {"pendulum": False})]
    for args in (["--scale", "paper", "--only", "12", "--jobs", "1"], ["--scale", "quick", "--only", "12", "--jobs", "2"],
                 ["--scale", "paper", "--only", "02", "--jobs", "2"]):
        assert execute.main(args + common) == 0
    assert len(calls) == 1
