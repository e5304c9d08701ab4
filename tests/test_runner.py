"""Suites, the results store and the sweep runner: validation, resume, failures, kill."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

import gangrad
from gangrad import cli, estimators
from gangrad.runner import TIMING_METRICS, SuiteError, load_suite, run_suite

ROOT = Path(__file__).resolve().parents[1]

MINI = """
name = "mini"
seeds = [0, 1]
[train]
eval_samples = 200
[grad_stats]
at_steps = [0, "end"]
replicates = 8
batch_size = 8
bootstrap = 20
timing_repeats = 2
reference_replicates = 16
[[tasks]]
key = "categorical"
train = { steps = 6, eval_every = 3 }
estimators = ["pathwise", { key = "score_function", baseline = "mean" }]
[[tasks]]
key = "gaussian1d"
train = { steps = 6, eval_every = 3 }
estimators = [{ key = "smoothing", sigma = [0.1, 0.5] }]
"""


@pytest.fixture
def mini(tmp_path) -> Path:
    path = tmp_path / "mini.toml"
    path.write_text(MINI)
    return path


def test_builtin_suites_validate_and_cover_the_families():
    quick = load_suite("quick")
    tasks = {c.task for c in quick.cells}
    assert {"gaussian1d", "ring8", "categorical", "binary_digits"} <= tasks
    keys = {c.estimator for c in quick.cells}
    assert {"pathwise", "smoothing", "reparam", "score_function", "straight_through",
            "gumbel_softmax", "st_gumbel"} <= keys
    assert len({c.seed for c in quick.cells}) >= 3
    assert all(len(c.grad_stats["at_steps"]) >= 2 for c in quick.cells)
    full = load_suite("full")
    assert len({c.seed for c in full.cells}) >= 5 and len(full.cells) > len(quick.cells)


def test_grid_expands_and_ids_are_stable(mini):
    suite = load_suite(mini)
    assert len(suite.cells) == 2 * 2 + 2 * 2
    sigmas = sorted(c.estimator_params.get("sigma", 0) for c in suite.cells)
    assert sigmas[-4:] == [0.1, 0.1, 0.5, 0.5]
    assert [c.cell_id for c in suite.cells] == [c.cell_id for c in load_suite(mini).cells]
    assert suite.cells[0].grad_stats["at_steps"] == [0, 6]


def test_every_problem_reported_at_once_with_lines(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(textwrap.dedent("""\
        seeds = [0, 0]
        colour = "blue"
        [train]
        stepz = 3
        [[tasks]]
        key = "categorical"
        estimators = ["pathwise", "smoothing", "reinforce",
                      { key = "gumbel_softmax", temperature = -1 }]
        [[tasks]]
        key = "ring9"
        estimators = ["pathwise"]
        """))
    with pytest.raises(SuiteError) as info:
        load_suite(bad)
    text = str(info.value)
    for needle in ["bad.toml:1: seeds repeat", "bad.toml:2: unknown key 'colour'",
                   "bad.toml:4: unknown training setting 'stepz'",
                   "bad.toml:7: estimator 'smoothing' does not support task 'categorical'",
                   "bad.toml:8: gumbel_softmax: temperature",
                   "unknown estimator 'reinforce'", "temperature must be in (0, inf)",
                   "bad.toml:10: unknown task 'ring9'"]:
        assert needle in text, text
    assert len(info.value.problems) == 7


def test_run_resume_and_fresh(mini, tmp_path):
    store = tmp_path / "s.sqlite"
    first = run_suite(mini, store=store, progress=False)
    assert (first.ok, first.failed, first.skipped) == (8, 0, 0)
    again = run_suite(mini, store=store, progress=False)
    assert (again.ok, again.skipped) == (0, 8)
    df = gangrad.load("mini", store)
    assert set(df["kind"]) == {"train", "grad"}
    assert df.groupby("cell_id").size().min() > 10
    assert {"bias", "variance", "cosine", "time_ms"} <= set(df[df.kind == "grad"]["name"])
    fresh = run_suite(mini, store=store, fresh=True, progress=False)
    assert fresh.ok == 8
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 8


def test_same_suite_same_numbers(mini, tmp_path):
    for name in ("a", "b"):
        run_suite(mini, store=tmp_path / f"{name}.sqlite", progress=False)

    def numbers(name):
        df = gangrad.load("mini", tmp_path / f"{name}.sqlite")
        df = df[~df["name"].isin(TIMING_METRICS)]
        return df.sort_values(["cell_id", "kind", "step", "layer", "name"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(numbers("a"), numbers("b"))


class _Exploding(estimators.Pathwise):
    """A loss that is NaN from the first step."""

    key = "exploding"

    def _surrogate(self, params, f, noise, space):
        return f(params) * float("nan")


def test_diverged_cells_are_stored_with_their_step(tmp_path):
    estimators.register("exploding", _Exploding)
    try:
        path = tmp_path / "d.toml"
        path.write_text(MINI.replace('estimators = ["pathwise", { key = "score_function", '
                                     'baseline = "mean" }]', 'estimators = ["exploding"]'))
        summary = run_suite(path, store=tmp_path / "d.sqlite", progress=False)
    finally:
        estimators.REGISTRY._registered.pop("exploding")
    assert (summary.diverged, summary.ok, summary.failed) == (2, 4, 0)
    rows = sqlite3.connect(tmp_path / "d.sqlite").execute(
        "SELECT status, diverged_at FROM cells WHERE estimator = 'exploding'").fetchall()
    assert rows == [("diverged", 1), ("diverged", 1)]
    assert "2 diverged" in str(summary)


def test_a_raising_cell_is_failed_with_traceback(tmp_path, monkeypatch):
    import gangrad.runner as runner

    def boom(cells, device=None, threads=None):
        from gangrad.runner.cell import run_cells as real

        if cells[0]["estimator"] == "pathwise":
            cells = [{**cell, "task_params": {"classes": -3}} for cell in cells]
        return real(cells, device, threads)

    monkeypatch.setattr(runner, "run_cells", boom)
    path = tmp_path / "m.toml"
    path.write_text(MINI)
    summary = run_suite(path, store=tmp_path / "m.sqlite", progress=False)
    assert summary.failed == 2 and summary.ok == 6
    err = sqlite3.connect(tmp_path / "m.sqlite").execute(
        "SELECT error FROM cells WHERE status = 'failed'").fetchone()[0]
    assert "Traceback" in err and "classes" in err


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_sigkill_then_resume_loses_only_running_cells(mini, tmp_path):
    store = tmp_path / "k.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "gangrad.cli", "run", str(mini), "--store", str(store), "-q"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if store.exists():
            try:
                with sqlite3.connect(store) as db:
                    done = db.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
            if done >= 2:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    children = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30  # the orphaned workers notice and exit
    while time.time() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in children), "worker processes outlived the driver"
    with sqlite3.connect(store) as db:
        stored = db.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        orphans = db.execute("SELECT COUNT(*) FROM metrics WHERE cell_id NOT IN "
                             "(SELECT cell_id FROM cells)").fetchone()[0]
    assert 2 <= stored < 8 and orphans == 0
    summary = run_suite(mini, store=store, progress=False)
    assert summary.skipped == stored and summary.ok == 8 - stored
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 8
        assert db.execute("SELECT COUNT(DISTINCT cell_id) FROM cells").fetchone()[0] == 8
        per_cell = db.execute("SELECT COUNT(*) FROM metrics GROUP BY cell_id").fetchall()
    assert len(per_cell) == 8 and len({n for (n,) in per_cell}) <= 2  # two task shapes


def test_cli_run_runs_export(mini, tmp_path, capsys):
    store = str(tmp_path / "c.sqlite")
    assert cli.main(["run", str(mini), "--store", store, "-q", "--workers", "2"]) == 0
    assert "8 ok" in capsys.readouterr().out
    assert cli.main(["runs", "--store", store]) == 0
    assert "mini" in capsys.readouterr().out
    out = tmp_path / "mini.csv"
    assert cli.main(["export", "mini", "--store", store, "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) > 0
    assert cli.main(["export", "nope", "--store", store]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_ray_backend(mini, tmp_path):
    ray = pytest.importorskip("ray")
    try:
        summary = run_suite(mini, store=tmp_path / "r.sqlite", backend="ray", workers=2,
                            progress=False)
    finally:
        ray.shutdown()
    assert summary.ok == 8
    assert len(gangrad.load("mini", tmp_path / "r.sqlite")) > 0


def test_batched_seeds_store_what_cells_alone_store(mini, tmp_path):
    a = run_suite(mini, store=tmp_path / "a.sqlite", progress=False)
    b = run_suite(mini, store=tmp_path / "b.sqlite", progress=False, batch_seeds=False)
    assert a.ok == b.ok == 8
    keys = ["cell_id", "kind", "step", "layer", "name"]
    ma, mb = (gangrad.load("mini", store=tmp_path / f"{x}.sqlite") for x in "ab")
    ma, mb = (m[~m["name"].isin(TIMING_METRICS)].sort_values(keys).reset_index(drop=True)
              for m in (ma, mb))
    assert len(ma) == len(mb) > 0
    assert ma[keys].equals(mb[keys])
    assert ma["value"].equals(mb["value"])  # bit for bit, NaN where both are NaN
