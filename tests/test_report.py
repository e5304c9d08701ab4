"""Reports and questions: tables, a partial run, rendering in headless Chromium."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from gangrad import cli
from gangrad.questions import QUESTIONS, ask, save
from gangrad.report import build_report
from gangrad.report.tables import summary_table
from gangrad.runner import load_suite, run_suite

SUITE = """
name = "tiny"
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
key = "gaussian1d"
train = { steps = 6, eval_every = 3 }
estimators = ["pathwise", { key = "smoothing", sigma = [0.1, 1.0] },
              { key = "score_function", sigma = [0.1, 1.0], baseline = "mean" }]
[[tasks]]
key = "categorical"
train = { steps = 6, eval_every = 3 }
estimators = ["straight_through", "st_gumbel"]
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    suite = tmp / "tiny.toml"
    suite.write_text(SUITE)
    store = tmp / "s.sqlite"
    run_suite(suite, store=store, progress=False)
    return tmp, store


def test_report_files_and_tables(tiny_run):
    tmp, store = tiny_run
    report = build_report("tiny", store, tmp / "reports")
    assert report.html.exists() and report.markdown.exists()
    assert {"training", "bias_variance", "snr_cosine", "sigma_sweep", "cost",
            "samples"} <= set(report.figures)
    summary = pd.read_csv(report.directory / "tables" / "summary.csv")
    assert set(summary["task"]) == {"gaussian1d", "categorical"}
    assert (summary.groupby("task")["tie"].apply(lambda t: (t == "best").sum()) == 1).all()
    md = report.markdown.read_text()
    for name in report.figures:
        assert f"figures/{name}.png" in md
        assert (report.directory / "figures" / f"{name}.png").stat().st_size > 1000
    assert not report.missing


def test_ranking_marks_ties_from_intervals():
    rows = []
    for label, values in (("a", [1.0, 1.1, 0.9]), ("b", [1.05, 1.2, 0.95]),
                          ("c", [5.0, 5.1, 4.9])):
        for seed, v in enumerate(values):
            rows.append({"kind": "train", "task": "gaussian1d", "label": label, "seed": seed,
                         "cell_id": f"{label}{seed}", "step": 10, "layer": "", "name": "w1",
                         "value": v})
    table = summary_table(pd.DataFrame(rows)).set_index("estimator")
    assert table.loc["a", "tie"] == "best" and table.loc["b", "tie"] == "tie"
    assert table.loc["c", "tie"] == "" and table.loc["c", "rank"] == 3


def test_partial_run_says_what_is_missing(tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_text(SUITE)
    store = tmp_path / "p.sqlite"
    cells = load_suite(suite).cells
    # store only the categorical cells: the gaussian1d ones are "still running"
    run_suite(suite, store=store, progress=False)
    import sqlite3

    with sqlite3.connect(store) as db:
        db.execute("DELETE FROM cells WHERE task = 'gaussian1d'")
    report = build_report("tiny", store, tmp_path / "reports")
    assert len(report.missing) == sum(c.task == "gaussian1d" for c in cells)
    assert "not stored yet" in report.html.read_text()


def _embedded_pngs(html: str) -> list[np.ndarray]:
    import base64

    return [matplotlib.image.imread(io.BytesIO(base64.b64decode(b)), format="png")
            for b in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]


def test_report_renders_in_headless_chromium(tiny_run):
    tmp, store = tiny_run
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs chromium (.ci/run); it is missing")
        pytest.skip("chromium not installed")
    report = build_report("tiny", store, tmp / "reports")
    images = _embedded_pngs(report.html.read_text())
    assert len(images) == len(report.figures)
    for img in images:  # nothing blank: every figure has more than one colour
        assert img.reshape(-1, img.shape[-1]).std(0).max() > 0.01
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp / 'chrome-profile'}", "--virtual-time-budget=10000"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", report.html.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    n = len(report.figures)
    assert f'data-figures="{n}/{n}"' in dom, dom[:500]
    shot = tmp / "shot.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1280,2000",
                    report.html.resolve().as_uri()], capture_output=True, timeout=120)
    pixels = matplotlib.image.imread(shot)
    assert pixels.reshape(-1, pixels.shape[-1]).std(0).max() > 0.01


def test_cli_report_and_ask_list(tiny_run, capsys):
    tmp, store = tiny_run
    assert cli.main(["report", "tiny", "--store", str(store), "--out-dir",
                     str(tmp / "r2")]) == 0
    assert "index.html" in capsys.readouterr().out
    assert cli.main(["ask", "--list"]) == 0
    out = capsys.readouterr().out
    for name in QUESTIONS:
        assert name in out
    assert cli.main(["ask", "no-such-question"]) == 2


@pytest.mark.parametrize("name", ["smoothing-limit", "differentiable-d", "separate-batches"])
def test_fast_questions_give_data_driven_verdicts(name, tmp_path):
    answer = ask(name)
    paths = save(answer, tmp_path)
    assert answer.verdict and all(p.exists() for p in paths.values())
    numbers = re.findall(r"\d+\.\d+", answer.verdict)
    assert numbers, "a verdict states its numbers"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["learned-variance", "discrete-outputs", "saturating-loss"])
def test_training_questions(name, tmp_path):
    answer = ask(name)
    save(answer, tmp_path)
    assert re.findall(r"\d+\.\d+", answer.verdict)


def test_question_files_are_included_in_the_report(tiny_run):
    tmp, store = tiny_run
    out = tmp / "with-questions"
    save(ask("separate-batches"), out / "questions")
    report = build_report("tiny", store, out)
    html = report.html.read_text()
    assert "separate-batches" in html and "Verdict" in html
    assert "../questions/separate-batches.png" in report.markdown.read_text()
    assert Path(out / "questions" / "separate-batches.png").exists()
