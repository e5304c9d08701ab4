"""Where cells run: local worker processes, or tasks on a Ray cluster. Each backend
yields ``(group, results, running cells)`` as jobs finish (``results`` None: just
started); a group is the cells that differ only in their seed, trained as one job."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any

from gangrad.runner.cell import run_cells
from gangrad.runner.suite import Cell

__all__ = ["Group", "groups_of", "local", "ray"]

Group = list[Cell]


def groups_of(cells: list[Cell], batch_seeds: bool) -> list[Group]:
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


Admit = Callable[[Group], Group]


def _everything(group: Group) -> Group:
    return group


def local(groups: list[Group], workers: int, device: str | None, admit: Admit = _everything
          ) -> Iterator[tuple[Group, list[dict[str, Any]] | None, int]]:
    """Worker processes (``workers``; in this process when 1). ``admit`` is asked just
    before a group starts, and returns the part of it to compute (claimed cells)."""
    if workers <= 1:
        for group in filter(None, map(admit, groups)):
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
                group = admit(queue.pop(0))
                if not group:
                    continue
                pending[pool.submit(run_cells, [c.config() for c in group], device,
                                    threads)] = group
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                group = pending.pop(fut)
                yield group, fut.result(), sum(len(g) for g in pending.values())
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


def ray(groups: list[Group], address: str | None, device: str | None, workers: int,
        admit: Admit = _everything) -> Iterator[tuple[Group, list[dict[str, Any]] | None, int]]:
    """Tasks on a Ray cluster (``address``; a local Ray when None or "local"); every group
    is admitted and submitted at once."""
    try:
        import ray as ray_mod
    except ImportError:
        raise RuntimeError("the ray backend needs Ray: pip install 'gangrad[ray]'") from None
    if not ray_mod.is_initialized():
        if address in (None, "local"):
            ray_mod.init(num_cpus=max(workers, 1), include_dashboard=False, log_to_driver=False)
        else:
            ray_mod.init(address=address, log_to_driver=False)
    remote = ray_mod.remote(num_cpus=1)(run_cells)
    refs = {remote.remote([c.config() for c in g], device, 1): g
            for g in filter(None, map(admit, groups))}
    try:
        while refs:
            ready, _ = ray_mod.wait(list(refs), num_returns=1)
            for ref in ready:
                group = refs.pop(ref)
                yield group, ray_mod.get(ref), sum(len(g) for g in refs.values())
    finally:
        for ref in refs:
            ray_mod.cancel(ref, force=True)
