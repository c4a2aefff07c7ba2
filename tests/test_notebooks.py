"""Every notebook runs at smoke scale, makes its figures, is committed without outputs, and is deterministic."""
import json
from pathlib import Path

import numpy as np
import pytest

from gvatheory.infra import execute

NOTEBOOKS = execute.notebooks()


def test_there_are_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "00"], "the overview last"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs_and_a_parameters_cell(nb):
    cells = json.loads(nb.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs before committing"
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and all(k in "".join(params[0]["source"]) for k in ("scale", "seed", "fig_dir", "data_dir"))
    ids = [c.get("id") for c in cells]  # nbformat 4.5 requires a unique id on every cell (a missing one only warns, for now)
    assert None not in ids and len(set(ids)) == len(ids), "every cell needs a unique id"


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache for the whole module, as for a user: 05 and 06 read the runs 04 made."""
    return tmp_path_factory.mktemp("cache")


def _run(nb, root, cache, monkeypatch):
    monkeypatch.setenv("GVATHEORY_CACHE", str(cache))
    figs, dat = root / "figs", root / "data"
    execute.run(nb, scale="smoke", seed=0, out_dir=root / "out", fig_dir=figs, data_dir=dat, log=lambda *_: None)
    pngs = sorted(figs.glob(f"{nb.name[:2]}_*.png"))
    assert pngs, "the notebook wrote no figure named after it"
    assert all(p.with_suffix(".pdf").exists() and p.stat().st_size > 10_000 for p in pngs)
    audits = {p.stem: json.loads((dat / f"{p.stem}.audit.json").read_text()) for p in pngs if (dat / f"{p.stem}.audit.json").exists()}
    assert audits.keys() == {p.stem for p in pngs}, "every figure goes through plot.savefig (which audits it)"
    bad = {k: a["problems"] for k, a in audits.items() if a["problems"]}
    assert not bad, f"figure hygiene (gvatheory.infra.audit): {bad}"
    data = {p.name: dict(np.load(p)) for p in sorted(dat.glob(f"{nb.name[:2]}_*.npz"))}
    assert data, "the notebook saved none of the numbers it plots"
    for name, arrays in data.items():
        for k, v in arrays.items():
            if v.dtype.kind == "f":  # inf marks a divergence on purpose; NaN never does
                assert not np.any(np.isnan(v)), f"{name}:{k} has NaN"
    return data


THEORY = [p for p in NOTEBOOKS if p.name[:2] in ("01", "02", "03")]
OVERVIEW = [p for p in NOTEBOOKS if p.name[:2] == "00"]


# the theory notebooks run (twice) in test_same_seed_same_numbers; the deep-BC ones once, here
@pytest.mark.parametrize("nb", [p for p in NOTEBOOKS if p not in THEORY + OVERVIEW], ids=lambda p: p.stem)
def test_notebook_runs_at_smoke_scale(nb, tmp_path, shared_cache, monkeypatch):
    _run(nb, tmp_path, shared_cache, monkeypatch)


# the theory notebooks are fast enough to run twice; the deep-BC engine's determinism is tested
# directly on its runs in tests/test_bc.py
@pytest.mark.parametrize("nb", THEORY, ids=lambda p: p.stem)
def test_same_seed_same_numbers(nb, tmp_path, monkeypatch):
    """Two runs from empty caches give identical plotted numbers (CPU, fixed seed)."""
    a = _run(nb, tmp_path / "a", tmp_path / "a" / "cache", monkeypatch)
    b = _run(nb, tmp_path / "b", tmp_path / "b" / "cache", monkeypatch)
    assert a.keys() == b.keys() and a
    for name in a:
        for k in a[name]:
            np.testing.assert_array_equal(a[name][k], b[name][k], err_msg=f"{name}:{k}")


def _broken_notebook(path, *cells):
    """Writes a notebook with a parameters cell followed by ``cells`` (code) to ``path``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}, "language_info": {"name": "python"}}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in ("scale = 'x'",) + cells]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, path)
    return path


def test_failing_notebook_names_the_cell(tmp_path):
    path = _broken_notebook(tmp_path / "99_broken.ipynb", "x = 1", "1 / 0")
    with pytest.raises(RuntimeError, match=r"99_broken.ipynb failed in cell 3.*ZeroDivisionError"):
        execute.run(path, scale="smoke", seed=0, out_dir=tmp_path / "out", fig_dir=tmp_path, data_dir=tmp_path, log=lambda *_: None)


def test_main_reports_a_failing_notebook_and_exits_nonzero(tmp_path, monkeypatch, capsys):
    path = _broken_notebook(tmp_path / "98_broken.ipynb", "raise ValueError('boom')")
    monkeypatch.setattr(execute, "notebooks", lambda only=None: [path])
    assert execute.main(["--scale", "smoke", "--fig-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")]) == 1
    assert "98_broken.ipynb failed in cell 2" in capsys.readouterr().err


