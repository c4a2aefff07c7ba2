"""Shared validation for the frozen config dataclasses: fail early, naming the field and the range."""
from __future__ import annotations


def require_ints(cfg, names, minimum: int = 1) -> None:
    """Raises ValueError unless every field in ``names`` of ``cfg`` is an integer >= ``minimum``."""
    for name in names:
        v = getattr(cfg, name)
        if isinstance(v, bool) or int(v) != v or v < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
