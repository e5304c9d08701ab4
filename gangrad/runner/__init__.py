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
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import gangrad
from gangrad.runner.cell import TIMING_METRICS, run_cells
from gangrad.runner.store import Store
from gangrad.runner.suite import BUILTIN_SUITES, Cell, Suite, SuiteError, load_suite

__all__ = ["BUILTIN_SUITES", "TIMING_METRICS", "Cell", "Progress", "Store", "Suite",
           "SuiteError", "Summary", "load", "load_suite", "run_suite"]


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

    @property
    def not_run(self) -> int:
        return self.total - self.skipped - self.ok - self.diverged - self.failed

    def __str__(self) -> str:
        text = (f"run {self.run!r}: {self.ok} ok, {self.diverged} diverged, {self.failed} failed"
                f", {self.skipped} already stored, {self.not_run} not run, of {self.total} cells "
                f"in {self.wall_s:.1f}s -> {self.store}")
        if self.interrupted:
            text += "\ninterrupted: finished cells are saved; run the same command to resume"
        return text


class Progress:
    """One status line: cells done / running / failed, and an ETA."""

    def __init__(self, total: int, stream=sys.stderr, enabled: bool = True) -> None:
        self.total, self.stream, self.enabled = total, stream, enabled
        self.done = self.failed = self.running = 0
        self.start = time.perf_counter()
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def update(self, done: int, running: int, failed: int, last: str = "") -> None:
        self.done, self.running, self.failed = done, running, failed
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        eta = (elapsed / done * (self.total - done)) if done else float("nan")
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


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(gangrad.__file__).parent, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


Group = list[Cell]


def _groups(cells: list[Cell], batch_seeds: bool) -> list[Group]:
    """The jobs: cells differing only in their seed together (in first-seen order)."""
    if not batch_seeds:
        return [[c] for c in cells]
    groups: dict[str, Group] = {}
    for cell in cells:
        key = json.dumps({k: v for k, v in cell.config().items() if k != "seed"},
                         sort_keys=True)
        groups.setdefault(key, []).append(cell)
    return list(groups.values())


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: exit when the driver is gone (e.g. killed with SIGKILL), rather
    than compute cells nobody will store."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _local(groups: list[Group], workers: int, device: str | None
           ) -> Iterator[tuple[Group, list[dict[str, Any]] | None, int]]:
    """Yields ``(group, results, running cells)`` as jobs finish (``results`` None: just
    started)."""
    if workers <= 1:
        for group in groups:
            yield group, None, len(group)
            yield group, run_cells([c.config() for c in group], device), 0
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))
    pending: dict[Future, Group] = {}
    queue = list(groups)
    try:
        while queue or pending:
            while queue and len(pending) < workers:
                group = queue.pop(0)
                pending[pool.submit(run_cells, [c.config() for c in group], device,
                                    threads)] = group
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                group = pending.pop(fut)
                yield group, fut.result(), sum(len(g) for g in pending.values())
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


def _ray(groups: list[Group], address: str | None, device: str | None,
         workers: int) -> Iterator[tuple[Group, list[dict[str, Any]] | None, int]]:
    try:
        import ray
    except ImportError:
        raise RuntimeError("the ray backend needs Ray: pip install 'gangrad[ray]'") from None
    if not ray.is_initialized():
        if address in (None, "local"):
            ray.init(num_cpus=max(workers, 1), include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(run_cells)
    refs = {remote.remote([c.config() for c in g], device, 1): g for g in groups}
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                group = refs.pop(ref)
                yield group, ray.get(ref), sum(len(g) for g in refs.values())
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)


def run_suite(suite: str | Path | Suite, *, store: str | Path | None = None,
              run: str | None = None, workers: int = 1, backend: str = "local",
              address: str | None = None, fresh: bool = False, device: str | None = None,
              progress: bool = True, batch_seeds: bool = True,
              on_cell: Callable[[Cell, dict[str, Any]], None] | None = None) -> Summary:
    """Run every cell of ``suite`` not yet stored; returns the counts."""
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be local or ray, got {backend!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if device and device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    run = run or suite.name
    start = time.perf_counter()
    with Store(store) as db:
        meta = {"gangrad": gangrad.__version__, "torch": torch.__version__,
                "device": device or ("cuda" if torch.cuda.is_available() else "cpu"),
                "git_commit": _git_commit()}
        db.start_run(run, suite.name, suite.text, len(suite.cells), meta, fresh=fresh)
        finished = db.finished(run)
        todo = [c for c in suite.cells if c.cell_id not in finished]
        summary = Summary(run=run, store=db.path, total=len(suite.cells),
                          skipped=len(suite.cells) - len(todo))
        bar = Progress(len(suite.cells), enabled=progress)
        done = summary.skipped
        bar.update(done, 0, 0)
        groups = _groups(todo, batch_seeds)
        source = (_local(groups, workers, device) if backend == "local"
                  else _ray(groups, address, device, workers))
        try:
            for group, results, running in source:
                if results is None:
                    bar.update(done, running, summary.failed, f"running {_group_label(group)}")
                    continue
                for cell, result in zip(group, results, strict=True):
                    db.add_cell(run, cell.cell_id, cell.config(), result, result["metrics"])
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
    summary.wall_s = time.perf_counter() - start
    return summary


def _group_label(group: Group) -> str:
    if len(group) == 1:
        return group[0].label
    head = group[0].label.rsplit("/seed", 1)[0]
    return f"{head}/seeds {','.join(str(c.seed) for c in group)}"


def load(run: str, store: str | Path | None = None) -> pd.DataFrame:
    """The run's metrics as a tidy DataFrame (one row per cell × kind × step × layer × name)."""
    with Store(store) as db:
        db.run_info(run)
        return db.metrics(run)
