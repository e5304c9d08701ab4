"""The results store: one SQLite file, written only by the driver process.

Tables (tidy, long format):

- ``runs``: one row per run (a suite executed into this store): name, suite text,
  creation time, versions, device, git commit.
- ``cells``: one row per *finished* cell: identity (a hash of its config), task,
  estimator, seed, config (JSON), status (``ok``, ``diverged``, ``failed``), the step it
  diverged at, its traceback, wall time, device.
- ``metrics``: ``(run, cell_id, kind, step, layer, name, value)``; ``kind`` is ``train``
  (the training history) or ``grad`` (gradient statistics, per layer), ``name`` the metric.
- ``samples``: the last evaluation's generated samples of each cell (256; symbols for
  discrete spaces), for the report's pictures.

A cell and all its metrics are written in one transaction, so a store never holds part
of a cell: killed at any moment, a re-run loses only the cells that were running.

Faults get one sentence each (:class:`StoreError`), never raw SQL: a file that is not a
store, a store the process may not read or write (a permission problem, said as such), a
damaged store (SQLite's ``quick_check`` on opening, for stores up to
:data:`QUICK_CHECK_BYTES`, and on any read that fails: what is damaged, what can still be
read), and a write that fails mid-run (:class:`StoreWriteError`:
the disk is full or a file-size limit is reached; what the store holds and how to resume).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from gangrad._registry import UnknownKeyError

__all__ = ["DEFAULT_STORE", "MAX_RUN_NAME", "QUICK_CHECK_BYTES", "Store", "StoreError",
           "StoreWriteError", "check_run_name", "default_store_path"]

DEFAULT_STORE = "runs/gangrad.sqlite"
#: the longest run name: it becomes a folder (``reports/RUN/``) and a file name
#: (``runs/RUN.parquet``), and file systems allow 255 bytes
MAX_RUN_NAME = 100
#: stores up to this size are checked with SQLite's ``quick_check`` when opened (about
#: 5 ms per MB); larger ones when a read fails
QUICK_CHECK_BYTES = 256 * 2**20

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY, suite TEXT, suite_text TEXT, created REAL, expected_cells INTEGER,
    gangrad TEXT, torch TEXT, device TEXT, git_commit TEXT
);
CREATE TABLE IF NOT EXISTS cells (
    run TEXT, cell_id TEXT, task TEXT, estimator TEXT, label TEXT, seed INTEGER,
    config TEXT, status TEXT, diverged_at INTEGER, error TEXT, wall_s REAL, finished REAL,
    device TEXT, torch TEXT, gangrad TEXT, threads INTEGER,
    PRIMARY KEY (run, cell_id)
);
CREATE TABLE IF NOT EXISTS metrics (
    run TEXT, cell_id TEXT, kind TEXT, step INTEGER, layer TEXT, name TEXT, value REAL
);
CREATE INDEX IF NOT EXISTS metrics_cell ON metrics (run, cell_id);
CREATE TABLE IF NOT EXISTS samples (
    run TEXT, cell_id TEXT, step INTEGER, kind TEXT, shape TEXT, dtype TEXT, data BLOB,
    PRIMARY KEY (run, cell_id)
);
CREATE TABLE IF NOT EXISTS claims (
    run TEXT, cell_id TEXT, host TEXT, pid INTEGER, claimed REAL,
    PRIMARY KEY (run, cell_id)
);
"""
TABLES = ("runs", "cells", "metrics", "samples")
CELL_COLUMNS = ("run", "cell_id", "task", "estimator", "label", "seed", "config", "status",
                "diverged_at", "error", "wall_s", "finished", "device", "torch", "gangrad",
                "threads")
#: columns added after a store's first release: (table, column, type); a store written
#: before them gains them on opening, empty for the cells it already holds
_ADDED_COLUMNS = (("cells", "threads", "INTEGER"),)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    for table, column, kind in _ADDED_COLUMNS:
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class StoreError(ValueError):
    """A store that cannot be opened, read or written as asked; the message says why."""


class StoreWriteError(StoreError):
    """A write that failed after work began (the disk is full, a file-size limit, an I/O
    error): the message says what the store holds and how to resume."""


