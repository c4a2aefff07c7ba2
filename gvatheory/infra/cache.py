"""An on-disk cache of experiment results (dicts of numpy arrays), keyed by configuration, seed and code.

A result's key is built from three things: the configuration and seed it was computed from, the
versions of the numerical libraries with the environment variables that change their numbers
(``NUMERICS_ENV``: XLA's compiler flags, the platform, the precision), and the source of exactly the
library modules its computation can reach — the modules named in ``code=`` and, transitively, every
``gvatheory`` module they import (read from their ``import`` statements, function-local ones included). Editing any other file — a
notebook, the README, the figure style, the language model when the result is a BC run — leaves the
result cached; editing a module the computation imports recomputes it.

Why a scoped key rather than a hand-bumped version per experiment: a version number stays correct only
while someone remembers to bump it, and the import graph is already the list of code a result depends
on. Its limit: a dependency that is not an import (a data file, a trained expert) must be part of the
configuration passed to :func:`cached` (shipped experts enter their keys by name and digest).
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import types
from pathlib import Path

import numpy as np

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # gvatheory/
# the numerical libraries whose version can change a computed number
LIBRARIES = ("numpy", "scipy", "jax", "jaxlib", "optax", "mujoco")
# environment variables that change the numbers JAX computes (compiler options, device, precision): part of every key
NUMERICS_ENV = ("XLA_FLAGS", "JAX_PLATFORMS", "JAX_ENABLE_X64", "JAX_DEFAULT_MATMUL_PRECISION")


def cache_dir() -> Path:
    """$GVATHEORY_CACHE if set, else ``.cache/`` at the repository root (git-ignored)."""
    env = os.environ.get("GVATHEORY_CACHE")
    return Path(env) if env else PACKAGE_DIR.parent / ".cache"


def _describe(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"type": type(obj).__name__, **{f.name: _describe(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    if isinstance(obj, dict):
        return {str(k): _describe(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple)):
        return [_describe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"array": hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest(), "shape": obj.shape}
    return obj if isinstance(obj, (int, float, str, bool, type(None))) else repr(obj)


def _module_path(name: str) -> Path | None:
    """The source file of the ``gvatheory`` module ``name`` (a package's ``__init__.py``), or None."""
    if name != "gvatheory" and not name.startswith("gvatheory."):
        return None
    rel = Path(*name.split(".")[1:])
    for p in (PACKAGE_DIR / rel.with_suffix(".py"), PACKAGE_DIR / rel / "__init__.py"):
        if p.exists():
            return p
    return None


def _read(path: Path) -> str:
    return path.read_text()


def _stamp(path: Path) -> tuple:
    """What identifies a version of a source file without reading it: (path, modification time, size)."""
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


def _imports(name: str, path: Path) -> set[str]:
    """The ``gvatheory`` modules that the module ``name`` at ``path`` imports (any scope)."""
    return set(_parsed_imports(name, _stamp(path)))


@functools.lru_cache(maxsize=None)
def _parsed_imports(name: str, stamp: tuple) -> frozenset:
    # parsed once per version of the file: a notebook asks for keys hundreds of times
    path = Path(stamp[0])
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(_read(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for a in node.names:  # `from pkg import mod` names a module when one exists, else a name in pkg
                sub = f"{base}.{a.name}"
                out.add(sub if _module_path(sub) else base)
    return frozenset(m for m in out if _module_path(m))


def dependencies(*modules) -> list[str]:
    """The ``gvatheory`` modules (dotted names, sorted) that ``modules`` reach through their imports, themselves included.

    ``modules``: module objects or dotted names. Package ``__init__`` files count only where a module
    imports a name from the package itself.
    """
    todo = [m.__name__ if isinstance(m, types.ModuleType) else str(m) for m in modules]
    for m in todo:
        if _module_path(m) is None:
            raise ValueError(f"{m!r} is not a module of the gvatheory package")
    seen = set()
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(_imports(m, _module_path(m)) - seen)
    return sorted(seen)


def code_version(*modules) -> str:
    """A hash of the source of every module in ``dependencies(*modules)`` and of the libraries' versions."""
    deps = dependencies(*modules)
    return _hash_sources(tuple(deps), tuple(_stamp(_module_path(m)) for m in deps))


@functools.lru_cache(maxsize=None)
def _hash_sources(names: tuple, stamps: tuple) -> str:
    # hashed once per set of file versions (the stamps are the cache key; an edit changes them)
    h = hashlib.sha256()
    for m, st in zip(names, stamps):
        h.update(m.encode() + b"\0" + _read(Path(st[0])).encode())
    h.update(json.dumps(_library_versions()).encode())
    return h.hexdigest()[:16]


@functools.cache
def _library_versions() -> dict:
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            out[lib] = None
    return out


def key_of(name: str, *parts, code) -> str:
    """A stable file stem for ``name``, the configuration ``parts`` and the source that ``code`` reaches.

    ``code``: the module (or tuple of modules) that computes the result; see :func:`dependencies`.
    """
    mods = code if isinstance(code, (tuple, list)) else (code,)
    env = {v: os.environ[v] for v in NUMERICS_ENV if os.environ.get(v)}  # unset and empty: JAX's defaults, as before
    text = json.dumps([code_version(*mods), _describe(list(parts))] + ([env] if env else []), sort_keys=True, default=repr)
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def is_cached(name: str, *parts, code) -> bool:
    """Whether :func:`cached` would load ``(name, parts)`` computed by ``code`` from the cache."""
    return (cache_dir() / f"{key_of(name, *parts, code=code)}.npz").exists()


def cached(name: str, compute, *parts, code, refresh: bool = False) -> dict:
    """Returns ``compute()`` (a dict of arrays), loading it from the cache when ``parts`` and ``code`` match.

    Args:
        name: a readable prefix for the file. compute: zero-argument function returning a dict of
            numpy-convertible arrays. parts: everything the result depends on besides code (config, seed, ...).
        code: the module or modules whose source (with everything they import from gvatheory) computes
            the result: the notebook's own cell code is not part of the key, so pass every library module
            the compute function calls.
        refresh: recompute and overwrite even if cached.
    """
    path = cache_dir() / f"{key_of(name, *parts, code=code)}.npz"
    if path.exists() and not refresh:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    out = {k: np.asarray(v) for k, v in compute().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    os.replace(tmp, path)  # atomic: a killed run never leaves half a file behind
    return out
