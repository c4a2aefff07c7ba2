"""Shared validation of arguments and config fields: fail early, naming the field and the range."""
from __future__ import annotations


def require_int(name: str, value, minimum: int = 1) -> None:
    """Raises ValueError unless ``value`` is an integer (not a bool) >= ``minimum``, naming ``name``."""
    try:
        ok = not isinstance(value, bool) and int(value) == value and value >= minimum
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def require_ints(cfg, names, minimum: int = 1) -> None:
    """Raises ValueError unless every field in ``names`` of ``cfg`` is an integer >= ``minimum``."""
    for name in names:
        require_int(name, getattr(cfg, name), minimum)
