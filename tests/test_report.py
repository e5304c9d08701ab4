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
from gangrad.report.tables import efficiency_table, grad_table, summary_table
from gangrad.runner import load_suite, run_suite


def test_report_files_and_tables(tiny_run):
    tmp, store = tiny_run
    report = build_report("tiny", store, tmp / "reports")
    assert report.html.exists() and report.markdown.exists()
    assert {"training", "bias_variance", "snr_cosine", "sigma_sweep", "cost",
            "samples"} <= set(report.figures)
    summary = pd.read_csv(report.directory / "tables" / "summary.csv")
    assert set(summary["task"]) == {"gaussian1d", "categorical"}
    # six steps do not converge: at most one best per task, and every estimator left
    # unranked says why
    assert (summary.groupby("task")["outcome"].apply(lambda t: (t == "best").sum()) <= 1).all()
    unranked = summary.loc[~summary["ranked"], "outcome"]
    assert unranked.str.contains("not ranked: |diverged|failed").all()
    assert summary["rank"].isna().eq(~summary["ranked"]).all()
    md = report.markdown.read_text()
    for name in report.figures:
        assert f"figures/{name}.png" in md
        assert (report.directory / "figures" / f"{name}.png").stat().st_size > 1000
    assert not report.missing
    grads = pd.read_csv(report.directory / "tables" / "gradient_stats.csv")
    assert {"f_evals", "var_x_evals", "rank_var_x_evals", "rank_var_x_time"} <= set(grads)
    assert "## Cost at equal budget" in md and "var × evals" in md


def test_gradient_table_intervals_stay_inside_each_statistics_range():
    values = {"bias": [1e-5, 3e-3, 1e-6], "variance": [0.0, 4.0, 0.1],
              "cosine": [0.999, 0.2, 0.9999], "sign_agreement": [0.99, 1.0, 0.4]}
    metrics = pd.DataFrame([
        {"kind": "grad", "layer": "total", "task": "t", "label": "e", "seed": seed, "step": 0,
         "name": name, "value": v[seed]} for name, v in values.items() for seed in range(3)])
    row = grad_table(metrics).iloc[0]
    assert row["bias_lo"] == 0.0 and row["variance_lo"] == 0.0  # t-interval clipped at 0
    assert row["cosine_hi"] == 1.0 and row["sign_agreement_hi"] == 1.0
    assert row["cosine_lo"] > -1.0 and row["bias_hi"] > max(values["bias"]) / 3


def test_efficiency_ranks_variance_times_evaluations():
    estimators = (("cheap-noisy", 1, 3.0, 1.0), ("costly-quiet", 4, 0.5, 8.0),
                  ("exact", 1, 0.0, 2.0))
    metrics = pd.DataFrame([
        {"kind": "grad", "layer": "total", "task": "t", "label": e, "seed": seed, "step": step,
         "name": name, "value": value}
        for step in (0, 10) for seed in (0, 1) for e, n, v, ms in estimators
        for name, value in (("f_evals", n), ("variance", v), ("var_x_evals", v * n),
                            ("var_x_time", v * ms), ("time_ms", ms))])
    eff = efficiency_table(grad_table(metrics))
    assert list(eff["estimator"]) == ["exact", "costly-quiet", "cheap-noisy"]
    assert list(eff["rank_var_x_evals"]) == [1, 2, 3]
    assert list(eff["rank_var_x_time"]) == [1, 3, 2]  # at equal time the cheap one wins


def _rows(values: dict[str, list[float]], task="gaussian1d", name="w1") -> pd.DataFrame:
    return pd.DataFrame([{"kind": "train", "task": task, "label": label, "seed": seed,
                          "cell_id": f"{label}{seed}", "step": 10, "layer": "", "name": name,
                          "value": v, "status": "ok"}
                         for label, vs in values.items() for seed, v in enumerate(vs)])


def test_comparisons_decide_better_equivalent_and_undetermined():
    """Constructed per-seed values whose answer is known (w1, lower is better, margin
    0.05): a clear gap, a tiny one within the margin, and one too noisy to tell."""
    rng = np.random.default_rng(0)
    base = rng.normal(1.0, 0.3, 12)  # what the seeds share: paired comparisons remove it
    table = summary_table(_rows({
        "best": list(base),
        "worse": list(base + 0.5 + rng.normal(0, 0.01, 12)),
        "same": list(base + 0.001 + rng.normal(0, 0.005, 12)),
        "noisy": list(base + 0.02 + rng.normal(0, 0.3, 12)),
    })).set_index("estimator")
    assert table.loc["best", "outcome"] == "best" and table.loc["best", "rank"] == 1
    assert table.loc["worse", "outcome"] == "worse"
    assert table.loc["worse", "vs_best_lo"] > 0.45
    assert table.loc["same", "outcome"] == "equivalent"
    assert table.loc["noisy", "outcome"].startswith("undetermined (about")
    assert table.loc["noisy", "seeds_needed"] > 0
    assert (table["ci_lo"] >= 0).all(), "w1 is never below 0"


def test_paired_comparisons_decide_where_unpaired_intervals_overlap():
    """Seeds shared by both estimators make their values correlated: the paired
    difference resolves a gap the two separate intervals cannot."""
    rng = np.random.default_rng(1)
    base = rng.normal(5.0, 1.0, 8)
    table = summary_table(_rows({"a": list(base), "b": list(base - 0.3 + rng.normal(0, 0.05, 8))},
                                task="ring8", name="modes")).set_index("estimator")
    a, b = table.loc["a"], table.loc["b"]
    assert a["outcome"] == "best" and b["outcome"] == "worse"
    assert b["ci_lo"] <= a["ci_hi"], "the unpaired intervals overlap"


def test_intervals_stay_inside_the_metric_range():
    table = summary_table(_rows({"x": [0.0, 0.001, 0.02]}, task="categorical", name="kl"))
    assert table["ci_lo"].iloc[0] == 0.0


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
    from gangrad.plotting import new_figure

    out = tmp / "with-questions"
    fig, ax = new_figure()
    ax.plot([0, 1])
    answer = questions.Answer(
        "separate-batches", "Is a real-then-fake step the same as a mixed one?",
        "- difference 5e-7", {"difference": 5e-7}, pd.DataFrame({"x": [1.0]}), fig,
        "a caption", {"full": False, "seed": 0}, "a test", "agrees", 0.1,
        "Yes: the two updates are equal up to rounding.")
    questions.save(answer, out / "questions")
    report = build_report("tiny", store, out)
    html = report.html.read_text()
    assert "separate-batches" in html and "Answer" in html
    assert "Yes: the two updates are equal up to rounding." in html
    md = report.markdown.read_text()
    assert "../questions/separate-batches.png" in md and "questions/separate-batches.md" in md
    assert Path(out / "questions" / "separate-batches.png").exists()


def test_sample_pictures_use_each_cells_task_parameters(tmp_path, monkeypatch):
    """A suite that changes a task's parameters (20 classes) draws its samples with them."""
    from gangrad.report import figures
    from gangrad.runner import Store, tidy
    from gangrad.tasks import Categorical

    suite = tmp_path / "wide.toml"
    suite.write_text('name = "wide"\n[grad_stats]\nat_steps = [0]\nreplicates = 4\n'
                     'batch_size = 4\ntiming = false\n'
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
