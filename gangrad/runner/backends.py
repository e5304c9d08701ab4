"""Where cells run: local worker processes, or tasks on a Ray cluster. Each backend
yields ``(group, results, running cells)`` as jobs finish (``results`` None: just
started); a group is the cells that differ only in their seed, trained as one job.

A worker process that dies while it runs a group (killed by the out-of-memory killer,
say) does not stop the others: its group is yielded as failed cells whose error says how
the process ended (:func:`lost`), a fresh process takes its place, and the group is run
once more at the end of the queue; if it dies again its cells stay failed.
"""

from __future__ import annotations

import json
import os
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing import get_context
from multiprocessing.connection import wait
from typing import Any

from gangrad.runner.cell import run_cells
from gangrad.runner.suite import Cell

__all__ = ["Group", "groups_of", "local", "lost", "ray"]

Group = list[Cell]
Results = list[dict[str, Any]]


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


def lost(group: Group, how: str, final: bool) -> Results:
    """The results of a group whose worker died (``how``: what ended it): failed cells,
    marked ``worker_died`` (``final``: it will not be run again)."""
    error = (f"WorkerDied: the worker process running this cell {how}; "
             + ("it died on its retry too" if final else "it is run once more"))
    return [{"status": "failed", "diverged_at": None, "label": cell.estimator_label,
             "error": error, "metrics": [], "wall_s": None,
             "worker_died": {"how": how, "final": final}} for cell in group]


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        oom = " (the kernel's out-of-memory killer sends it)" if -exitcode == 9 else ""
        return f"was killed by {name}{oom}"
    return f"exited with status {exitcode}"


def _exit_with_parent(parent: int) -> None:
    """In a worker: exit when the driver is gone (e.g. killed with SIGKILL), rather than
    compute cells nobody will store."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _serve(conn, parent: int, threads: int) -> None:
    """A worker process: run each job ``(function, cells, device)`` it receives and send
    back ``("done", results)``, or ``("raised", traceback)``; stop at ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    _exit_with_parent(parent)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the driver is gone
            return
        if job is None:
            return
        function, cells, device = job
        try:
            reply = ("done", function(cells, device, threads))
        except Exception:
            reply = ("raised", traceback.format_exc())
        try:
            conn.send(reply)
        except OSError:  # the driver is gone: nobody will store it
            return


class _Worker:
    """One worker process and the group it runs (``job``: the group and how many times a
    worker has died on it)."""

    def __init__(self, context, threads: int) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, os.getpid(), threads),
                                       daemon=True)
        self.process.start()
        child.close()
        self.job: tuple[Group, int] | None = None

    def stop(self) -> None:
        if self.job is None and self.process.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.process.join(2)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(2)
        self.conn.close()


Admit = Callable[[Group], Group]


def _everything(group: Group) -> Group:
    return group


def local(groups: list[Group], workers: int, device: str | None, admit: Admit = _everything
          ) -> Iterator[tuple[Group, Results | None, int]]:
    """Worker processes (``workers``; in this process when 1). ``admit`` is asked just
    before a group starts, and returns the part of it to compute (claimed cells). A
    worker that dies is replaced, its group yielded as :func:`lost` and run once more."""
    if workers <= 1:
        for group in filter(None, map(admit, groups)):
            yield group, None, len(group)
            yield group, run_cells([c.config() for c in group], device), 0
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = get_context("spawn")
    queue: deque[tuple[Group, int]] = deque((g, 0) for g in groups)
    # a slot's worker, started when it first gets a job (None: not yet, or it died)
    pool: list[_Worker | None] = [None] * min(workers, len(groups))

    def running() -> int:
        return sum(len(w.job[0]) for w in pool if w is not None and w.job is not None)

    try:
        while True:
            for i in range(len(pool)):
                while (pool[i] is None or pool[i].job is None) and queue:
                    group, deaths = queue.popleft()
                    group = admit(group)
                    if not group:
                        continue
                    # looked up now, so a replaced run_cells (a test's fault) reaches workers
                    job = (run_cells, [c.config() for c in group], device)
                    try:
                        pool[i] = pool[i] or _Worker(context, threads)
                        pool[i].conn.send(job)
                    except OSError:  # it died while idle: a fresh one takes the job
                        pool[i].stop()
                        pool[i] = _Worker(context, threads)
                        pool[i].conn.send(job)
                    pool[i].job = (group, deaths)
                    yield group, None, running()
            busy = [w for w in pool if w is not None and w.job is not None]
            if not busy:
                break
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for i, w in enumerate(pool):
                if w is None or w.job is None or (w.conn not in ready
                                                  and w.process.sentinel not in ready):
                    continue
                (group, deaths), reply = w.job, None
                try:
                    if w.conn.poll():
                        reply = w.conn.recv()
                except (EOFError, OSError):
                    reply = None
                w.job = None
                if reply is None:  # the process died with the group
                    w.process.join(5)
                    how = _how_it_ended(w.process.exitcode)
                    w.stop()
                    pool[i] = None
                    if not deaths:
                        queue.append((group, deaths + 1))
                    yield group, lost(group, how, final=deaths > 0), running()
                elif reply[0] == "raised":
                    raise RuntimeError(f"a worker process raised:\n{reply[1]}")
                else:
                    yield group, reply[1], running()
    finally:
        for w in pool:
            if w is not None:
                w.stop()


def ray(groups: list[Group], address: str | None, device: str | None, workers: int,
        admit: Admit = _everything) -> Iterator[tuple[Group, Results | None, int]]:
    """Tasks on a Ray cluster (``address``; a local Ray when None or "local"); every group
    is admitted and submitted at once. A task whose worker crashes (Ray's
    ``WorkerCrashedError``, or its ``OutOfMemoryError``) is :func:`lost` and submitted
    once more."""
    try:
        import ray as ray_mod
    except ImportError:
        raise RuntimeError("the ray backend needs Ray: pip install 'gangrad[ray]'") from None
    if not ray_mod.is_initialized():
        if address in (None, "local"):
            ray_mod.init(num_cpus=max(workers, 1), include_dashboard=False, log_to_driver=False)
        else:
            ray_mod.init(address=address, log_to_driver=False)
    crashes = tuple(getattr(ray_mod.exceptions, name) for name in
                    ("WorkerCrashedError", "OutOfMemoryError")
                    if hasattr(ray_mod.exceptions, name))
    remote = ray_mod.remote(num_cpus=1)(run_cells)
    refs = {remote.remote([c.config() for c in g], device, 1): (g, 0)
            for g in filter(None, map(admit, groups))}
    try:
        while refs:
            ready, _ = ray_mod.wait(list(refs), num_returns=1)
            for ref in ready:
                group, deaths = refs.pop(ref)
                try:
                    results, crashed = ray_mod.get(ref), False
                except crashes as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    results, crashed = lost(group, f"crashed ({type(exc).__name__}: {first})",
                                            final=deaths > 0), True
                yield group, results, sum(len(g) for g, _ in refs.values())
                again = admit(group) if crashed and not deaths else []  # once stored
                if again:
                    refs[remote.remote([c.config() for c in again], device, 1)] = (again, 1)
    finally:
        for ref in refs:
            ray_mod.cancel(ref, force=True)
