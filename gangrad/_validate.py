"""Hyper-parameter checks that name the parameter and the allowed range."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import torch

__all__ = ["choice", "device", "integer", "known_fields", "positive", "unit_interval"]


def _real(owner: str, name: str, value: object, allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{owner}: {name} must be a number in {allowed}, got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{owner}: {name} must be a number in {allowed}, got nan")
    return value


def positive(owner: str, name: str, value: object) -> float:
    """A finite real number > 0."""
    allowed = "(0, inf)"
    v = _real(owner, name, value, allowed)
    if not (0 < v < math.inf):
        raise ValueError(f"{owner}: {name} must be in {allowed}, got {v}")
    return v


def unit_interval(owner: str, name: str, value: object) -> float:
    """A real number in the open interval (0, 1)."""
    allowed = "(0, 1)"
    v = _real(owner, name, value, allowed)
    if not (0 < v < 1):
        raise ValueError(f"{owner}: {name} must be in {allowed}, got {v}")
    return v


def integer(owner: str, name: str, value: object, minimum: int) -> int:
    """An integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def choice(owner: str, name: str, value: object, options: Iterable[str]) -> str:
    """One of ``options``."""
    options = tuple(options)
    if value not in options:
        raise ValueError(f"{owner}: {name} must be one of {', '.join(options)}; got {value!r}")
    return str(value)


def known_fields(owner: str, names: Iterable[str], given: Iterable[str], kind: str) -> None:
    """Refuse any of ``given`` not among ``names``, listing the accepted ones."""
    names = list(names)
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"{owner}: unknown {kind}(s) {', '.join(unknown)}; accepted: "
                         f"{', '.join(names)}")


def device(owner: str, value: object) -> str:
    """A device gangrad runs on: ``cpu``, ``cuda`` or ``cuda:N`` (CUDA present); ``None``
    is CUDA when available, else the CPU."""
    if value is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(value).type if isinstance(value, str) else None
    except (RuntimeError, TypeError):
        kind = None
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"{owner}: device must be cpu, cuda or cuda:N, got {value!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{owner}: device {value!r} requested but CUDA is not available")
    return value
