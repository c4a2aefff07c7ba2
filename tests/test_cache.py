"""The result cache: a hit returns what was stored, a different configuration misses."""
import dataclasses

import numpy as np

from gvatheory import cache


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

    first = cache.cached("t", compute, Cfg(), 0)
    again = cache.cached("t", compute, Cfg(), 0)
    np.testing.assert_array_equal(first["x"], again["x"])
    assert len(calls) == 1  # the second call was a hit
    cache.cached("t", compute, Cfg(a=2), 0)
    cache.cached("t", compute, Cfg(), 1)
    assert len(calls) == 3  # another config or seed misses
    fresh = cache.cached("t", compute, Cfg(), 0, refresh=True)
    assert len(calls) == 4 and fresh["x"][1] == 4
    assert len(list(tmp_path.glob("t-*.npz"))) == 3
    assert not list(tmp_path.glob("*.tmp.npz"))


def test_markdown_table_formats_floats_and_nan():
    from gvatheory.plot import markdown_table

    t = markdown_table(("a", "b", "c"), [("x", 1.23456, float("nan")), ("y", np.float32(2.0), True)], digits=2)
    assert t.splitlines() == ["| a | b | c |", "|---|---|---|", "| x | 1.2 | — |", "| y | 2 | True |"]