def _notebook(path, params, *cells):
    """Writes a notebook with the parameters cell ``params`` followed by ``cells`` (code) to ``path``."""
    _broken_notebook(path, *cells)
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = params
    nbformat.write(nb, path)
    return path


def _claim(folder, name, testbed):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"testbed": testbed}))


def test_tasks_reach_the_notebook_and_replace_only_their_claims(tmp_path):
    params = "scale = 'x'\ntasks = None\ndata_dir = ''"
    nb = _notebook(tmp_path / "11_t.ipynb", params, "from pathlib import Path; Path(data_dir, 'seen.txt').write_text(repr(tasks))")
    data, claims_dir = tmp_path / "data", tmp_path / "claims"
    data.mkdir()
    _claim(claims_dir, "11__gva__Hopper-v5-1.json", "Hopper-v5")
    _claim(claims_dir, "11__gva__Walker2d-v5-2.json", "Walker2d-v5")
    _claim(claims_dir, "12__gva__Hopper-v5-1.json", "Hopper-v5")  # another notebook's: never touched
    run = lambda nb, tasks: execute.run(nb, scale="smoke", seed=0, out_dir=tmp_path / "out", fig_dir=tmp_path, data_dir=data, tasks=tasks, log=lambda *_: None)
    run(nb, ["Hopper-v5"])
    assert (data / "seen.txt").read_text() == "['Hopper-v5']"
    assert sorted(p.name for p in claims_dir.iterdir()) == ["11__gva__Walker2d-v5-2.json", "12__gva__Hopper-v5-1.json"]
    run(nb, None)  # the scale's own tasks: the notebook's claims are all recorded anew
    assert (data / "seen.txt").read_text() == "None"
    assert sorted(p.name for p in claims_dir.iterdir()) == ["12__gva__Hopper-v5-1.json"]
    # a notebook without a tasks parameter gets none, and all its claims are replaced
    other = _notebook(tmp_path / "12_u.ipynb", "scale = 'x'\ndata_dir = ''", "assert 'tasks' not in globals()")
    run(other, ["Walker2d-v5"])
    assert not any(claims_dir.iterdir())


