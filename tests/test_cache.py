"""The result cache: a hit returns what was stored, a different configuration misses, and a result's key
depends on the source of exactly the modules its computation imports."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from gvatheory import presets
from gvatheory.control import bc
from gvatheory.infra import cache

ENGINE = "gvatheory.control.bc.engine"


@dataclasses.dataclass(frozen=True)
class Cfg:
    a: int = 1
    b: tuple = (1.0, 2.0)


def test_hit_miss_and_refresh(tmp_path, monkeypatch):
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3) * len(calls)}

    first = cache.cached("t", compute, Cfg(), 0, code=cache)
    again = cache.cached("t", compute, Cfg(), 0, code=cache)
    np.testing.assert_array_equal(first["x"], again["x"])
    assert len(calls) == 1  # the second call was a hit
    assert cache.is_cached("t", Cfg(), 0, code=cache) and not cache.is_cached("t", Cfg(), 2, code=cache)
    cache.cached("t", compute, Cfg(a=2), 0, code=cache)
    cache.cached("t", compute, Cfg(), 1, code=cache)
    assert len(calls) == 3  # another config or seed misses
    fresh = cache.cached("t", compute, Cfg(), 0, code=cache, refresh=True)
    assert len(calls) == 4 and fresh["x"][1] == 4
    assert len(list(tmp_path.glob("t-*.npz"))) == 3
    assert not list(tmp_path.glob("*.tmp.npz"))


def test_dependencies_follow_imports_and_only_imports():
    deps = cache.dependencies(ENGINE)
    # the BC engine reaches its backends, data, policies, the averaging core and the physics it rolls out in ...
    for m in ("gvatheory.control.bc.backends", "gvatheory.control.bc.data", "gvatheory.control.bc.config", "gvatheory.control.policies",
              "gvatheory.core.averaging", "gvatheory.control.rollout", "gvatheory.control.mujoco.env", ENGINE):
        assert m in deps, m
    # ... and none of the language model, the theory, the figure style, the notebook runner or the presets
    for m in ("gvatheory.language.lm", "gvatheory.language.transformer", "gvatheory.theory.linear", "gvatheory.theory.sgd",
              "gvatheory.infra.plot", "gvatheory.infra.execute", "gvatheory.presets", "gvatheory"):
        assert m not in deps, m
    assert "gvatheory.core.averaging" in cache.dependencies("gvatheory.language.lm")
    assert "gvatheory.control.bc.engine" not in cache.dependencies("gvatheory.language.lm")
    with pytest.raises(ValueError, match="not a module of the gvatheory package"):
        cache.dependencies("numpy")


def _edited(monkeypatch, tmp_path, rel: str):
    """Points the cache at a copy of the package in which ``gvatheory/<rel>`` has one more comment line, as after an edit."""
    import shutil

    copy = tmp_path / "gvatheory"
    if not copy.exists():
        shutil.copytree(cache.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / rel
    assert target.exists(), target
    target.write_text(target.read_text() + "\n# an edit\n")
    monkeypatch.setattr(cache, "PACKAGE_DIR", copy)


BC_CFG = presets.BC["smoke"]


@pytest.mark.parametrize("rel", ["language/lm.py", "language/transformer.py", "theory/linear.py", "theory/sgd.py", "infra/plot.py",
                                 "infra/execute.py", "presets.py", "__init__.py"])
def test_editing_other_modules_keeps_bc_results_cached(monkeypatch, tmp_path, rel):
    before = cache.key_of("bc-x", BC_CFG, 0, code=ENGINE)
    _edited(monkeypatch, tmp_path, rel)
    assert cache.key_of("bc-x", BC_CFG, 0, code=ENGINE) == before


@pytest.mark.parametrize("rel", ["control/bc/engine.py", "control/bc/backends.py", "control/policies.py", "core/averaging.py", "control/rollout.py"])
def test_editing_the_bc_engine_or_what_it_imports_recomputes(monkeypatch, tmp_path, rel):
    before = cache.key_of("bc-x", BC_CFG, 0, code=ENGINE)
    _edited(monkeypatch, tmp_path, rel)
    assert cache.key_of("bc-x", BC_CFG, 0, code=ENGINE) != before


def test_notebooks_and_readme_are_not_read():
    """Keys are built from gvatheory's .py files only: nothing under notebooks/ or the README can enter them."""
    files = {cache._module_path(m) for m in cache.dependencies(ENGINE, "gvatheory.language.lm", "gvatheory.theory.cliff")}
    assert files and all(f.suffix == ".py" and cache.PACKAGE_DIR in f.parents for f in files)


def test_bc_cache_key_is_the_engines_scoped_key(tmp_path, monkeypatch):
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path / "cache"))
    cfg = BC_CFG
    path = tmp_path / "cache" / f"{cache.key_of(f'bc-{cfg.system}', cfg, 0, code=ENGINE)}.npz"
    path.parent.mkdir()
    np.savez(path, x=np.zeros(1))
    assert bc.is_cached(cfg, 0)
    _edited(monkeypatch, tmp_path, "language/lm.py")
    assert bc.is_cached(cfg, 0)
    _edited(monkeypatch, tmp_path, "control/bc/engine.py")
    assert not bc.is_cached(cfg, 0)


def test_a_key_computed_twice_reads_each_source_once_per_version(monkeypatch, tmp_path):
    """Keys are memoised on each file's (path, mtime, size): asking again reads nothing, an edit is seen."""
    _edited(monkeypatch, tmp_path, "presets.py")  # a private copy, so that its files can be edited for real
    first = cache.key_of("x", 1, code=ENGINE)
    reads = []
    original = cache._read
    monkeypatch.setattr(cache, "_read", lambda p: reads.append(p) or original(p))
    assert cache.key_of("x", 1, code=ENGINE) == first and not reads
    target = tmp_path / "gvatheory" / "control" / "policies.py"
    target.write_text(target.read_text() + "\n# another edit, one character longer\n")
    assert cache.key_of("x", 1, code=ENGINE) != first and reads


def test_markdown_table_formats_floats_and_nan():
    from gvatheory.infra.plot import markdown_table

    t = markdown_table(("a", "b", "c"), [("x", 1.23456, float("nan")), ("y", np.float32(2.0), True)], digits=2)
    assert t.splitlines() == ["| a | b | c |", "|---|---|---|", "| x | 1.2 | — |", "| y | 2 | True |"]


def test_compiler_flags_and_precision_enter_the_key(monkeypatch):
    for v in cache.NUMERICS_ENV:
        monkeypatch.delenv(v, raising=False)
    base = cache.key_of("t", Cfg(), 0, code=cache)
    monkeypatch.setenv("XLA_FLAGS", "")
    assert cache.key_of("t", Cfg(), 0, code=cache) == base  # empty is JAX's default, as unset
    keys = {base}
    for v, val in [("XLA_FLAGS", "--xla_backend_optimization_level=0"), ("JAX_ENABLE_X64", "1")]:
        monkeypatch.setenv(v, val)
        keys.add(cache.key_of("t", Cfg(), 0, code=cache))
    assert len(keys) == 3  # each setting is another result
    monkeypatch.delenv("XLA_FLAGS")
    monkeypatch.delenv("JAX_ENABLE_X64")
    assert cache.key_of("t", Cfg(), 0, code=cache) == base
