"""Running suites into the results store, locally or on a Ray cluster.

::

    from gangrad.runner import run_suite
    summary = run_suite("quick", workers=2)          # or a TOML path
    gangrad.load(summary.run)                         # tidy DataFrame

The driver process alone writes the store, one transaction per finished cell. Cells that
the store already holds for the run are skipped (resume); ``fresh=True`` starts over.
Ctrl-C stops after saving what finished; a re-run picks up the rest.

Cells that differ only in their seed are one job: their seeds train together as one
batched model (:func:`gangrad.train.train_seeds`), with the numbers each cell gets alone;
``batch_seeds=False`` (``--no-batch-seeds``) runs every cell on its own.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import gangrad
from gangrad import _validate, estimators
from gangrad._provenance import git_commit
from gangrad.runner.backends import Group, groups_of, local, ray
from gangrad.runner.cell import TIMING_METRICS
from gangrad.runner.store import Store, StoreError, check_run_name
from gangrad.runner.suite import (
    BUILTIN_SUITES,
    Cell,
    Sequential,
    Suite,
    SuiteError,
    load_suite,
    parse_suite,
)

__all__ = ["BUILTIN_SUITES", "TIMING_METRICS", "Cell", "Progress", "Sequential", "Store",
           "StoreError", "Suite", "SuiteError", "Summary", "check_device", "check_run_name",
           "load", "load_suite", "parse_suite", "planned_cells", "run_suite", "tidy"]


@dataclass
class Summary:
    run: str
    store: Path
    total: int
    skipped: int = 0
    ok: int = 0
    diverged: int = 0
    failed: int = 0
    interrupted: bool = False
    wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    retried: int = 0  # failed cells of an earlier run, computed again
    elsewhere: int = 0  # cells another live process has claimed

    @property
    def not_run(self) -> int:
        return self.total - self.skipped - self.ok - self.diverged - self.failed

    def __str__(self) -> str:
        text = (f"run {self.run!r}: {self.ok} ok, {self.diverged} diverged, {self.failed} failed"
                f", {self.skipped} already stored, {self.not_run} not run, of {self.total} cells "
                f"in {self.wall_s:.1f}s -> {self.store}")
        if self.retried:
            text += f"\nretried {self.retried} cells that had failed before"
        if self.elsewhere:
            text += (f"\n{self.elsewhere} cells were being run by another process; run the "
                     "same command once it has finished to pick up any it did not store")
        if self.interrupted:
            text += "\ninterrupted: finished cells are saved; run the same command to resume"
        return text


class Progress:
    """One status line: cells done / running / failed, and an ETA."""

    def __init__(self, total: int, stream=sys.stderr, enabled: bool = True,
                 done: int = 0) -> None:
        """``done``: cells already done when it starts (they do not count in the rate)."""
        self.total, self.stream, self.enabled, self.first = total, stream, enabled, done
        self.start = time.perf_counter()
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def update(self, done: int, running: int, failed: int, last: str = "") -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        rate = (done - self.first) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        width = 24
        filled = int(width * done / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        eta_s = "?" if eta != eta else f"{eta:.0f}s"
        line = (f"[{bar}] {done}/{self.total} done, {running} running, {failed} failed, "
                f"{elapsed:.0f}s elapsed, ETA {eta_s}" + (f"  | {last}" if last else ""))
        if self.tty:
            self.stream.write("\r" + line[:160].ljust(160))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def check_device(device: str | None) -> str:
    """The device to run on (default: cuda when available), or ``ValueError`` before work."""
    return _validate.device("run", device)


def run_suite(suite: str | Path | Suite, *, store: str | Path | None = None,
              run: str | None = None, workers: int = 1, backend: str = "local",
              address: str | None = None, fresh: bool = False, device: str | None = None,
              progress: bool = True, batch_seeds: bool = True, retry_failed: bool = True,
              on_cell: Callable[[Cell, dict[str, Any]], None] | None = None) -> Summary:
    """Run every cell of ``suite`` not yet stored; returns the counts.

    Failed cells of an earlier run are computed again (``retry_failed=False`` keeps them);
    diverged ones are results and are kept. Each cell is claimed in the store before it
    is computed, so a second process on the same run takes other cells. A run whose
    stored cells the suite no longer declares (the suite was edited) is refused: name a
    new ``run`` or pass ``fresh=True``. A sequential suite then runs each look's next
    batch of seeds for the tasks still undetermined (:func:`planned_cells`), until every
    task is decided or has its ``max_seeds``.
    """
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be local or ray, got {backend!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    device = check_device(device)
    run = check_run_name(run or suite.name)
    start = time.perf_counter()
    with Store(store) as db:
        _check_same_suite(db, run, suite, fresh)
        meta = {"gangrad": gangrad.__version__, "torch": torch.__version__, "device": device,
                "git_commit": git_commit()}
        db.start_run(run, suite.name, suite.text, len(suite.cells), meta, fresh=fresh)
        finished = db.finished(run, retry_failed)
        stored = db.cell_ids(run)
        summary = Summary(run=run, store=db.path, total=0)
        seen: set[str] = set()
        try:
            while not summary.interrupted:  # a sequential suite's plan grows look by look
                cells = (planned_cells(suite, db.metrics(run), db.cells(run))
                         if suite.sequential else suite.cells)
                new = [c for c in cells if c.cell_id not in seen]
                if not new:
                    break
                seen |= {c.cell_id for c in new}
                todo = [c for c in new if c.cell_id not in finished]
                summary.total += len(new)
                summary.skipped += len(new) - len(todo)
                summary.retried += len(stored & {c.cell_id for c in todo})
                if len(cells) != len(suite.cells):  # a sequential plan has grown
                    db.start_run(run, suite.name, suite.text, len(cells), meta)
                _run_groups(db, run, groups_of(todo, batch_seeds), summary, workers, backend,
                            address, device, progress, on_cell)
        finally:
            db.release(run)
    summary.wall_s = time.perf_counter() - start
    return summary


def planned_cells(suite: Suite, metrics: pd.DataFrame, cells: pd.DataFrame) -> list[Cell]:
    """The cells ``suite`` calls for, given what is stored (``metrics`` and ``cells`` of
    the run, as :class:`Store` returns them): its own cells and, for a sequential suite,
    each look's next batch of seeds for every task whose comparisons were still
    undetermined on the seeds before it (decided at the suite's level; see
    :mod:`gangrad.runner.suite`). A look whose cells are not all stored yet adds nothing
    after it, so replaying the looks on a resumed run gives the same plan."""
    plan = list(suite.cells)
    seq = suite.sequential
    if seq is None:
        return plan
    from gangrad.report.tables import undetermined_tasks

    stored = set(cells["cell_id"]) if len(cells) else set()
    open_tasks = list(dict.fromkeys(c.task for c in suite.cells))
    for look in range(1, seq.looks):
        before = {t: suite.task_cells(t, seq.seeds_at(look - 1)) for t in open_tasks}
        complete = [t for t in open_tasks if all(c.cell_id in stored for c in before[t])]
        ids = {c.cell_id for t in complete for c in before[t]}
        still = undetermined_tasks(metrics[metrics["cell_id"].isin(ids)],
                                   cells[cells["cell_id"].isin(ids)], suite.level) \
            if ids else set()
        open_tasks = [t for t in complete if t in still]
        for t in open_tasks:
            have = {c.cell_id for c in before[t]}
            plan += [c for c in suite.task_cells(t, seq.seeds_at(look))
                     if c.cell_id not in have]
    return plan


def _check_same_suite(db: Store, run: str, suite: Suite, fresh: bool) -> None:
    stale = db.cell_ids(run) - {c.cell_id for c in suite.possible_cells()}
    if stale and not fresh:
        raise ValueError(
            f"run {run!r} in {db.path} holds {len(stale)} cells that suite {suite.name!r} no "
            "longer declares (the suite was edited): pass --run NEW-NAME to start a new run "
            "beside it, or --fresh to replace the stored one")


def _run_groups(db: Store, run: str, groups: list[Group], summary: Summary, workers: int,
                backend: str, address: str | None, device: str, progress: bool,
                on_cell: Callable[[Cell, dict[str, Any]], None] | None) -> None:
    """Compute the groups (each claimed first) and store each finished cell."""
    done = summary.skipped + summary.ok + summary.diverged + summary.failed
    bar = Progress(summary.total, enabled=progress, done=done)
    bar.update(done, 0, 0)

    def admit(group: Group) -> Group:
        got = set(db.claim(run, [c.cell_id for c in group]))
        summary.elsewhere += len(group) - len(got)
        return [c for c in group if c.cell_id in got]

    source = (local(groups, workers, device, admit) if backend == "local"
              else ray(groups, address, device, workers, admit))
    try:
        for group, results, running in source:
            if results is None:
                bar.update(done, running, summary.failed, f"running {_group_label(group)}")
                continue
            for cell, result in zip(group, results, strict=True):
                db.add_cell(run, cell.cell_id, cell.config(), result, result["metrics"])
                db.release(run, [cell.cell_id])
                done += 1
                status = result["status"]
                setattr(summary, status, getattr(summary, status) + 1)
                if status == "failed":
                    summary.failures.append(
                        f"{cell.label}: {result['error'].strip().splitlines()[-1]}")
                bar.update(done, running, summary.failed, f"{status}: {cell.label}")
                if on_cell is not None:
                    on_cell(cell, result)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()


def _group_label(group: Group) -> str:
    if len(group) == 1:
        return group[0].label
    head = group[0].label.rsplit("/seed", 1)[0]
    return f"{head}/seeds {','.join(str(c.seed) for c in group)}"


def tidy(metrics: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """The store's metrics with each cell's estimator hyper-parameters as columns (every
    one, defaults included: ``sigma``, ``baseline``, …; prefixed ``hyper_`` where a name is
    already a column), after ``label``. NaN where an estimator has no such parameter."""
    rows = []
    for cell_id, config in zip(cells["cell_id"], cells["config"], strict=True):
        spec = json.loads(config)
        try:
            hyper = estimators.create(spec["estimator"],
                                      **spec["estimator_params"]).hyperparameters()
        except Exception:  # a plug-in no longer installed: what the suite gave
            hyper = dict(spec["estimator_params"])
        rows.append({"cell_id": cell_id, **hyper})
    if not rows or (len(rows[0]) == 1 and all(len(r) == 1 for r in rows)):
        return metrics
    hyper = pd.DataFrame(rows)
    hyper.columns = ["cell_id"] + [f"hyper_{c}" if c in metrics.columns else c
                                   for c in hyper.columns[1:]]
    out = metrics.merge(hyper, on="cell_id", how="left")
    at = list(metrics.columns).index("label") + 1
    order = [*metrics.columns[:at], *hyper.columns[1:], *metrics.columns[at:]]
    return out[order]


def load(run: str, store: str | Path | None = None) -> pd.DataFrame:
    """The run's tidy metrics: one row per cell × kind × step × layer × name, with the
    cell's identity and its estimator's hyper-parameters as columns. Reads only."""
    with Store(store, readonly=True) as db:
        db.run_info(run)
        return tidy(db.metrics(run), db.cells(run))