@pytest.mark.parametrize("args, message", [
    (["--tasks", "Nope-v5"], "--tasks: tasks must be"),
    (["--tasks", "Hopper-v5", "Hopper-v5"], "--tasks: tasks must be"),
    (["--tasks", "Hopper-v5", "--only", "02"], "applies to notebooks that take a tasks parameter"),
])
def test_bad_tasks_are_refused_before_any_notebook_runs(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(execute, "run", lambda *a, **k: pytest.fail("a notebook ran"))
    with pytest.raises(SystemExit) as e:
        execute.main(["--scale", "smoke", "--out-dir", str(tmp_path), "--fig-dir", str(tmp_path)] + args)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_paper_scale_keeps_its_numbers_and_claims_with_its_figures():
    from gvatheory.infra import ledger

    assert ledger.data_dir("paper") == ledger.fig_dir("paper") / "data" == execute.ROOT / "figures" / "paper" / "data"
    assert ledger.data_dir("quick") == execute.ROOT / "build" / "quick" / "data"


class _FakeRun:
    """A stand-in for a notebook's process: finishes (with ``rc``) at its ``n``-th poll, and logs when."""

    def __init__(self, name, n, events, rc=0):
        self.name, self.n, self.events, self.rc, self.calls, self.returncode, self.killed = name, n, events, rc, 0, None, False

    def poll(self):
        self.calls += 1
        if self.calls >= self.n:
            self.returncode = self.rc
            self.events.append(("end", self.name))
        return self.returncode

    def kill(self):
        self.killed = True


def test_run_parallel_keeps_the_job_limit_and_waits_for_what_a_notebook_reads():
    """Fake notebooks that finish after a given number of polls: the schedule's invariants hold."""
    polls = {"01": 1, "02": 2, "04": 5, "05": 1, "06": 3, "07": 4, "08": 2, "09": 1, "10": 6, "11": 2, "12": 2, "00": 1}
    nbs = [Path(f"{k}_nb.ipynb") for k in sorted(polls)]
    events = []

    def launch(nb):
        events.append(("start", nb.name[:2]))
        return _FakeRun(nb.name[:2], polls[nb.name[:2]], events)

    execute.run_parallel(nbs, 2, launch, log=lambda *_: None, poll_s=0)
    starts = [k for e, k in events if e == "start"]
    assert sorted(starts) == sorted(polls), "every notebook ran exactly once"
    running, peak = 0, 0
    for e, k in events:
        running += 1 if e == "start" else -1
        peak = max(peak, running)
    assert peak == 2
    pos = {ev: i for i, ev in enumerate(events)}
    for after, deps in execute.AFTER.items():
        for dep in deps:
            assert pos["end", dep] < pos["start", after], f"{after} started before {dep} had finished"
    live = set()
    for e, k in events:  # a notebook that measures wall time runs alone
        live = live | {k} if e == "start" else live - {k}
        assert not (live & execute.EXCLUSIVE) or len(live) == 1, f"{sorted(live)} ran together"
    assert starts[:4] == ["07", "08", "11", "04"], "the exclusive notebooks first, then the heads of the longest chains (12 and 05 wait for 11, 05 for 04)"
    assert [e for e in events if e[1] != "00"] == events[:-2] and events[-2:] == [("start", "00"), ("end", "00")], "the overview alone, after all"
    # one job: the priority order, one at a time
    events.clear()
    execute.run_parallel(nbs, 1, launch, log=lambda *_: None, poll_s=0)
    assert [k for e, k in events if e == "start"] == [k for k in execute.PRIORITY if k in polls]


def test_run_parallel_names_the_failed_notebook_and_stops_the_others():
    events, handles = [], {}

    def launch(nb):
        k = nb.name[:2]
        handles[k] = _FakeRun(k, {"10": 50, "04": 2}[k], events, rc=1 if k == "04" else 0)
        return handles[k]

    with pytest.raises(RuntimeError, match="04_nb.ipynb failed"):
        execute.run_parallel([Path("04_nb.ipynb"), Path("10_nb.ipynb")], 2, launch, log=lambda *_: None, poll_s=0)
    assert handles["10"].killed
    with pytest.raises(ValueError):
        execute.run_parallel([], 0, launch)


def _fake_build(data):
    """What the overview reads from a build: claims recorded as the notebooks record them, and notebook 11's
    plotted numbers (a raw iterate that falls at two checkpoints, an EMA that does not)."""
    from gvatheory.core import claims

    claims.record("gva", "InvertedDoublePendulum-v5", [2.0, 3.0, 4.0, 2.5, 3.5], notebook="11", data_dir=data)
    claims.record("ema_cures", "InvertedDoublePendulum-v5", [50.0, 80.0, 60.0], den=[1.0, 1.0, 1.0], notebook="11", data_dir=data)
    claims.record("language", "dyck", [1.0, 1.5], notebook="10", data_dir=data)
    rng = np.random.default_rng(0)
    C, n = 12, 4
    ret = np.full((2, C, n), 9350.0) + rng.normal(0, 1, (2, C, n))
    failed = np.zeros((2, C, n), bool)
    ret[0, [3, 8], 0], failed[0, [3, 8], 0] = 400.0, True
    loss = np.stack([0.010 + 0.0002 * rng.standard_normal(C), np.full(C, 0.0101)])
    data.mkdir(parents=True, exist_ok=True)
    np.savez(data / "11_gva_mujoco.npz", **{f"InvertedDoublePendulum_0_{k}": v for k, v in dict(
        steps=np.arange(1, C + 1) * 400, val_loss=loss, ret=ret, failed=failed, expert_ret=np.full(n, 9359.0)).items()})


@pytest.mark.parametrize("built", [True, False], ids=["after-a-build", "before-any-build"])
def test_overview_reads_the_build(built, tmp_path):
    """00 renders the claims table and the headline figure from a build's records, and says so when there are none."""
    import nbformat

    root = tmp_path / "build"
    data = root / "data"
    data.mkdir(parents=True)
    if built:
        _fake_build(data)
    nb = OVERVIEW[0]
    execute.run(nb, scale="smoke", seed=0, out_dir=root / "out", fig_dir=root / "figs", data_dir=data, log=lambda *_: None)
    text = "\n".join(str(o.get("data", {}).get("text/markdown", "")) + o.get("text", "")
                     for c in nbformat.read(root / "out" / nb.name, as_version=4).cells if c.cell_type == "code" for o in c.outputs)
    if not built:
        assert "No claims recorded" in text and "has not run in this build" in text
        assert not (root / "figs" / "headline.png").exists()
        return
    assert "| 1 | GVA exists | **holds**: InvertedDoublePendulum-v5 |" in text, text
    assert "**inconclusive**: dyck" in text  # two seeds: no verdict
    assert "raw iterate loses at least one rollout at 2 of 12 checkpoints, the EMA at 0" in text
    assert (root / "figs" / "headline.png").exists()
    audit = json.loads((data / "headline.audit.json").read_text())
    assert audit["panels"] == 2 and audit["problems"] == []
