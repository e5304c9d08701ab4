"""Faults: nothing computed is lost, nothing is mislabelled.

A diverging or raising seed of a batch, failed cells on a re-run, diverged cells in a
report, bad output paths, missing, corrupt and read-only stores, an edited suite, bad
devices and run names, two runs on one store. Every case runs on tiny suites (seconds).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY, write_suite

import gangrad
from gangrad import cli
from gangrad.report import build_report
from gangrad.report.tables import summary_table
from gangrad.runner import TIMING_METRICS, Store, StoreError, run_suite
from gangrad.train import train, train_seeds

ROOT = Path(__file__).resolve().parents[1]

# one seed of three diverges at step 3 (its own learning-rate blow-up), two train on
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


def _values(store: Path, run: str) -> pd.DataFrame:
    df = gangrad.load(run, store)
    df = df[~df["name"].isin(TIMING_METRICS)]
    return df.sort_values(["cell_id", "kind", "step", "layer", "name"]).reset_index(drop=True)


def _statuses(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as db:
        return db.execute("SELECT seed, status, diverged_at FROM cells ORDER BY seed").fetchall()


# -- a batch of seeds with one bad seed ---------------------------------------------------------
def test_a_diverging_seed_leaves_its_batch_mates_as_their_lone_runs(tmp_path):
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


def test_train_seeds_replays_the_healthy_seeds_without_the_diverged_one():
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
def test_failed_cells_are_retried_and_diverged_ones_kept(tmp_path, monkeypatch):
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
    monkeypatch.undo()
    kept = run_suite(suite, store=store, progress=False, retry_failed=False)
    assert (kept.skipped, kept.ok, kept.retried) == (3, 0, 0)
    again = run_suite(suite, store=store, progress=False)
    assert (again.skipped, again.ok, again.retried) == (2, 1, 1)  # the diverged one is kept
    assert "retried 1" in str(again)
    assert _statuses(store) == [(0, "diverged", 3), (3, "ok", None), (4, "ok", None)]


def test_reports_never_rank_a_diverged_cell(tmp_path):
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
    assert table.loc["bad", "outcome"] == "diverged in 3/3 seeds"


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
