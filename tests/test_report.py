"""Reports: tables, figures, a partial run, rendering in headless Chromium."""

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

from gangrad import cli, questions
from gangrad.report import build_report
from gangrad.report.tables import summary_table
from gangrad.runner import load_suite, run_suite


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


def test_partial_run_says_what_is_missing(tiny, tmp_path):
    suite = tiny
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


def test_cli_report(tiny_run, capsys):
    tmp, store = tiny_run
    assert cli.main(["report", "tiny", "--store", str(store), "--out-dir",
                     str(tmp / "r2")]) == 0
    assert "index.html" in capsys.readouterr().out


def test_question_files_are_included_in_the_report(tiny_run):
    tmp, store = tiny_run
    out = tmp / "with-questions"
    questions.save(questions.ask("separate-batches"), out / "questions")
    report = build_report("tiny", store, out)
    html = report.html.read_text()
    assert "separate-batches" in html and "Verdict" in html
    assert "../questions/separate-batches.png" in report.markdown.read_text()
    assert Path(out / "questions" / "separate-batches.png").exists()


def test_sample_pictures_use_each_cells_task_parameters(tmp_path, monkeypatch):
    """A suite that changes a task's parameters (20 classes) draws its samples with them."""
    from gangrad.report import figures
    from gangrad.runner import Store, tidy
    from gangrad.tasks import Categorical

    suite = tmp_path / "wide.toml"
    suite.write_text('name = "wide"\n[grad_stats]\nat_steps = [0]\nreplicates = 4\n'
                     'batch_size = 4\nbootstrap = 10\ntiming = false\n'
                     'reference_replicates = 4\n[[tasks]]\nkey = "categorical"\n'
                     'params = { classes = 20 }\ntrain = { steps = 2, eval_every = 2, '
                     'eval_samples = 50 }\nestimators = ["straight_through"]\n')
    store = tmp_path / "w.sqlite"
    run_suite(suite, store=store, progress=False)
    drawn = []
    real = Categorical.render

    def spy(self, x, path):
        drawn.append((self.classes, tuple(x.shape)))
        return real(self, x, path)

    monkeypatch.setattr(Categorical, "render", spy)
    with Store(store) as db:
        cells = db.cells("wide")
        data = figures.RunData(tidy(db.metrics("wide"), cells), cells, db.samples("wide"))
    assert figures.sample_grid(data) is not None
    assert drawn == [(20, (50, 1, 20))]
