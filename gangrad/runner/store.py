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
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["DEFAULT_STORE", "Store", "default_store_path"]

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
"""


def default_store_path() -> Path:
    return Path(os.environ.get("GANGRAD_STORE", DEFAULT_STORE))


class Store:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

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
                self._db.execute("DELETE FROM metrics WHERE run = ?", (run,))
                self._db.execute("DELETE FROM samples WHERE run = ?", (run,))
                self._db.execute("DELETE FROM cells WHERE run = ?", (run,))
                self._db.execute("DELETE FROM runs WHERE run = ?", (run,))
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

    # -- reading ----------------------------------------------------------------------------
    def finished(self, run: str) -> set[str]:
        rows = self._db.execute("SELECT cell_id FROM cells WHERE run = ?", (run,))
        return {r[0] for r in rows}

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
            raise KeyError(f"no run {run!r} in {self.path}; runs: {known}")
        return dict(zip([d[0] for d in cur.description], row, strict=True))