def check_run_name(run: str) -> str:
    """``run``, or ``ValueError``: run names become folder and file names, so they are
    letters, digits, ``.``, ``_`` and ``-``, at most :data:`MAX_RUN_NAME` characters."""
    if not isinstance(run, str) or not RUN_NAME.fullmatch(run):
        raise ValueError(f"run names are letters, digits, '.', '_' or '-' (not starting with "
                         f"'.' or '-'), got {run!r}")
    if len(run) > MAX_RUN_NAME:
        raise ValueError(f"run names are at most {MAX_RUN_NAME} characters (they become file "
                         f"names), got one of {len(run)}: {run[:40]}…")
    return run


def _names(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else items[0]


def _existing_folder(path: Path) -> Path:
    """The nearest folder above ``path`` that exists."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _file_size_limit() -> int | None:
    """This process's file-size limit in bytes (``ulimit -f``), None when unlimited."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        pass
    return True


def default_store_path() -> Path:
    return Path(os.environ.get("GANGRAD_STORE", DEFAULT_STORE))


class Store:
    """The results store at ``path``. ``readonly=True`` (every read command) never writes:
    it refuses a missing store by name instead of creating one, and reads a store it may
    not write. A file that is not a gangrad store, a store the process may not open, and a
    damaged store each get one clear sentence (:class:`StoreError`); a damaged store is
    refused for writing, and opened for reading only to list its runs (:attr:`damage`)."""

    def __init__(self, path: str | Path | None = None, *, readonly: bool = False) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.readonly = readonly
        self.damage: str | None = None  # what quick_check found, in one sentence
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a results store file")
        try:
            self._db = self._open_readonly() if readonly else self._open_writable()
            names = {r[0] for r in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(self._unopenable(exc)) from None
        if not set(TABLES) <= names:
            self._db.close()
            raise StoreError(f"{self.path} is an SQLite file but not a gangrad results store "
                             f"(it lacks the tables {', '.join(sorted(set(TABLES) - names))})")
        if self.path.stat().st_size <= QUICK_CHECK_BYTES:
            self.damage = self.diagnose()
        if self.damage and not readonly:
            self._db.close()
            raise StoreError(f"{self.damage}; nothing is written into a damaged store")

    def _unopenable(self, exc: sqlite3.DatabaseError) -> str:
        """Why the store could not be opened, in one sentence."""
        name = getattr(exc, "sqlite_errorname", "")
        if name == "SQLITE_NOTADB" or "not a database" in str(exc):
            return f"{self.path} is not a gangrad results store ({exc})"
        if name == "SQLITE_CORRUPT" or "malformed" in str(exc):
            # diagnose through a connection that cannot write
            self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?immutable=1", uri=True)
            try:
                return self.diagnose() or f"the results store {self.path} is damaged ({exc})"
            finally:
                self._db.close()
        return self._access_problem(exc, write=not self.readonly)

    def _access_problem(self, exc: Exception, write: bool) -> str:
        """One sentence on a store that cannot be opened as asked: a permission problem
        where the file or its folder forbids it, else SQLite's reason."""
        path, folder = self.path, _existing_folder(self.path)
        can = os.access
        readers = "runs, report and export can still read it"
        if path.exists() and not can(path, os.R_OK):
            return f"permission denied: cannot read the results store {path} (its file "\
                   "permissions do not allow you to read it)"
        if write and not path.exists() and not can(folder, os.W_OK | os.X_OK):
            return (f"permission denied: cannot create the results store {path}, the folder "
                    f"{folder} is not writable; name a store in a folder you may write "
                    "(--store, or $GANGRAD_STORE)")
        if write and not can(path, os.W_OK):
            return (f"permission denied: cannot write the results store {path} (the file "
                    f"is read-only); {readers}")
        if write and not can(folder, os.W_OK | os.X_OK):
            return (f"permission denied: cannot write the results store {path}, its folder "
                    f"{folder} is not writable (SQLite keeps its journal beside the store); "
                    f"{readers}")
        if write:
            return f"cannot write the results store {path} ({exc}); {readers}"
        return f"cannot read the results store {path} ({exc})"

    def _open_writable(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = "permission denied: " if isinstance(exc, PermissionError) else ""
            raise StoreError(f"{why}cannot create the folder of the results store "
                             f"{self.path}: {exc.strerror}") from None
        deadline = time.monotonic() + 60
        while True:
            try:
                db = sqlite3.connect(self.path, timeout=60)
            except sqlite3.OperationalError as exc:
                raise StoreError(self._access_problem(exc, write=True)) from None
            try:
                names = {r[0] for r in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                if names and not set(TABLES) <= names:  # someone else's database: untouched
                    db.close()
                    raise StoreError(
                        f"{self.path} is an SQLite file but not a gangrad results store (its "
                        f"tables are {_names(sorted(names))}); name another file with --store")
                db.execute("PRAGMA journal_mode=WAL")
                with db:
                    db.executescript(SCHEMA)
                    _add_missing_columns(db)
                    db.execute("DELETE FROM claims WHERE 0")  # a write: refused if read-only
                return db
            except sqlite3.OperationalError as exc:
                db.close()
                if "not a database" in str(exc):
                    raise
                # two processes opening a new store at once: switching it to WAL does not
                # wait for the other's lock, so try again for as long as a write would wait
                if "locked" in str(exc) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                if "disk" in str(exc) or "full" in str(exc):
                    cause, todo = self._write_cause(exc)
                    raise StoreError(f"cannot write the results store {self.path}: {cause}; "
                                     f"{todo} and run the same command again") from None
                raise StoreError(self._access_problem(exc, write=True)) from None

    def _open_readonly(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise StoreError(f"no results store at {self.path}; run a suite first "
                             "(gangrad run quick) or name the store with --store")
        if not os.access(self.path, os.R_OK):
            raise StoreError(self._access_problem(PermissionError(), write=False))
        uri = self.path.resolve().as_uri()
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60)
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:
            # a store in a folder we may not write: WAL's index cannot be created there, so
            # read it as it stands (nobody can be writing it from here)
            return sqlite3.connect(f"{uri}?immutable=1", uri=True)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- integrity ----------------------------------------------------------------------------
    def diagnose(self) -> str | None:
        """None when SQLite's ``quick_check`` finds the store sound; otherwise one sentence:
        what is damaged, which tables can still be read, and what to do."""
        try:
            problems = [r[0] for r in self._db.execute("PRAGMA quick_check(10)")]
        except sqlite3.DatabaseError as exc:
            problems = [str(exc)]
        if problems == ["ok"]:
            return None
        readable, damaged = [], []
        for table in TABLES:
            try:
                cur = self._db.execute(f"SELECT * FROM {table}")
                while cur.fetchmany(10_000):
                    pass
                readable.append(table)
            except sqlite3.DatabaseError:
                damaged.append(table)
        first = problems[0] + (f", and {len(problems) - 1} more problems"
                               if len(problems) > 1 else "")
        if damaged:
            what = (f"its {_names(damaged)} table{'s' if len(damaged) > 1 else ''} cannot be "
                    "read" + (f", its {_names(readable)} can" if readable else
                              ", nor can any other"))
        else:
            what = "every table still reads, but its indexes or free pages are damaged"
        return (f"the results store {self.path} is damaged (SQLite's quick_check: {first}): "
                f"{what} (with the sqlite3 shell); run the suite into a new store "
                "(--store NEW.sqlite) to compute again what is lost")

    @contextlib.contextmanager
    def _reading(self, damaged: bool = False) -> Iterator[None]:
        """A read: refused on a store found damaged (unless ``damaged``); a read that
        fails says why."""
        if self.damage and not damaged:
            raise StoreError(self.damage)
        try:
            yield
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
            self.damage = self.diagnose()
            raise StoreError(self.damage or f"cannot read the results store {self.path} "
                             f"({exc})") from None

    def _write_cause(self, exc: sqlite3.Error) -> tuple[str, str]:
        """Why a write failed (a file-size limit, a full disk, a lock held too long, or
        SQLite's words), and what to do before running the same command again."""
        if "locked" in str(exc):
            return ("another process held the store locked for a minute",
                    "run the same command again once it is done")
        limit = _file_size_limit()
        sizes = [Path(f"{self.path}{suffix}") for suffix in ("", "-wal", "-journal")]
        largest = max((f.stat().st_size for f in sizes if f.exists()), default=0)
        if limit is not None and largest + 2**16 >= limit:
            return (f"a file would pass this process's file-size limit of {limit} bytes "
                    "(ulimit -f)", "raise the limit")
        free = shutil.disk_usage(_existing_folder(self.path)).free
        if free < 2**20:
            return f"the disk is full ({free / 2**10:.0f} KiB free)", "free some space"
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL":
            return (f"the disk is full, or a quota or page limit is reached (SQLite: {exc}; "
                    f"{free / 2**20:.0f} MiB free on that disk)", "free some space")
        return f"a write failed (SQLite: {exc})", "check the disk"

    @contextlib.contextmanager
    def _writing(self, run: str) -> Iterator[None]:
        """A write of ``run``: one that fails says why, what is stored and how to resume
        (:class:`StoreWriteError`); the transaction is rolled back, so nothing is partial."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            cause, todo = self._write_cause(exc)
            try:
                held = self._db.execute("SELECT COUNT(*) FROM cells WHERE run = ?",
                                        (run,)).fetchone()[0]
                stored = (f"the store is intact and holds {held} finished cells of run "
                          f"{run!r}, each whole")
            except sqlite3.DatabaseError:
                stored = "every cell stored before is whole (one transaction per cell)"
            raise StoreWriteError(f"cannot write the results store {self.path}: {cause}; "
                                  f"{stored}; {todo} and run the same command to resume"
                                  ) from None

    # -- writing ----------------------------------------------------------------------------
    def start_run(self, run: str, suite: str, suite_text: str, expected: int,
                  meta: dict[str, str], fresh: bool = False) -> None:
        with self._writing(run), self._db:
            if fresh:
                for table in (*TABLES, "claims"):
                    self._db.execute(f"DELETE FROM {table} WHERE run = ?", (run,))
            self._db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(run) DO UPDATE "
                "SET suite_text = excluded.suite_text, expected_cells = excluded.expected_cells",
                (run, suite, suite_text, time.time(), expected, meta.get("gangrad"),
                 meta.get("torch"), meta.get("device"), meta.get("git_commit")))

    def add_cell(self, run: str, cell_id: str, cell: dict[str, Any], result: dict[str, Any],
                 metrics: Iterable[tuple[str, int, str, str, float]]) -> None:
        """One finished cell and all its metrics, in one transaction."""
        with self._writing(run), self._db:
            self._db.execute(
                f"INSERT OR REPLACE INTO cells ({', '.join(CELL_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(CELL_COLUMNS))})",
                (run, cell_id, cell["task"], cell["estimator"], result.get("label"),
                 cell["seed"], json.dumps(cell, sort_keys=True), result["status"],
                 result.get("diverged_at"), result.get("error"), result.get("wall_s"),
                 time.time(), result.get("device"), result.get("torch"),
                 result.get("gangrad"), result.get("threads")))
            self._db.execute("DELETE FROM metrics WHERE run = ? AND cell_id = ?", (run, cell_id))
            blob = result.get("samples")
            if blob is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run, cell_id, blob["step"], blob["kind"], json.dumps(blob["shape"]),
                     blob["dtype"], blob["data"]))
            self._db.executemany(
                "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((run, cell_id, kind, step, layer, name,
                  None if value is None or (isinstance(value, float) and math.isnan(value))
                  else float(value))
                 for kind, step, layer, name, value in metrics))

    def claim(self, run: str, cell_ids: list[str]) -> list[str]:
        """Claim cells for this process before computing them; returns those it got. A
        cell claimed by another live process on this host, or on another host, is left to
        it; a claim whose process is gone (killed) is taken over; a finished cell is not
        claimed."""
        host, pid, got = platform.node(), os.getpid(), []
        with self._writing(run), self._db:
            self._db.execute("BEGIN IMMEDIATE")
            done = self.finished(run)
            for cell_id in cell_ids:
                if cell_id in done:
                    continue
                row = self._db.execute("SELECT host, pid FROM claims WHERE run = ? AND "
                                       "cell_id = ?", (run, cell_id)).fetchone()
                if row is not None and (row[0], row[1]) != (host, pid) and (
                        row[0] != host or _alive(row[1])):
                    continue
                self._db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
                                 (run, cell_id, host, pid, time.time()))
                got.append(cell_id)
        return got

    def release(self, run: str, cell_ids: list[str] | None = None) -> None:
        """Drop this process's claims on ``cell_ids`` (all of them when None)."""
        host, pid = platform.node(), os.getpid()
        with self._writing(run), self._db:
            if cell_ids is None:
                self._db.execute("DELETE FROM claims WHERE run = ? AND host = ? AND pid = ?",
                                 (run, host, pid))
            else:
                self._db.executemany(
                    "DELETE FROM claims WHERE run = ? AND cell_id = ? AND host = ? AND pid = ?",
                    [(run, c, host, pid) for c in cell_ids])

    # -- reading ----------------------------------------------------------------------------
    def finished(self, run: str, retry_failed: bool = True) -> set[str]:
        """Cells that need no computing: ok and diverged ones (a divergence is a result),
        and failed ones too unless ``retry_failed``."""
        statuses = ("ok", "diverged") if retry_failed else ("ok", "diverged", "failed")
        with self._reading():
            rows = self._db.execute(
                f"SELECT cell_id FROM cells WHERE run = ? AND status IN "
                f"({', '.join('?' * len(statuses))})", (run, *statuses))
            return {r[0] for r in rows}

    def cell_ids(self, run: str) -> set[str]:
        """Every stored cell of ``run``, whatever its status."""
        with self._reading():
            return {r[0] for r in self._db.execute("SELECT cell_id FROM cells WHERE run = ?",
                                                    (run,))}

    def runs(self) -> pd.DataFrame:
        """One row per run with its counts; read from a damaged store too, where its
        tables read (the caller says it is damaged: :attr:`damage`)."""
        query = """
            SELECT r.run, r.suite, datetime(r.created, 'unixepoch') AS created,
                   r.expected_cells AS expected,
                   SUM(c.status = 'ok') AS ok, SUM(c.status = 'diverged') AS diverged,
                   SUM(c.status = 'failed') AS failed, ROUND(SUM(c.wall_s), 1) AS cell_s,
                   r.device, r.gangrad, r.torch
            FROM runs r LEFT JOIN cells c ON c.run = r.run
            GROUP BY r.run ORDER BY r.created"""
        with self._reading(damaged=True):
            df = pd.read_sql_query(query, self._db)
        for col in ("ok", "diverged", "failed"):
            df[col] = df[col].fillna(0).astype(int)
        return df

    def cells(self, run: str) -> pd.DataFrame:
        with self._reading():
            return pd.read_sql_query("SELECT * FROM cells WHERE run = ? ORDER BY finished",
                                     self._db, params=(run,))

    def metrics(self, run: str) -> pd.DataFrame:
        """Tidy metrics joined with each cell's identity (task, estimator, label, seed)."""
        query = """
            SELECT m.run, m.cell_id, c.task, c.estimator, c.label, c.seed, c.status,
                   c.device, m.kind, m.step, m.layer, m.name, m.value
            FROM metrics m JOIN cells c ON c.run = m.run AND c.cell_id = m.cell_id
            WHERE m.run = ? ORDER BY c.task, c.label, m.kind, m.step, m.layer, m.name"""
        with self._reading():
            return pd.read_sql_query(query, self._db, params=(run,))

    def samples(self, run: str) -> dict[str, dict[str, Any]]:
        """``cell_id -> {step, kind, shape, dtype, data}`` for the run's stored samples."""
        with self._reading():
            rows = self._db.execute("SELECT cell_id, step, kind, shape, dtype, data FROM "
                                    "samples WHERE run = ?", (run,)).fetchall()
        return {cid: {"step": step, "kind": kind, "shape": json.loads(shape), "dtype": dtype,
                      "data": data} for cid, step, kind, shape, dtype, data in rows}

    def run_info(self, run: str) -> dict[str, Any]:
        with self._reading():
            cur = self._db.execute("SELECT * FROM runs WHERE run = ?", (run,))
            row = cur.fetchone()
        if row is None:
            known = ", ".join(self.runs()["run"]) or "none"
            raise UnknownKeyError(f"no run {run!r} in {self.path}; runs: {known}")
        return dict(zip([d[0] for d in cur.description], row, strict=True))
