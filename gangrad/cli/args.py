"""Parsing the command line's small languages (``NAME=VALUE``, estimator lists, schedules,
σ sweeps) and checking output paths before work. Each raises ``ValueError`` with what
was expected."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

__all__ = ["key_values", "parse_estimator_list", "parse_value", "schedules", "sweep",
           "writable_dir", "writable_file"]


def parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def key_values(items: list[str], flag: str) -> dict:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"{flag} expects NAME=VALUE, got {item!r}")
        out[name] = parse_value(value)
    return out


def schedules(items: list[str], steps: int | None) -> dict:
    from gangrad.schedules import Schedule

    out = {}
    for item in items:
        name, sep, spec = item.partition("=")
        parts = spec.split(":")
        if not sep or len(parts) not in (2, 3):
            raise ValueError(f"--anneal expects NAME=START:END[:KIND], got {item!r}")
        try:
            start, end = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"--anneal: START and END must be numbers in {item!r}") from None
        kind = parts[2] if len(parts) == 3 else "geometric"
        out[name] = Schedule(start, end, steps or 1, kind)
    return out


def parse_estimator_list(text: str) -> list[tuple[str, dict]]:
    """``"a,b(x=1,y=z)"`` -> ``[("a", {}), ("b", {"x": 1, "y": "z"})]``."""
    items, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    out = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        key, _, rest = item.partition("(")
        if rest and not rest.endswith(")"):
            raise ValueError(f"bad estimator spec {item!r}; use key or key(name=value,...)")
        args = [a for a in rest[:-1].split(",") if a.strip()] if rest else []
        out.append((key.strip(), key_values([a.strip() for a in args], "estimator spec")))
    if not out:
        raise ValueError("--estimators is empty")
    return out


def sweep(text: str) -> list[float]:
    import numpy as np

    parts = text.split(":")
    try:
        lo, hi, n = float(parts[0]), float(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        raise ValueError(f"--sigma-sweep expects LOW:HIGH:COUNT, got {text!r}") from None
    if not (0 < lo < hi) or n < 2:
        raise ValueError(f"--sigma-sweep needs 0 < LOW < HIGH and COUNT >= 2, got {text!r}")
    return [float(v) for v in np.logspace(np.log10(lo), np.log10(hi), n)]


def writable_dir(path: str | Path, flag: str) -> Path:
    """``path`` as a folder that can be written, checked before any work so that nothing
    computed is lost on a bad path; ``ValueError`` naming ``flag``. The check creates the
    missing folders and writes a temporary file, then removes what it created: a command
    refused later leaves no empty folder behind, and its writer creates them."""
    path = Path(path)
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ValueError(f"{flag}: cannot write to {path}: {exc.strerror or exc}") from None
    finally:
        for folder in created:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
    return path


def writable_file(path: str | Path, flag: str) -> Path:
    """``path`` as a file that can be written (its folder may be missing: the writer
    creates it); see :func:`writable_dir`."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag}: {path} is a folder; give a file name")
    writable_dir(path.parent, flag)
    return path
