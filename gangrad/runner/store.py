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
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from gangrad._registry import UnknownKeyError

__all__ = ["DEFAULT_STORE", "Store", "StoreError", "check_run_name", "default_store_path"]

DEFAULT_STORE = "runs/gangrad.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY, suite TEXT, suite_text TEXT, created REAL, expected_cells INTEGER,
    gangrad TEXT, torch TEXT, device TEXT, git_commit TEXT
);
CREATE TABLE IF NOT EXISTS cells (
    run TEXT, cell_id TEXT, task TEXT, estimator TEXT, label TEXT, seed INTEGER,
    config TEXT, status TEXT, diverged_at INTEGER, error TEXT, wall_s REAL, finished REAL,
    device TEXT, torch TEXT, gangrad TEXT,
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
RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class StoreError(ValueError):
    """A store that cannot be opened, read or written as asked; the message says why."""


def check_run_name(run: str) -> str:
    """``run``, or ``ValueError``: run names become folder and file names."""
    if not isinstance(run, str) or not RUN_NAME.fullmatch(run):
        raise ValueError(f"run names are letters, digits, '.', '_' or '-' (not starting with "
                         f"'.' or '-'), got {run!r}")
    return run


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
    not write. A file that is not a gangrad store gets one clear sentence
    (:class:`StoreError`)."""

    def __init__(self, path: str | Path | None = None, *, readonly: bool = False) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.readonly = readonly
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a results store file")
        try:
            self._db = self._open_readonly() if readonly else self._open_writable()
            names = {r[0] for r in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a gangrad results store ({exc})") from None
        if not set(TABLES) <= names:
            self._db.close()
            raise StoreError(f"{self.path} is an SQLite file but not a gangrad results store "
                             f"(it lacks the tables {', '.join(sorted(set(TABLES) - names))})")

    def _open_writable(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of the results store {self.path}: "
                             f"{exc.strerror}") from None
        deadline = time.monotonic() + 60
        while True:
            db = sqlite3.connect(self.path, timeout=60)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                with db:
                    db.executescript(SCHEMA)
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
                raise StoreError(f"cannot write the results store {self.path} ({exc}); a "
                                 "read-only store can still be read by runs, report and "
                                 "export") from None

    def _open_readonly(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise StoreError(f"no results store at {self.path}; run a suite first "
                             "(gangrad run quick) or name the store with --store")
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

    # -- writing ----------------------------------------------------------------------------
    def start_run(self, run: str, suite: str, suite_text: str, expected: int,
                  meta: dict[str, str], fresh: bool = False) -> None:
        with self._db:
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
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run, cell_id, cell["task"], cell["estimator"], result.get("label"),
                 cell["seed"], json.dumps(cell, sort_keys=True), result["status"],
                 result.get("diverged_at"), result.get("error"), result.get("wall_s"),
                 time.time(), result.get("device"), result.get("torch"),
                 result.get("gangrad")))
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
        with self._db:
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
        with self._db:
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
        rows = self._db.execute(
            f"SELECT cell_id FROM cells WHERE run = ? AND status IN "
            f"({', '.join('?' * len(statuses))})", (run, *statuses))
        return {r[0] for r in rows}

    def cell_ids(self, run: str) -> set[str]:
        """Every stored cell of ``run``, whatever its status."""
        return {r[0] for r in self._db.execute("SELECT cell_id FROM cells WHERE run = ?",
                                                (run,))}

    def runs(self) -> pd.DataFrame:
        query = """
            SELECT r.run, r.suite, datetime(r.created, 'unixepoch') AS created,
                   r.expected_cells AS expected,
                   SUM(c.status = 'ok') AS ok, SUM(c.status = 'diverged') AS diverged,
                   SUM(c.status = 'failed') AS failed, ROUND(SUM(c.wall_s), 1) AS cell_s,
                   r.device, r.gangrad, r.torch
            FROM runs r LEFT JOIN cells c ON c.run = r.run
            GROUP BY r.run ORDER BY r.created"""
        df = pd.read_sql_query(query, self._db)
        for col in ("ok", "diverged", "failed"):
            df[col] = df[col].fillna(0).astype(int)
        return df

    def cells(self, run: str) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM cells WHERE run = ? ORDER BY finished",
                                 self._db, params=(run,))

    def metrics(self, run: str) -> pd.DataFrame:
        """Tidy metrics joined with each cell's identity (task, estimator, label, seed)."""
        query = """
            SELECT m.run, m.cell_id, c.task, c.estimator, c.label, c.seed, c.status,
                   c.device, m.kind, m.step, m.layer, m.name, m.value
            FROM metrics m JOIN cells c ON c.run = m.run AND c.cell_id = m.cell_id
            WHERE m.run = ? ORDER BY c.task, c.label, m.kind, m.step, m.layer, m.name"""
        return pd.read_sql_query(query, self._db, params=(run,))

    def samples(self, run: str) -> dict[str, dict[str, Any]]:
        """``cell_id -> {step, kind, shape, dtype, data}`` for the run's stored samples."""
        rows = self._db.execute("SELECT cell_id, step, kind, shape, dtype, data FROM samples "
                                "WHERE run = ?", (run,))
        return {cid: {"step": step, "kind": kind, "shape": json.loads(shape), "dtype": dtype,
                      "data": data} for cid, step, kind, shape, dtype, data in rows}

    def run_info(self, run: str) -> dict[str, Any]:
        cur = self._db.execute("SELECT * FROM runs WHERE run = ?", (run,))
        row = cur.fetchone()
        if row is None:
            known = ", ".join(self.runs()["run"]) or "none"
            raise UnknownKeyError(f"no run {run!r} in {self.path}; runs: {known}")
        return dict(zip([d[0] for d in cur.description], row, strict=True))
