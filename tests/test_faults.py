"""Faults: nothing computed is lost, nothing is mislabelled.

A diverging or raising seed of a batch, failed cells on a re-run, diverged cells in a
report, bad output paths, missing, corrupt and read-only stores, an edited suite, bad
devices and run names, two runs on one store; finite blow-ups (the divergence rule) and
estimators too uncertain to rank, extended runs resumed, over-long run names, damaged
stores, killed worker processes, a full disk, permission problems, bad sequential flags,
refused commands' leftovers. Every case runs on tiny suites (seconds; the killed workers'
test spawns six processes).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY, write_suite

import gangrad
from gangrad import cli
from gangrad.report import build_report
from gangrad.report.tables import summary_table
from gangrad.runner import TIMING_METRICS, Store, StoreError, load_suite, run_suite
from gangrad.train import train, train_seeds

ROOT = Path(__file__).resolve().parents[1]

# One seed of three turns NaN at step 3 (its own learning-rate blow-up), two train on with
# finite losses: with the loss bound of the divergence rule lifted (`nan_only`), which at
# this rate every seed passes at step 1. It exercises a batch that loses one seed.
BLOWUP = """
name = "blowup"
seeds = [0, 3, 4]
[train]
steps = 60
eval_every = 30
eval_samples = 100
lr_g = 1.4e9
lr_d = 1.4e9
[grad_stats]
at_steps = [0, "end"]
replicates = 4
batch_size = 4
timing = false
reference_replicates = 4
[[tasks]]
key = "categorical"
estimators = [{ key = "score_function", samples = 2 }]
"""


@pytest.fixture
def nan_only(monkeypatch):
    """The divergence rule without its loss bound: only NaN/Inf diverges (see BLOWUP)."""
    import gangrad.train.loop as loop

    monkeypatch.setattr(loop, "LOSS_BOUND", math.inf)


def _values(store: Path, run: str) -> pd.DataFrame:
    df = gangrad.load(run, store)
    df = df[~df["name"].isin(TIMING_METRICS)]
    return df.sort_values(["cell_id", "kind", "step", "layer", "name"]).reset_index(drop=True)


def _statuses(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as db:
        return db.execute("SELECT seed, status, diverged_at FROM cells ORDER BY seed").fetchall()


# -- a batch of seeds with one bad seed ---------------------------------------------------------
def test_a_diverging_seed_leaves_its_batch_mates_as_their_lone_runs(tmp_path, nan_only):
    suite = write_suite(tmp_path, BLOWUP, "blowup")
    batched = run_suite(suite, store=tmp_path / "b.sqlite", progress=False)
    alone = run_suite(suite, store=tmp_path / "a.sqlite", progress=False, batch_seeds=False)
    assert (batched.ok, batched.diverged, batched.failed) == (2, 1, 0)
    assert _statuses(tmp_path / "b.sqlite") == _statuses(tmp_path / "a.sqlite") == [
        (0, "diverged", 3), (3, "ok", None), (4, "ok", None)]
    a, b = _values(tmp_path / "a.sqlite", "blowup"), _values(tmp_path / "b.sqlite", "blowup")
    assert len(a) > 0 and a.drop(columns="value").equals(b.drop(columns="value"))
    assert a["value"].equals(b["value"])  # bit for bit
    assert alone.ok == 2


def test_train_seeds_replays_the_healthy_seeds_without_the_diverged_one(nan_only):
    kw = {"steps": 60, "eval_every": 30, "eval_samples": 100, "lr_g": 1.4e9, "lr_d": 1.4e9,
          "device": "cpu", "estimator_hyper": {"samples": 2}}
    seen: list[tuple[int, int]] = []
    histories = train_seeds("categorical", "score_function", [0, 3, 4], **kw,
                            checkpoint_steps=[0, 60],
                            on_checkpoint=lambda seed, step, state: seen.append((seed, step)))
    assert sorted(seen) == [(0, 0), (3, 0), (3, 60), (4, 0), (4, 60)], "each once"
    for seed, history in zip([0, 3, 4], histories, strict=True):
        lone = train("categorical", "score_function", seed=seed, **kw)
        assert history.attrs["status"] == lone.attrs["status"]
        assert history.attrs["diverged_at"] == lone.attrs["diverged_at"]
        assert history.drop(columns="elapsed_s").equals(lone.drop(columns="elapsed_s"))


def test_a_raising_batch_is_run_seed_by_seed(tiny, tmp_path, monkeypatch):
    """One seed raises inside a batch: that seed alone is failed, with its traceback."""
    import gangrad.runner.cell as cell

    def batch_raises(*args, **kwargs):
        raise RuntimeError("the batch broke")

    real_train = cell.train

    def seed_one_raises(*args, seed, **kwargs):
        if seed == 1:
            raise RuntimeError("seed 1 broke")
        return real_train(*args, seed=seed, **kwargs)

    monkeypatch.setattr(cell, "train_seeds", batch_raises)
    monkeypatch.setattr(cell, "train", seed_one_raises)
    summary = run_suite(tiny, store=tmp_path / "r.sqlite", progress=False)
    assert summary.failed == 7 and summary.ok == 7  # seed 1 of each of the 7 groups
    with sqlite3.connect(tmp_path / "r.sqlite") as db:
        errors = db.execute("SELECT seed, error FROM cells WHERE status = 'failed'").fetchall()
    assert {seed for seed, _ in errors} == {1}
    assert all("seed 1 broke" in error for _, error in errors)
    monkeypatch.undo()
    clean = run_suite(tiny, store=tmp_path / "c.sqlite", progress=False)
    assert clean.ok == 14
    ok = _values(tmp_path / "r.sqlite", "tiny")
    ref = _values(tmp_path / "c.sqlite", "tiny")
    ref = ref[ref["cell_id"].isin(set(ok["cell_id"]))].reset_index(drop=True)
    assert ok["value"].equals(ref["value"]), "the seeds that did not fail are their lone runs"


def test_divergence_in_the_estimator_is_a_divergence_not_a_failure(capsys):
    h = train("categorical", "score_function", steps=100, lr_g=1e38, lr_d=1e38, device="cpu")
    assert h.attrs["status"] == "diverged" and h.attrs["diverged_at"] == 1
    code = cli.main(["train", "--task", "categorical", "--estimator", "score_function",
                     "--steps", "100", "--lr-g", "1e38", "--lr-d", "1e38", "-q",
                     "--out", str(Path(os.environ.get("TMPDIR", "/tmp")) / "gangrad-div")])
    out = capsys.readouterr().out
    assert code == 3 and "diverged at step 1" in out and "nan" not in out


# -- re-runs, reports ---------------------------------------------------------------------------
def test_failed_cells_are_retried_and_diverged_ones_kept(tmp_path, monkeypatch, nan_only):
    import gangrad.runner.backends as backends

    suite = write_suite(tmp_path, BLOWUP, "blowup")
    store = tmp_path / "s.sqlite"
    real = backends.run_cells

    def flaky(cells, *args):
        return [{**r, "status": "failed", "error": "Traceback\nRuntimeError: flaky\n",
                 "metrics": []} if c["seed"] == 4 else r
                for c, r in zip(cells, real(cells, *args), strict=True)]

    monkeypatch.setattr(backends, "run_cells", flaky)
    first = run_suite(suite, store=store, progress=False)
    assert (first.ok, first.diverged, first.failed) == (1, 1, 1)
    monkeypatch.setattr(backends, "run_cells", real)
    kept = run_suite(suite, store=store, progress=False, retry_failed=False)
    assert (kept.skipped, kept.ok, kept.retried) == (3, 0, 0)
    again = run_suite(suite, store=store, progress=False)
    assert (again.skipped, again.ok, again.retried) == (2, 1, 1)  # the diverged one is kept
    assert "retried 1" in str(again)
    assert _statuses(store) == [(0, "diverged", 3), (3, "ok", None), (4, "ok", None)]


def test_reports_never_rank_a_diverged_cell(tmp_path, nan_only):
    suite = write_suite(tmp_path, BLOWUP.replace("seeds = [0, 3, 4]", "seeds = [0, 3]")
                        .replace('estimators = [{ key = "score_function", samples = 2 }]',
                                 'estimators = [{ key = "score_function", samples = 2 }, '
                                 '"straight_through"]'), "blowup")
    store = tmp_path / "s.sqlite"
    run_suite(suite, store=store, progress=False)
    with Store(store, readonly=True) as db:
        cells = db.cells("blowup")
        summary = summary_table(db.metrics("blowup"), cells).set_index("estimator")
    statuses = cells.groupby("label")["status"].apply(list).to_dict()
    sf = summary.loc["score_function(samples=2)"]
    n_div = statuses["score_function(samples=2)"].count("diverged")
    assert n_div >= 1 and sf["seeds"] == 2 - n_div
    assert f"diverged in {n_div}/2 seeds" in sf["outcome"]
    if sf["seeds"] == 0:
        assert pd.isna(sf["rank"])
    report = build_report("blowup", store, tmp_path / "reports")
    assert "diverged in" in report.markdown.read_text()


def test_an_estimator_whose_seeds_all_diverged_is_listed_unranked():
    rows = [{"kind": "train", "task": "gaussian1d", "label": label, "seed": seed,
             "cell_id": f"{label}{seed}", "step": 0, "layer": "", "name": "w1", "value": 0.01,
             "status": "ok" if label == "good" else "diverged"}
            for label in ("good", "bad") for seed in range(3)]
    table = summary_table(pd.DataFrame(rows)).set_index("estimator")
    assert table.loc["good", "rank"] == 1 and table.loc["good", "outcome"] == "best"
    assert pd.isna(table.loc["bad", "rank"]) and table.loc["bad", "seeds"] == 0
    assert table.loc["bad", "outcome"] == "diverged in 3/3 seeds; undetermined"


# -- output paths and stores --------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["grad-stats", "--task", "categorical", "--estimators", "straight_through",
     "--out", "/proc/none/x.csv"],
    ["train", "--task", "categorical", "--estimator", "straight_through", "--steps", "2",
     "--out", "/proc/none/run"],
    ["ask", "separate-batches", "--out-dir", "/proc/none"],
])
def test_bad_output_paths_are_refused_before_work(argv, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert "cannot write to /proc/none" in captured.err
    assert "gradient statistics on" not in captured.out and "training" not in captured.out


def test_export_checks_its_path_first(tiny_run, capsys):
    _, store = tiny_run
    assert cli.main(["export", "tiny", "--store", str(store), "--out", "/proc/none/x"]) == 2
    assert "--out: cannot write" in capsys.readouterr().err


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_commands_never_write(tiny_run, tmp_path, capsys):
    _, store = tiny_run
    before = _digest(store)
    assert cli.main(["runs", "--store", str(store)]) == 0
    assert cli.main(["export", "tiny", "--store", str(store), "--out",
                     str(tmp_path / "t.csv")]) == 0
    assert cli.main(["report", "tiny", "--store", str(store), "--out-dir",
                     str(tmp_path / "r")]) == 0
    assert _digest(store) == before
    missing = tmp_path / "typo.sqlite"
    for argv in (["runs"], ["report", "tiny"], ["export", "tiny"]):
        assert cli.main([*argv, "--store", str(missing)]) == 2
        assert f"no results store at {missing}" in capsys.readouterr().err
    assert not missing.exists(), "a mistyped --store is not created"


def test_a_corrupt_store_gets_one_sentence(tmp_path, capsys):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database at all" * 100)
    for argv in (["runs"], ["report", "x"], ["run", "quick"]):
        assert cli.main([*argv, "--store", str(bad)]) == 2
        err = capsys.readouterr().err
        assert "is not a gangrad results store" in err and "Traceback" not in err
    with pytest.raises(StoreError, match="a folder"):
        Store(tmp_path)


def test_a_read_only_store_is_read_and_refused_for_writing(tiny_run, tmp_path, monkeypatch):
    """A store opened for reading is opened read-only; a store the process may not write
    is refused for writing with one sentence."""
    _, store = tiny_run
    with Store(store, readonly=True) as db, pytest.raises(sqlite3.OperationalError,
                                                          match="readonly"):
        db._db.execute("DELETE FROM runs")
    import gangrad.runner.store as store_mod

    real_connect = sqlite3.connect

    def read_only_file(path, *args, **kwargs):  # what the OS does to a file we may not write
        if kwargs.get("uri"):
            return real_connect(path, *args, **kwargs)
        return real_connect(f"{Path(path).resolve().as_uri()}?mode=ro", *args, uri=True,
                            **kwargs)

    monkeypatch.setattr(store_mod.sqlite3, "connect", read_only_file)
    with pytest.raises(StoreError, match="cannot write the results store"):
        Store(store)
    assert len(gangrad.load("tiny", store)) > 0, "reading still works"

    def no_wal_index(path, *args, **kwargs):  # a folder we may not write: no -shm there
        if "mode=ro" in str(path):
            raise sqlite3.OperationalError("unable to open database file")
        return real_connect(path, *args, **kwargs)

    monkeypatch.setattr(store_mod.sqlite3, "connect", no_wal_index)
    assert len(gangrad.load("tiny", store)) > 0, "read as it stands"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any file")
def test_a_store_in_a_read_only_folder_is_read(tiny_run, tmp_path, capsys):
    _, store = tiny_run
    folder = tmp_path / "ro"
    folder.mkdir()
    copy = folder / "s.sqlite"
    copy.write_bytes(store.read_bytes())
    copy.chmod(0o444)
    folder.chmod(0o555)
    try:
        assert cli.main(["runs", "--store", str(copy)]) == 0
        assert "tiny" in capsys.readouterr().out
        assert cli.main(["run", "quick", "--store", str(copy)]) == 2
        assert "cannot write the results store" in capsys.readouterr().err
    finally:
        folder.chmod(0o755)


# -- edited suites, devices, names, concurrent runs ---------------------------------------------
def test_an_edited_suite_never_mixes_with_its_old_run(tiny, tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    assert run_suite(tiny, store=store, progress=False).ok == 14
    tiny.write_text(TINY.replace('estimators = ["straight_through", "st_gumbel"]',
                                 'estimators = ["gumbel_softmax"]'))
    with pytest.raises(ValueError, match="4 cells that suite 'tiny' no longer declares"):
        run_suite(tiny, store=store, progress=False)
    assert run_suite(tiny, store=store, run="tiny2", progress=False).ok == 12
    fresh = run_suite(tiny, store=store, fresh=True, progress=False)
    assert fresh.ok == 12
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM cells WHERE run = 'tiny'").fetchone()[0] == 12
    report = build_report("tiny", store, tmp_path / "r")
    assert report.stored == report.expected == 12 and not report.missing


@pytest.mark.parametrize(("argv", "message"), [
    (["--device", "foo"], "device must be cpu, cuda or cuda:N"),
    (["--run", "a/../b"], "run names are letters"),
    (["--workers", "0"], "workers must be an integer"),
])
def test_bad_run_options_are_refused_before_work(tiny, tmp_path, argv, message, capsys):
    store = tmp_path / "s.sqlite"
    assert cli.main(["run", str(tiny), "--store", str(store), "-q", *argv]) == 2
    assert message in capsys.readouterr().err
    if store.exists():
        with sqlite3.connect(store) as db:
            assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


def test_report_and_export_refuse_run_names_that_escape(tiny_run, tmp_path, capsys):
    _, store = tiny_run
    for argv in (["report", "../../x"], ["export", "../x"]):
        assert cli.main([*argv, "--store", str(store), "--out-dir" if argv[0] == "report"
                         else "--out", str(tmp_path / "o")]) == 2
        assert "run names are letters" in capsys.readouterr().err


def test_a_suite_path_that_is_a_folder(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_grad_stats_bad_chunk_size_is_refused_before_work(capsys):
    assert cli.main(["grad-stats", "--task", "categorical", "--estimators",
                     "straight_through", "--chunk-size", "0"]) == 2
    captured = capsys.readouterr()
    assert "chunk_size must be an integer >= 1" in captured.err
    assert "gradient statistics on" not in captured.out


def test_claimed_cells_are_left_to_their_process(tiny, tmp_path):
    """A cell claimed by another live process is not computed again; a claim whose
    process is gone is taken over."""
    store = tmp_path / "s.sqlite"
    run_suite(tiny, store=store, progress=False, workers=1)  # creates the store
    with sqlite3.connect(store) as db:
        ids = [r[0] for r in db.execute("SELECT cell_id FROM cells WHERE task = 'categorical'")]
        db.execute("DELETE FROM cells WHERE task = 'categorical'")
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        import platform

        db.executemany("INSERT INTO claims VALUES ('tiny', ?, ?, ?, 0)",
                       [(i, platform.node(), sleeper.pid) for i in ids[:2]]
                       + [(i, platform.node(), 2**22 + 12345) for i in ids[2:]])
    try:
        summary = run_suite(tiny, store=store, progress=False)
    finally:
        sleeper.kill()
    assert summary.elsewhere == 2 and summary.ok == len(ids) - 2
    assert "being run by another process" in str(summary)


@pytest.mark.slow
def test_two_runs_on_one_store_share_the_cells(tiny, tmp_path):
    store = tmp_path / "s.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "gangrad.cli", "run", str(tiny), "--store", str(store), "-q",
           "--workers", "1"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    computed = [int(out.split("': ", 1)[1].split(" ok")[0]) for out in outs]
    assert sum(computed) == 14, outs  # every cell computed once, by one of them
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 14
        assert db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0


# -- extended runs ------------------------------------------------------------------------------
def test_an_extended_run_resumes_as_extended(tmp_path, capsys):
    """A run extended to 3 seeds, interrupted, is resumed by the plain command: every
    stored cell kept, the extension completed, the advice never destructive."""
    suite = write_suite(tmp_path, PAIR, "pair")
    store = tmp_path / "s.sqlite"
    assert run_suite(suite, store=store, progress=False).ok == 6

    def stop_at_once(cell, result):
        raise KeyboardInterrupt

    part = run_suite(load_suite(suite).with_seeds(3), store=store, progress=False,
                     workers=1, batch_seeds=False, on_cell=stop_at_once)
    assert part.interrupted and part.ok == 1
    assert cli.main(["run", str(suite), "--store", str(store), "-q"]) == 0
    out = capsys.readouterr().out
    assert "2 ok" in out and "7 already stored" in out and "of 9 cells" in out
    assert "continues as stored, on 3 seeds" in out and "--fresh" not in out
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 9
    report = build_report("pair", store, tmp_path / "r")
    assert (report.stored, report.expected, report.missing) == (9, 9, [])
    suite.write_text(PAIR.replace('"score_function"', '"reparam"'))  # an edit is refused
    assert cli.main(["run", str(suite), "--store", str(store), "-q"]) == 2
    err = capsys.readouterr().err
    assert "no longer declares" in err and "--fresh to delete run 'pair''s 9 stored cells" in err


# -- finite blow-ups ----------------------------------------------------------------------------
HUGE_LR = """
name = "huge"
seeds = [0, 1]
[train]
steps = 20
eval_every = 10
eval_samples = 100
lr_g = 1e9
lr_d = 1e9
[grad_stats]
at_steps = [0]
replicates = 4
batch_size = 4
timing = false
[[tasks]]
key = "gaussian1d"
estimators = ["pathwise", { key = "smoothing", sigma = 0.5 }, "score_function"]
"""


def test_a_finite_blow_up_is_diverged_and_never_best(tmp_path):
    """gaussian1d at a learning rate of 1e9: every value stays finite (W1 near 1e9),
    yet every cell is diverged, and no estimator is ranked best."""
    store = tmp_path / "s.sqlite"
    summary = run_suite(write_suite(tmp_path, HUGE_LR, "huge"), store=store, progress=False)
    assert (summary.ok, summary.diverged, summary.failed) == (0, 6, 0)
    with Store(store, readonly=True) as db:
        cells, metrics = db.cells("huge"), db.metrics("huge")
    assert set(cells["diverged_at"]) == {1}
    table = summary_table(metrics, cells)
    assert not table["ranked"].any() and not (table["outcome"] == "best").any()
    assert table["outcome"].str.endswith("undetermined").all()
    history = train("gaussian1d", "pathwise", steps=20, eval_every=10, lr_g=1e9, lr_d=1e9,
                    device="cpu")
    assert history.attrs["status"] == "diverged" and len(history) == 1  # step 0 only


def test_a_generator_far_from_the_data_is_diverged():
    """Rule 3: samples beyond OUTPUT_BOUND times the data's largest magnitude, with losses
    that stay below the loss bound."""
    def push_away(step, state):
        with torch.no_grad():
            next(p for n, p in state.G.named_parameters() if n.endswith("bias")).fill_(1e5)

    said: list[str] = []
    history = train("gaussian1d", "pathwise", steps=4, eval_every=2, eval_samples=100,
                    device="cpu", checkpoint_steps=[0], on_checkpoint=push_away,
                    progress=lambda row: said.append(row.get("message", "")))
    assert history.attrs["status"] == "diverged" and history.attrs["diverged_at"] == 2
    assert said[-1].startswith("diverged at step 2: the generator's output (|x| up to 1e+05)")
    from gangrad.train.loop import OUTPUT_BOUND, data_bound

    assert 1e5 > data_bound(gangrad.tasks.create("gaussian1d"), 100) > OUTPUT_BOUND
    assert train("gaussian1d", "pathwise", steps=4, eval_every=2, eval_samples=100,
                 device="cpu").attrs["status"] == "ok"


def test_fewer_than_two_sound_seeds_or_an_infinite_interval_is_never_best():
    def rows(task, name, values):
        return pd.DataFrame([
            {"kind": "train", "task": task, "label": label, "seed": seed, "step": step,
             "cell_id": f"{label}{seed}", "layer": "", "name": name, "value": value,
             "status": "ok"}
            for label, vs in values.items() for seed, v in enumerate(vs)
            for step, value in ((0, 1.0), (10, v), (20, v))])

    lone = summary_table(rows("gaussian1d", "w1", {"lone": [0.01], "pair": [5.0, 5.5]}))
    lone = lone.set_index("estimator")
    assert lone.loc["pair", "outcome"] == "best"
    assert lone.loc["lone", "outcome"] == ("not ranked: 1 sound seed (two are needed); "
                                           "undetermined")
    alone = summary_table(rows("gaussian1d", "w1", {"a": [0.01], "b": [5.0]}))
    assert (alone["outcome"].str.endswith("undetermined")).all() and not alone["ranked"].any()
    with np.errstate(over="ignore", invalid="ignore"):
        wide = summary_table(rows("ring8", "modes", {"huge": [1e308, 1.5e308],
                                                     "y": [5.0, 6.0]})).set_index("estimator")
    assert wide.loc["y", "outcome"] == "best"
    assert wide.loc["huge", "outcome"].startswith("not ranked: its interval is not finite")


# -- run names ----------------------------------------------------------------------------------
def test_run_names_too_long_for_a_file_name_are_refused_before_work(tiny, tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    assert cli.main(["run", str(tiny), "--store", str(store), "-q", "--run", "x" * 300]) == 2
    assert "--run: run names are at most 100 characters" in capsys.readouterr().err
    named = write_suite(tmp_path, TINY.replace('name = "tiny"', f'name = "{"y" * 300}"'),
                        "long")
    assert cli.main(["run", str(named), "--store", str(store), "-q"]) == 2
    assert f"{named}:2: name is 300 characters; at most 100" in capsys.readouterr().err
    assert cli.main(["run", str(tiny), "--store", str(store), "-q", "--run", ""]) == 2
    assert "run names are letters" in capsys.readouterr().err
    assert not store.exists(), "nothing was computed or stored"
    for argv in (["report", "z" * 300], ["export", "z" * 300]):
        assert cli.main([*argv, "--store", str(store)]) == 2
        assert "at most 100 characters" in capsys.readouterr().err


# -- damaged stores -----------------------------------------------------------------------------
def _damage(store: Path, copy: Path) -> Path:
    """A copy of ``store`` with garbage written over pages in its middle (the header and
    the schema on page 1 intact), as a disk or a copy gone wrong leaves it."""
    with sqlite3.connect(store) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = db.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(store.read_bytes())
    pages = len(data) // page
    rng = np.random.default_rng(0)
    for k in range(pages // 2, pages // 2 + 4):
        data[k * page:(k + 1) * page] = rng.integers(0, 256, page, dtype=np.uint8).tobytes()
    copy.write_bytes(bytes(data))
    return copy


def test_a_damaged_store_gets_one_sentence(tiny_run, tmp_path, capsys):
    """Garbage pages in the middle of a store: quick_check finds them; runs lists what it
    can with a warning, export, report and run say what is damaged and what still reads."""
    _, store = tiny_run
    bad = _damage(store, tmp_path / "bad.sqlite")
    assert cli.main(["runs", "--store", str(bad)]) == 0
    err = capsys.readouterr().err
    assert "warning: the results store" in err and "is damaged (SQLite's quick_check" in err
    for argv in (["export", "tiny", "--out", str(tmp_path / "t.csv")],
                 ["report", "tiny", "--out-dir", str(tmp_path / "r")], ["run", "quick"]):
        assert cli.main([*argv, "--store", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is damaged (SQLite's quick_check" in err, err
        assert "can" in err and "--store NEW.sqlite" in err and "SELECT" not in err
    assert "nothing is written into a damaged store" in err
    with pytest.raises(StoreError, match="is damaged"):
        gangrad.load("tiny", bad)
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "r").exists()


def test_a_truncated_store_and_a_foreign_database(tiny_run, tmp_path, capsys):
    """A store cut short (a copy that stopped) is damaged, in one sentence; another
    program's SQLite file is refused and left as it was."""
    _, store = tiny_run
    with sqlite3.connect(store) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    half = tmp_path / "half.sqlite"
    half.write_bytes(store.read_bytes()[:store.stat().st_size // 2])
    for argv in (["export", "tiny", "--out", str(tmp_path / "h.csv")], ["runs"]):
        assert cli.main([*argv, "--store", str(half)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is damaged" in err and "cannot be read" in err, err
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (text)")
    before = _digest(other)
    assert cli.main(["run", "quick", "--store", str(other), "-q"]) == 2
    assert "not a gangrad results store (its tables are notes)" in capsys.readouterr().err
    assert _digest(other) == before


# -- dying worker processes ---------------------------------------------------------------------
PAIR = """
name = "pair"
seeds = [0, 1]
[train]
steps = 4
eval_every = 2
eval_samples = 100
[grad_stats]
at_steps = [0, "end"]
replicates = 4
batch_size = 4
timing = false
reference_replicates = 4
[[tasks]]
key = "gaussian1d"
estimators = ["pathwise", { key = "smoothing", sigma = 0.5 }, "score_function"]
"""


def _killed(cells, device, threads):
    """In a worker process: SIGKILL itself, as the out-of-memory killer would, on the
    smoothing cells each time, and on the score-function cells the first time only (a
    marker in the folder $KILLED_ONCE)."""
    from gangrad.runner.cell import run_cells

    key, marker = cells[0]["estimator"], Path(os.environ["KILLED_ONCE"]) / "score_function"
    if key == "score_function" and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), 9)
    if key == "smoothing":
        os.kill(os.getpid(), 9)
    return run_cells(cells, device, threads)


def test_a_killed_worker_fails_its_cells_and_the_others_go_on(tmp_path, monkeypatch, capsys):
    """Workers killed on two groups: each group is stored as failed and run once more in
    a fresh process while the others go on; the one killed again stays failed, with its
    own exit status (4); the other is stored; a re-run computes the failed one again."""
    import gangrad.runner.backends as backends

    suite = write_suite(tmp_path, PAIR, "pair")
    store = tmp_path / "s.sqlite"
    monkeypatch.setattr(backends, "run_cells", _killed)
    monkeypatch.setenv("KILLED_ONCE", str(tmp_path))
    code = cli.main(["run", str(suite), "--store", str(store), "-q", "--workers", "2"])
    out = capsys.readouterr().out
    assert code == 4, out
    assert "4 ok, 0 diverged, 2 failed" in out and "3 worker process(es) died" in out, out
    assert "was killed by SIGKILL (the kernel's out-of-memory killer sends it)" in out
    assert "2 died again and stay failed" in out
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT estimator, status, error FROM cells").fetchall()
    assert sorted((e, s) for e, s, _ in rows) == [
        ("pathwise", "ok"), ("pathwise", "ok"), ("score_function", "ok"),
        ("score_function", "ok"), ("smoothing", "failed"), ("smoothing", "failed")]
    assert all("WorkerDied" in err and "retry too" in err for e, _, err in rows
               if e == "smoothing")
    from gangrad.runner.cell import run_cells

    monkeypatch.setattr(backends, "run_cells", run_cells)
    again = run_suite(suite, store=store, progress=False, workers=2)
    assert (again.ok, again.failed, again.retried, again.deaths) == (2, 0, 2, [])
    assert _statuses(store) == [(0, "ok", None)] * 3 + [(1, "ok", None)] * 3


# -- failed writes ------------------------------------------------------------------------------
def test_a_full_disk_stops_the_run_saying_what_is_stored(tmp_path, monkeypatch, capsys):
    """The store's file cannot grow (SQLite's page limit: a genuine 'database or disk is
    full' mid-run): the run stops with one sentence, exit status 5, every stored cell
    whole; the same command then resumes and stores exactly a clean run's rows."""
    real = Store._open_writable

    def capped(self):
        db = real(self)
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0] + 12}")
        return db

    suite = write_suite(tmp_path, PAIR, "pair")
    store = tmp_path / "s.sqlite"
    monkeypatch.setattr(Store, "_open_writable", capped)
    assert cli.main(["run", str(suite), "--store", str(store), "-q", "--workers", "1"]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "the disk is full" in err and "run the same command to resume" in err
    with sqlite3.connect(store) as db:
        held = db.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        assert db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] <= 2
    assert 0 < held < 6 and f"holds {held} finished cells of run 'pair'" in err
    monkeypatch.setattr(Store, "_open_writable", real)
    assert run_suite(suite, store=store, progress=False).ok == 6 - held
    clean = tmp_path / "clean.sqlite"
    run_suite(suite, store=clean, progress=False)
    assert _values(store, "pair")["value"].equals(_values(clean, "pair")["value"])


