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
from conftest import TINY

import gangrad
from gangrad import cli, estimators
from gangrad.measure import GradStatsConfig
from gangrad.runner import TIMING_METRICS, SuiteError, load_suite, run_suite

ROOT = Path(__file__).resolve().parents[1]

def test_builtin_suites_validate_and_cover_the_families():
    quick = load_suite("quick")
    tasks = {c.task for c in quick.cells}
    assert {"gaussian1d", "ring8", "categorical", "binary_digits"} <= tasks
    keys = {c.estimator for c in quick.cells}
    assert {"pathwise", "smoothing", "reparam", "score_function", "straight_through",
            "gumbel_softmax", "st_gumbel"} <= keys
    assert len({c.seed for c in quick.cells}) >= 3
    assert all(len(c.grad_stats["at_steps"]) >= 2 for c in quick.cells)
    for c in quick.cells:  # every cell read at T/2 and T: the convergence check
        steps, every = c.train["steps"], c.train["eval_every"]
        assert steps % 2 == 0 and (steps // 2) % every == 0, c.task
    # a logistic D on x alone cannot see gaussian1d's scale (every run ends near a point mass)
    assert all(c.task_params.get("features") in ("quadratic", "mlp")
               for c in quick.cells if c.task == "gaussian1d")
    full = load_suite("full")
    assert len({c.seed for c in full.cells}) >= 5 and len(full.cells) > len(quick.cells)



@pytest.mark.parametrize("name", ["frontier", "frontier-seq"])
def test_frontier_suites_hold_the_gan_estimators_and_read_every_cell_at_half_budget(name):
    suite = load_suite(name)
    by_task: dict[str, set[tuple[str, str, str]]] = {}
    for c in suite.cells:
        by_task.setdefault(c.task, set()).add((c.estimator,
                                               str(c.estimator_params.get("baseline")),
                                               ",".join(sorted(c.anneal))))
        steps, every = c.train["steps"], c.train["eval_every"]
        assert steps % 2 == 0 and (steps // 2) % every == 0, "an evaluation at T/2"
    wanted = {("maligan", "None", ""), ("bgan", "None", ""),
              ("score_function", "group_mean", ""), ("score_function", "group_norm", ""),
              ("gumbel_softmax", "None", "temperature")}
    tasks = ({"categorical", "binary_digits"} if name == "frontier" else {"oracle_seq"})
    assert set(by_task) == tasks
    for task in tasks:
        assert wanted <= by_task[task], task
    rollouts = any(e == "seqgan_rollout" for t in by_task.values() for e, _, _ in t)
    assert rollouts == (name == "frontier-seq")
    assert len({c.seed for c in suite.cells}) == 8

def test_grid_expands_and_ids_are_stable(tiny):
    suite = load_suite(tiny)
    assert len(suite.cells) == (1 + 2 + 2) * 2 + 2 * 2
    sigmas = sorted(c.estimator_params.get("sigma", 0) for c in suite.cells)
    assert sigmas[-8:] == [0.1] * 4 + [1.0] * 4
    assert [c.cell_id for c in suite.cells] == [c.cell_id for c in load_suite(tiny).cells]
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


def test_run_resume_and_fresh(tiny, tmp_path):
    store = tmp_path / "s.sqlite"
    first = run_suite(tiny, store=store, progress=False)
    assert (first.ok, first.failed, first.skipped) == (14, 0, 0)
    again = run_suite(tiny, store=store, progress=False)
    assert (again.ok, again.skipped) == (0, 14)
    df = gangrad.load("tiny", store)
    assert set(df["kind"]) == {"train", "grad"}
    assert df.groupby("cell_id").size().min() > 10
    assert {"bias", "variance", "cosine", "time_ms"} <= set(df[df.kind == "grad"]["name"])
    fresh = run_suite(tiny, store=store, fresh=True, progress=False)
    assert fresh.ok == 14
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 14
        # each cell records the thread count it ran on: the runner pins one per cell
        assert {r[0] for r in db.execute("SELECT threads FROM cells")} == {1}


def test_a_store_from_before_the_threads_column_gains_it(tiny, tmp_path):
    store = tmp_path / "old.sqlite"
    with sqlite3.connect(store) as db:  # the cells table as first released
        db.executescript(gangrad.runner.store.SCHEMA.replace(" threads INTEGER,", ""))
        db.execute("INSERT INTO cells (run, cell_id, status) VALUES ('old', 'c0', 'ok')")
    assert "threads" not in {r[1] for r in sqlite3.connect(store).execute(
        "PRAGMA table_info(cells)")}
    result = run_suite(tiny, store=store, progress=False)
    assert result.ok == 14
    with sqlite3.connect(store) as db:
        rows = dict(db.execute("SELECT cell_id, threads FROM cells"))
    assert rows.pop("c0") is None and set(rows.values()) == {1}


def test_same_suite_same_numbers(tiny, tmp_path):
    for name in ("a", "b"):
        run_suite(tiny, store=tmp_path / f"{name}.sqlite", progress=False)

    def numbers(name):
        df = gangrad.load("tiny", tmp_path / f"{name}.sqlite")
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
        path.write_text(TINY.replace('estimators = ["straight_through", "st_gumbel"]',
                                     'estimators = ["exploding"]'))
        summary = run_suite(path, store=tmp_path / "d.sqlite", progress=False)
    finally:
        estimators.REGISTRY._registered.pop("exploding")
    assert (summary.diverged, summary.ok, summary.failed) == (2, 10, 0)
    rows = sqlite3.connect(tmp_path / "d.sqlite").execute(
        "SELECT status, diverged_at FROM cells WHERE estimator = 'exploding'").fetchall()
    assert rows == [("diverged", 1), ("diverged", 1)]
    assert "2 diverged" in str(summary)


def test_a_raising_cell_is_failed_with_traceback(tiny, tmp_path, monkeypatch):
    import gangrad.runner.backends as runner

    def boom(cells, device=None, threads=None):
        from gangrad.runner.cell import run_cells as real

        if cells[0]["estimator"] == "pathwise":
            cells = [{**cell, "task_params": {"classes": -3}} for cell in cells]
        return real(cells, device, threads)

    monkeypatch.setattr(runner, "run_cells", boom)
    summary = run_suite(tiny, store=tmp_path / "m.sqlite", progress=False)
    assert summary.failed == 2 and summary.ok == 12
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


def test_sigkill_then_resume_loses_only_running_cells(tiny, tmp_path):
    store = tmp_path / "k.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "gangrad.cli", "run", str(tiny), "--store", str(store), "-q"]
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
    assert 2 <= stored < 14 and orphans == 0
    summary = run_suite(tiny, store=store, progress=False)
    assert summary.skipped == stored and summary.ok == 14 - stored
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 14
        assert db.execute("SELECT COUNT(DISTINCT cell_id) FROM cells").fetchone()[0] == 14
        per_cell = db.execute("SELECT COUNT(*) FROM metrics GROUP BY cell_id").fetchall()
    assert len(per_cell) == 14 and len({n for (n,) in per_cell}) <= 2  # two task shapes


def test_cli_run_runs_export(tiny, tmp_path, capsys):
    store = str(tmp_path / "c.sqlite")
    assert cli.main(["run", str(tiny), "--store", store, "-q", "--workers", "2"]) == 0
    assert "14 ok" in capsys.readouterr().out
    assert cli.main(["runs", "--store", store]) == 0
    assert "tiny" in capsys.readouterr().out
    out = tmp_path / "tiny.csv"
    assert cli.main(["export", "tiny", "--store", store, "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) > 0
    assert cli.main(["export", "nope", "--store", store]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_ray_backend(tiny, tmp_path):
    ray = pytest.importorskip("ray")
    try:
        summary = run_suite(tiny, store=tmp_path / "r.sqlite", backend="ray", workers=2,
                            progress=False)
    finally:
        ray.shutdown()
    assert summary.ok == 14
    assert len(gangrad.load("tiny", tmp_path / "r.sqlite")) > 0


def test_batched_seeds_store_what_cells_alone_store(tiny, tmp_path):
    a = run_suite(tiny, store=tmp_path / "a.sqlite", progress=False)
    b = run_suite(tiny, store=tmp_path / "b.sqlite", progress=False, batch_seeds=False)
    assert a.ok == b.ok == 14
    keys = ["cell_id", "kind", "step", "layer", "name"]
    ma, mb = (gangrad.load("tiny", store=tmp_path / f"{x}.sqlite") for x in "ab")
    ma, mb = (m[~m["name"].isin(TIMING_METRICS)].sort_values(keys).reset_index(drop=True)
              for m in (ma, mb))
    assert len(ma) == len(mb) > 0
    assert ma[keys].equals(mb[keys])
    assert ma["value"].equals(mb["value"])  # bit for bit, NaN where both are NaN


@pytest.mark.parametrize(("setting", "value"), [
    ("replicates", 1), ("batch_size", 0), ("timing_repeats", 0),
    ("reference_replicates", 1), ("loss", "bogus"), ("timing", "yes"), ("fresh_z", 3)])
def test_suite_validation_is_the_engines(tiny, setting, value):
    """A [grad_stats] value the engine refuses is refused by suite validation, with the same
    message and the line it is on, before any work."""
    with pytest.raises(ValueError) as engine:
        GradStatsConfig().updated(**{setting: value}).validated()
    message = engine.value.args[0].removeprefix("gradient_stats: ")
    literal = f'"{value}"' if isinstance(value, str) else str(value).lower()
    text = _with_grad_setting(TINY, setting, literal)
    tiny.write_text(text)
    with pytest.raises(SuiteError) as suite:
        load_suite(tiny)
    line = text.splitlines().index(f"{setting} = {literal}") + 1
    assert f"tiny.toml:{line}: grad_stats.{message}" in str(suite.value)
    assert len(suite.value.problems) == 1, "reported once, not once per task"


def _with_grad_setting(text: str, name: str, literal: str) -> str:
    """``text`` with ``name = literal`` in its [grad_stats] table (replaced or added)."""
    lines = text.splitlines()
    start = lines.index("[grad_stats]")
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("["):
            break
        if lines[i].startswith(f"{name} ="):
            lines[i] = f"{name} = {literal}"
            return "\n".join(lines) + "\n"
    lines.insert(start + 1, f"{name} = {literal}")
    return "\n".join(lines) + "\n"


def test_every_grad_stats_problem_in_one_pass(tiny):
    text = TINY
    for name, literal in (("replicates", "1"), ("loss", '"x"'), ("timing", '"yes"')):
        text = _with_grad_setting(text, name, literal)
    tiny.write_text(text)
    with pytest.raises(SuiteError) as info:
        load_suite(tiny)
    assert len(info.value.problems) == 3


def test_an_empty_grid_axis_is_a_problem(tiny):
    tiny.write_text(TINY.replace("sigma = [0.1, 1.0] }", "sigma = [] }", 1))
    with pytest.raises(SuiteError, match="grid axis 'sigma' is empty"):
        load_suite(tiny)


def test_tidy_metrics_carry_every_hyperparameter(tiny_run):
    _, store = tiny_run
    df = gangrad.load("tiny", store)
    cols = list(df.columns)
    assert cols.index("label") < cols.index("sigma") < cols.index("kind")
    by_estimator = df.drop_duplicates("cell_id").groupby("estimator")
    assert set(by_estimator.get_group("smoothing")["sigma"]) == {0.1, 1.0}
    assert set(by_estimator.get_group("score_function")["baseline"]) == {"mean"}
    default = estimators.create("st_gumbel").temperature  # not set by the suite: its default
    assert set(by_estimator.get_group("st_gumbel")["temperature"]) == {default}
    assert by_estimator.get_group("pathwise")["sigma"].isna().all()


def test_more_seeds_extend_a_run_and_keep_what_is_stored(tiny, tmp_path, capsys):
    """``--seeds N``: the suite's seeds, then the next unused ones; the stored cells are
    kept, only the new seeds' cells run, and the report counts against the N seeds."""
    from gangrad.report import build_report

    suite = load_suite(tiny)
    assert suite.seeds == [0, 1]
    more = suite.with_seeds(4)
    assert more.seeds == [0, 1, 2, 3] and len(more.cells) == 2 * len(suite.cells)
    assert {c.cell_id for c in suite.cells} <= {c.cell_id for c in more.cells}
    assert suite.with_seeds(1).seeds == [0]
    assert load_suite(tiny).with_seeds(4).text == more.text  # the text says which
    odd = tiny.parent / "odd.toml"  # no seeds line: seed 0, then 1, 2
    odd.write_text(tiny.read_text().replace("seeds = [0, 1]\n", ""))
    assert load_suite(odd).with_seeds(3).seeds == [0, 1, 2]
    spaced = tiny.parent / "spaced.toml"
    spaced.write_text(tiny.read_text().replace("seeds = [0, 1]", "seeds = [\n  5,\n  2,\n]"))
    assert load_suite(spaced).with_seeds(3).seeds == [5, 2, 0]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="integer >= 1"):
            suite.with_seeds(bad)

    store = str(tmp_path / "m.sqlite")
    assert cli.main(["run", str(tiny), "--store", store, "-q"]) == 0
    capsys.readouterr()
    assert cli.main(["run", str(tiny), "--store", store, "-q", "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert "21 cells, 3 seeds" in out and "7 ok" in out and "14 already stored" in out
    report = build_report("tiny", store, tmp_path / "reports")
    assert (report.stored, report.expected, report.missing) == (21, 21, [])
    # fewer seeds than stored: the run continues as extended, every cell kept
    assert cli.main(["run", str(tiny), "--store", store, "-q", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "21 already stored" in out and "continues as stored, on 3 seeds" in out
    assert build_report("tiny", store, tmp_path / "reports").expected == 21
