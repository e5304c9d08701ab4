"""Committed results equal what the code computes: recompute them and compare.

``gangrad check`` (what CI runs beside the tests) recomputes every committed quick answer
(``reports/questions/NAME.json``), every committed quick reproduction
(``reports/reproductions/NAME.json``) and, on request, a committed suite report's tables
(``reports/quick/tables/*.csv``), and lists every difference. A committed file that the
current code no longer produces is *stale*: the check fails until it is regenerated.

What is compared:

- numbers within a relative tolerance of ``1e-6`` (``math.isclose``; exact for integers),
  texts and outcomes exactly, list lengths and keys exactly;
- except what varies from run to run by nature: wall-clock times and the provenance
  (keys ``runtime_s``, ``provenance``, ``commit``; keys ending in ``_s``, ``_ms`` or
  ``seconds``;
  keys containing ``time``; report columns of times, memory and provenance).

Both sides must run with the same pinned thread count (:mod:`gangrad._provenance`): the
committed files record theirs, and a check on another count is refused with the reason.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["CheckResult", "check_questions", "check_report", "check_reproductions",
           "diff_records", "diff_tables"]

REL_TOL = 1e-6
_VOLATILE_KEYS = {"runtime_s", "provenance", "commit", "host"}
_VOLATILE = re.compile(r"(_s|_ms|seconds)$|time")
#: report table columns that vary from run to run (times, memory, provenance)
VOLATILE_COLUMNS = re.compile(r"^(time_ms|peak_mem_mb|var_x_time|rank_var_x_time|wall_s|"
                              r"finished|device|torch|gangrad|run)(_lo|_hi)?$")


@dataclass
class CheckResult:
    """One committed result against its recomputation: ``differences`` is empty when they
    agree; ``missing`` when nothing is committed under that name."""

    kind: str
    name: str
    path: Path
    differences: list[str] = field(default_factory=list)
    missing: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.differences and not self.missing

    def __str__(self) -> str:
        head = f"{self.kind} {self.name} ({self.path}, {self.seconds:.0f} s): "
        if self.missing:
            return head + "nothing committed; run the command that writes it"
        if self.ok:
            return head + "matches the code"
        shown = self.differences[:12]
        more = len(self.differences) - len(shown)
        return (head + f"STALE, {len(self.differences)} differences:\n    "
                + "\n    ".join(shown) + (f"\n    ... and {more} more" if more else ""))


def _volatile(key: str) -> bool:
    return key in _VOLATILE_KEYS or bool(_VOLATILE.search(key))


def _same_number(a: float, b: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def diff_records(committed: Any, computed: Any, path: str = "") -> list[str]:
    """Every difference between two JSON values, as ``path: committed != computed``,
    skipping volatile keys (see the module docstring)."""
    where = path or "(top)"
    if isinstance(committed, dict) and isinstance(computed, dict):
        out = []
        for key in sorted(set(committed) | set(computed), key=str):
            if _volatile(str(key)):
                continue
            sub = f"{path}.{key}" if path else str(key)
            if key not in committed:
                out.append(f"{sub}: not committed, computed {_short(computed[key])}")
            elif key not in computed:
                out.append(f"{sub}: committed {_short(committed[key])}, no longer computed")
            else:
                out += diff_records(committed[key], computed[key], sub)
        return out
    if isinstance(committed, list) and isinstance(computed, list):
        if len(committed) != len(computed):
            return [f"{where}: {len(committed)} items committed, {len(computed)} computed"]
        return [d for i, (a, b) in enumerate(zip(committed, computed, strict=True))
                for d in diff_records(a, b, f"{path}[{i}]")]
    numbers = (int, float)
    if isinstance(committed, numbers) and isinstance(computed, numbers):
        return [] if _same_number(committed, computed) else [
            f"{where}: committed {committed!r} != computed {computed!r}"]
    if isinstance(committed, str) and isinstance(computed, str) and committed != computed:
        # long texts that differ late: show both from a little before the first difference
        first = next((i for i, (a, b) in enumerate(zip(committed, computed, strict=False))
                      if a != b), min(len(committed), len(computed)))
        start = max(0, first - 40)
        lead = f" (from character {start})" if start else ""
        return [f"{where}{lead}: committed {_short(committed[start:])} != computed "
                f"{_short(computed[start:])}"]
    if committed != computed:
        return [f"{where}: committed {_short(committed)} != computed {_short(computed)}"]
    return []


def _short(value: Any, width: int = 160) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[:width] + "…"


def _threads_problem(committed: dict, threads: int) -> str | None:
    recorded = (committed.get("provenance") or {}).get("threads")
    if recorded is not None and recorded != threads:
        return (f"committed with {recorded} threads, checking with {threads}: set "
                f"GANGRAD_THREADS={recorded} to compare like with like")
    return None


def _check_records(kind: str, names: Iterable[str], out_dir: Path,
                   compute: Callable[[str], dict],
                   say: Callable[[str], None]) -> list[CheckResult]:
    from gangrad._provenance import result_threads

    results = []
    for name in names:
        path = out_dir / f"{name}.json"
        result = CheckResult(kind, name, path)
        if not path.exists():
            result.missing = True
            results.append(result)
            say(str(result))
            continue
        committed = json.loads(path.read_text())
        problem = _threads_problem(committed, result_threads())
        if problem:
            result.differences = [problem]
            results.append(result)
            say(str(result))
            continue
        start = time.perf_counter()
        computed = compute(name)
        result.seconds = time.perf_counter() - start
        result.differences = diff_records(committed, computed)
        results.append(result)
        say(str(result))
    return results


def check_questions(names: Iterable[str] | None = None, out_dir: str | Path =
                    "reports/questions", say: Callable[[str], None] = print
                    ) -> list[CheckResult]:
    """Recompute each question's quick answer (all by default) and compare it with the
    committed ``NAME.json``; the committed seed and budget are used."""
    from gangrad import questions

    def compute(name: str) -> dict:
        committed = json.loads((Path(out_dir) / f"{name}.json").read_text())
        settings = committed.get("settings", {})
        answer = questions.ask(name, full=bool(settings.get("full")),
                               seed=int(settings.get("seed", 0)))
        return questions.record(answer)

    return _check_records("question", names or questions.available(), Path(out_dir),
                          compute, say)


def check_reproductions(names: Iterable[str] | None = None, out_dir: str | Path =
                        "reports/reproductions", say: Callable[[str], None] = print
                        ) -> list[CheckResult]:
    """Recompute each reproduction (all by default) at the budget and seed it was committed
    with, and compare it with the committed ``NAME.json``."""
    from gangrad import reproductions

    def compute(name: str) -> dict:
        committed = json.loads((Path(out_dir) / f"{name}.json").read_text())
        settings = committed.get("settings", {})
        rep = reproductions.reproduce(name, full=bool(settings.get("full")),
                                      seed=int(settings.get("seed", 0)),
                                      budget=settings.get("budget"))
        return reproductions.record(rep)

    return _check_records("reproduction", names or reproductions.available(), Path(out_dir),
                          compute, say)


def diff_tables(committed: pd.DataFrame, computed: pd.DataFrame, name: str) -> list[str]:
    """Differences between two report tables, volatile columns left out (see
    :data:`VOLATILE_COLUMNS`); rows are compared in order, except that a table of cells
    (with a ``cell_id``) is compared by cell, since workers finish cells in any order."""
    if "cell_id" in committed.columns and "cell_id" in computed.columns:
        committed = committed.sort_values("cell_id", kind="stable", ignore_index=True)
        computed = computed.sort_values("cell_id", kind="stable", ignore_index=True)
    keep = [c for c in committed.columns if not VOLATILE_COLUMNS.match(c)]
    extra = sorted(set(computed.columns) - set(committed.columns))
    out = [f"{name}: column {c} computed, not committed" for c in extra
           if not VOLATILE_COLUMNS.match(c)]
    missing = [c for c in keep if c not in computed.columns]
    out += [f"{name}: column {c} committed, no longer computed" for c in missing]
    keep = [c for c in keep if c in computed.columns]
    if len(committed) != len(computed):
        return [*out, f"{name}: {len(committed)} rows committed, {len(computed)} computed"]
    a = json.loads(committed[keep].to_json(orient="records"))
    b = json.loads(computed[keep].to_json(orient="records"))
    return out + diff_records(a, b, name)


def check_report(suite: str = "quick", committed_dir: str | Path | None = None,
                 workers: int | None = None, say: Callable[[str], None] = print
                 ) -> CheckResult:
    """Run ``suite`` into a fresh temporary store, build its report tables, and compare
    them with the committed ``reports/SUITE/tables/*.csv``."""
    from gangrad.report import build_report
    from gangrad.runner import load_suite, run_suite

    committed_dir = Path(committed_dir or f"reports/{suite}")
    result = CheckResult("report", suite, committed_dir)
    if not (committed_dir / "tables").is_dir():
        result.missing = True
        return result
    if workers is None:  # as `gangrad run`: one per core on the CPU, one to drive a GPU
        import torch

        workers = 1 if torch.cuda.is_available() else min(os.cpu_count() or 1, 8)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "check.sqlite"
        name = load_suite(suite).name
        run_suite(suite, store=store, workers=workers, progress=True)
        report = build_report(name, store, Path(tmp) / "reports")
        for table in sorted((committed_dir / "tables").glob("*.csv")):
            fresh = report.directory / "tables" / table.name
            if not fresh.exists():
                result.differences.append(f"{table.name}: no longer written")
                continue
            result.differences += diff_tables(pd.read_csv(table), pd.read_csv(fresh),
                                              table.name)
    result.seconds = time.perf_counter() - start
    say(str(result))
    return result