@pytest.mark.slow
def test_a_file_size_limit_mid_run_is_said_and_resumable(tmp_path):
    """The trial's case: `ulimit -f` on a real process, the store's journal hitting it."""
    import resource

    suite = write_suite(tmp_path, PAIR, "pair")
    store = tmp_path / "s.sqlite"
    cmd = [sys.executable, "-m", "gangrad.cli", "run", str(suite), "--store", str(store),
           "-q", "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    limit = 160 * 1024

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = subprocess.run(cmd, env=env, capture_output=True, text=True, preexec_fn=cap,
                         timeout=300)
    assert out.returncode == 5, out.stderr
    assert "file-size limit of 163840 bytes (ulimit -f)" in out.stderr
    assert "Traceback" not in out.stderr and "raise the limit" in out.stderr
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM cells WHERE status = 'ok'").fetchone()[0] == 6


# -- permissions --------------------------------------------------------------------------------
def _without_privilege(argvs: list[list[str]]) -> list[tuple[int, str]]:
    """``(exit status, stderr)`` of ``gangrad`` on each of ``argvs``, run by a process
    that file permissions bind: this one, or as root a child without the capabilities
    that override them (setpriv)."""
    if os.geteuid() != 0:
        results = []
        for argv in argvs:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                results.append((cli.main(argv), err.getvalue()))
        return results
    if not shutil.which("setpriv"):
        pytest.skip("root, and no setpriv to drop the capabilities that override permissions")
    script = ("import contextlib, io, json, sys\nfrom gangrad import cli\nout = []\n"
              "for argv in json.loads(sys.argv[1]):\n    err = io.StringIO()\n"
              "    with contextlib.redirect_stderr(err):\n"
              "        out.append((cli.main(argv), err.getvalue()))\nprint(json.dumps(out))\n")
    done = subprocess.run(
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", sys.executable,
         "-c", script, json.dumps(argvs)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return [tuple(r) for r in json.loads(done.stdout.strip().splitlines()[-1])]


def test_a_store_that_may_not_be_written_or_read_is_a_permission_problem(tiny_run, tmp_path):
    _, store = tiny_run
    locked = tmp_path / "locked"
    locked.mkdir()
    hidden = tmp_path / "hidden.sqlite"
    hidden.write_bytes(store.read_bytes())
    hidden.chmod(0o000)
    locked.chmod(0o555)
    try:
        (new, new_err), (unread, unread_err), (listed, listed_err) = _without_privilege([
            ["run", "quick", "--store", str(locked / "new.sqlite")],
            ["runs", "--store", str(hidden)],
            ["run", "quick", "--store", str(hidden)]])
    finally:
        locked.chmod(0o755)
        hidden.chmod(0o644)
    assert new == 2 and (f"permission denied: cannot create the results store "
                         f"{locked / 'new.sqlite'}, the folder {locked} is not writable"
                         in new_err), new_err
    assert unread == listed == 2
    for err in (unread_err, listed_err):
        assert "permission denied: cannot read the results store" in err, err
        assert "not a gangrad results store" not in err
    assert not (locked / "new.sqlite").exists()


# -- command-line flags and leftovers -----------------------------------------------------------
@pytest.mark.parametrize(("argv", "message"), [
    (["--until-decided", "0"], "--until-decided is the most seeds a task may take, so it must "
                               "be more than the 2 seeds the suite starts with, got 0"),
    (["--until-decided", "-4"], "more than the 2 seeds the suite starts with, got -4"),
    (["--until-decided", "1"], "more than the 2 seeds the suite starts with, got 1"),
    (["--seeds", "3", "--until-decided", "3"], "more than the 3 seeds the suite starts with"),
    (["--seeds", "0"], "--seeds must be an integer >= 1, got 0"),
])
def test_bad_sequential_flags_name_the_flag(tiny, tmp_path, argv, message, capsys):
    store = tmp_path / "s.sqlite"
    assert cli.main(["run", str(tiny), "--store", str(store), "-q", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "<suite" not in err and "max_seeds" not in err
    assert not store.exists()


def test_refused_commands_leave_no_empty_folders(tiny_run, tmp_path, monkeypatch, capsys):
    _, store = tiny_run
    monkeypatch.chdir(tmp_path)
    refused = [
        ["train", "--task", "gaussian1d", "--estimator", "nope"],
        ["train", "--task", "gaussian1d", "--estimator", "pathwise", "--steps", "0"],
        ["train", "--task", "gaussian1d", "--estimator", "pathwise", "--steps", "0", "--out",
         "deep/er/run"],
        ["grad-stats", "--task", "gaussian1d"],
        ["grad-stats", "--task", "gaussian1d", "--estimators", "pathwise", "--at-steps", "x"],
        ["report", "nope", "--out-dir", "reports/x", "--store", str(store)],
        ["export", "nope", "--store", str(store)],
        ["demo", "--replicates", "5"],
    ]
    for argv in refused:
        assert cli.main(argv) == 2, argv
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert cli.main(["train", "--task", "gaussian1d", "--estimator", "pathwise", "--steps",
                     "2", "--eval-every", "1", "--eval-samples", "50", "-q", "--out",
                     "deep/er/run"]) == 0
    assert (tmp_path / "deep" / "er" / "run" / "history.csv").exists()


def test_help_shows_percent_signs_once(capsys):
    for command in ("reproduce", "grad-stats"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        out = capsys.readouterr().out
        assert "95% interval" in out and "%%" not in out
