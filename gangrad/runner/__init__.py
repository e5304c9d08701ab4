"""Running suites into the results store, locally or on a Ray cluster.

::

    from gangrad.runner import run_suite
    summary = run_suite("quick", workers=2)          # or a TOML path
    gangrad.load(summary.run)                         # tidy DataFrame

The driver process alone writes the store, one transaction per finished cell. Cells that
the store already holds for the run are skipped (resume); ``fresh=True`` starts over.
Ctrl-C stops after saving what finished; a re-run picks up the rest. A run extended with
more seeds (``Suite.with_seeds``, ``Suite.with_sequential``) resumes as extended when run
again from the suite as written. A worker process that dies (the out-of-memory killer,
say) leaves its cells failed and is replaced; they are run once more. A write that fails
(a full disk) stops the run with what is stored (:class:`StoreWriteError`).

Cells that differ only in their seed are one job: their seeds train together as one
batched model (:func:`gangrad.train.train_seeds`), with the numbers each cell gets alone;
``batch_seeds=False`` (``--no-batch-seeds``) runs every cell on its own.
"""

from __future__ import annotations

import contextlib
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
from gangrad.runner.store import Store, StoreError, StoreWriteError, check_run_name
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
           "StoreError", "StoreWriteError", "Suite", "SuiteError", "Summary", "check_device",
           "check_run_name", "load", "load_suite", "parse_suite", "planned_cells", "run_suite",
           "tidy"]


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
    note: str = ""  # how the run's plan was read (an extended run resumed as extended)
    deaths: list[str] = field(default_factory=list)  # worker processes that died, and why
    lost: int = 0  # cells left failed because their worker process died twice

    @property
    def not_run(self) -> int:
        return self.total - self.skipped - self.ok - self.diverged - self.failed

    def __str__(self) -> str:
        text = (f"run {self.run!r}: {self.ok} ok, {self.diverged} diverged, {self.failed} failed"
                f", {self.skipped} already stored, {self.not_run} not run, of {self.total} cells "
                f"in {self.wall_s:.1f}s -> {self.store}")
        if self.note:
            text += f"\n{self.note}"
        if self.deaths:
            text += (f"\n{len(self.deaths)} worker process(es) died and were replaced: "
                     + "; ".join(self.deaths) + ". Their cells were stored as failed and run "
                     "once more" + (f"; {self.lost} died again and stay failed (a re-run "
                                    "tries them again)" if self.lost else ", and stored"))
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
    is computed, so a second process on the same run takes other cells. A run stored
    from ``suite`` on more seeds (extended with ``with_seeds`` or ``with_sequential``)
    continues as stored, every cell kept (``Summary.note`` says so); a run whose stored
    cells the suite no longer declares otherwise (the suite was edited) is refused: name
    a new ``run`` or pass ``fresh=True``. A sequential suite then runs each look's next
    batch of seeds for the tasks still undetermined (:func:`planned_cells`), until every
    task is decided or has its ``max_seeds``. A write that fails (a full disk) raises
    :class:`StoreWriteError`, saying what is stored.
    """
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be local or ray, got {backend!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    device = check_device(device)
    run = check_run_name(run if run is not None else suite.name)
    start = time.perf_counter()
    with Store(store) as db:
        suite, note = _plan_of(db, run, suite, fresh)
        meta = {"gangrad": gangrad.__version__, "torch": torch.__version__, "device": device,
                "git_commit": git_commit()}
        db.start_run(run, suite.name, suite.text, len(suite.cells), meta, fresh=fresh)
        finished = db.finished(run, retry_failed)
        stored = db.cell_ids(run)
        summary = Summary(run=run, store=db.path, total=0, note=note)
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
        except BaseException:
            with contextlib.suppress(StoreError):  # the first error is the one to tell
                db.release(run)
            raise
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
    from gangrad.stats import undetermined_tasks

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


def _grid(suite: Suite) -> set[str]:
    """Every configuration ``suite`` may run, seeds aside."""
    return {json.dumps({k: v for k, v in c.config().items() if k != "seed"}, sort_keys=True)
            for c in suite.possible_cells()}


def _plan_of(db: Store, run: str, suite: Suite, fresh: bool) -> tuple[Suite, str]:
    """The suite to run as ``run``, and a note on it. ``suite`` itself, unless the store
    holds cells of the run that ``suite`` cannot have: then the stored suite, when it is
    ``suite`` on more seeds (the run was extended: ``--seeds``, ``--until-decided``), so
    resuming keeps every cell; otherwise ``suite`` was edited, and the run is refused."""
    stored_ids = db.cell_ids(run)
    stale = stored_ids - {c.cell_id for c in suite.possible_cells()}
    if fresh or not stale:
        return suite, ""
    stored = _stored_suite(db, run)
    if stored is not None and _grid(stored) == _grid(suite):
        seeds_of = {c.cell_id: c.seed for c in stored.possible_cells()}
        if stale <= set(seeds_of):
            extra = sorted({seeds_of[i] for i in stale})
            plan = (f"up to {stored.sequential.max_seeds} seeds per task while a comparison "
                    "is undetermined" if stored.sequential else
                    f"on {len(stored.seeds)} seeds")
            return stored, (
                f"run {run!r} was extended beyond the suite as given (it holds {len(stale)} "
                f"cells on seeds {', '.join(map(str, extra))}): it continues as stored, "
                f"{plan}, keeping every cell; --run NEW-NAME runs the suite as given beside "
                "it")
    raise ValueError(
        f"run {run!r} in {db.path} holds {len(stale)} cells that suite {suite.name!r} no "
        "longer declares (the suite was edited): pass --run NEW-NAME to store it as a new "
        f"run beside the stored one, or --fresh to delete run {run!r}'s {len(stored_ids)} "
        "stored cells and start it over")


def _stored_suite(db: Store, run: str) -> Suite | None:
    """The suite the run was stored from (its text is kept with the run), if it parses."""
    info = db.run_info(run)
    if not info.get("suite_text"):
        return None
    try:
        return parse_suite(info["suite_text"], info["suite"])
    except SuiteError:
        return None


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
    retrying: dict[str, str] = {}  # cells whose worker died, run once more: their failure
    try:
        for group, results, running in source:
            if results is None:
                bar.update(done, running, summary.failed, f"running {_group_label(group)}")
                continue
            died = results[0].get("worker_died") if results else None
            if died:
                summary.deaths.append(f"the one running {_group_label(group)} {died['how']}")
                summary.lost += len(group) if died["final"] else 0
            for cell, result in zip(group, results, strict=True):
                db.add_cell(run, cell.cell_id, cell.config(), result, result["metrics"])
                db.release(run, [cell.cell_id])
                if cell.cell_id in retrying:  # its second result replaces the first
                    summary.failed -= 1
                    summary.failures.remove(retrying.pop(cell.cell_id))
                    done -= 1
                done += 1
                status = result["status"]
                setattr(summary, status, getattr(summary, status) + 1)
                if status == "failed":
                    summary.failures.append(
                        f"{cell.label}: {result['error'].strip().splitlines()[-1]}")
                    if died and not died["final"]:
                        retrying[cell.cell_id] = summary.failures[-1]
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
