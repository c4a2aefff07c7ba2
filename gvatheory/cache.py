"""A small on-disk cache of experiment results (dicts of numpy arrays), keyed by their configuration."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np

import gvatheory


def cache_dir() -> Path:
    """$GVATHEORY_CACHE if set, else ``.cache/`` at the repository root (git-ignored)."""
    env = os.environ.get("GVATHEORY_CACHE")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".cache"


def _describe(obj):
    if dataclasses.is_dataclass(obj):
        return {"type": type(obj).__name__, **{f.name: _describe(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    if isinstance(obj, dict):
        return {str(k): _describe(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple)):
        return [_describe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"array": hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest(), "shape": obj.shape}
    return obj if isinstance(obj, (int, float, str, bool, type(None))) else repr(obj)


# modules that cannot change a computed result: editing them keeps the cache
_PRESENTATION = {"plot.py", "execute.py"}


@functools.cache
def _code_version() -> str:
    """Hash of the library's computing source: editing such a module invalidates every cached result."""
    h = hashlib.sha256()
    for f in sorted(Path(__file__).resolve().parent.glob("*.py")):
        if f.name not in _PRESENTATION:
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def key_of(name: str, *parts) -> str:
    """A stable file stem for ``name``, the configuration ``parts`` and the library's source code."""
    text = json.dumps([gvatheory.__version__, _code_version(), _describe(list(parts))], sort_keys=True, default=repr)
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def cached(name: str, compute, *parts, refresh: bool = False) -> dict:
    """Returns ``compute()`` (a dict of arrays), loading it from the cache when ``parts`` match.

    Args:
        name: a readable prefix for the file. compute: zero-argument function returning a dict of
            numpy-convertible arrays. parts: everything the result depends on (config, seed, ...).
        refresh: recompute and overwrite even if cached.
    """
    path = cache_dir() / f"{key_of(name, *parts)}.npz"
    if path.exists() and not refresh:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    out = {k: np.asarray(v) for k, v in compute().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    os.replace(tmp, path)  # atomic: a killed run never leaves half a file behind
    return out
