"""Reports of a stored run: ``reports/RUN/index.html`` (one self-contained file, figures
embedded), ``reports/RUN/report.md`` (figures beside it) and the tables as CSV.

::

    from gangrad.report import build_report
    path = build_report("quick")        # works on a partial or still-running run

A partial run is reported as it stands, with the cells still missing listed at the top.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gangrad.plotting import png_bytes
from gangrad.report.figures import FIGURES, RunData
from gangrad.report.render import efficiency_view, summary_view, write_html, write_markdown
from gangrad.report.tables import efficiency_table, grad_table, summary_table

__all__ = ["Report", "build_report", "stored_suite"]


@dataclass
class Report:
    run: str
    directory: Path
    html: Path
    markdown: Path
    figures: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stored: int = 0
    expected: int = 0


def stored_suite(info: dict):
    """The suite a run was stored from (its text is kept with the run), or ``None``."""
    from gangrad.runner import SuiteError, parse_suite

    if not info.get("suite_text"):
        return None
    try:
        return parse_suite(info["suite_text"], info["suite"])
    except SuiteError:
        return None


def _planned(suite, metrics: pd.DataFrame, cells: pd.DataFrame) -> list:
    """The cells the run's suite calls for, given what is stored (a sequential suite's
    looks included)."""
    from gangrad.runner import planned_cells

    return [] if suite is None else planned_cells(suite, metrics, cells)


def _status_line(cells: pd.DataFrame) -> str:
    counts = cells["status"].value_counts().to_dict() if len(cells) else {}
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "diverged", "failed"))


def build_report(run: str, store: str | Path | None = None,
                 out_dir: str | Path = "reports") -> Report:
    """Write the report of ``run``; returns where it went and what is missing."""
    from gangrad.runner import Store, tidy

    with Store(store, readonly=True) as db:
        info = db.run_info(run)
        cells = db.cells(run)
        raw = db.metrics(run)
        run_data = RunData(tidy(raw, cells), cells, db.samples(run))
    metrics = run_data.metrics
    directory = Path(out_dir) / run
    (directory / "figures").mkdir(parents=True, exist_ok=True)
    (directory / "tables").mkdir(parents=True, exist_ok=True)
    suite = stored_suite(info)
    plan = _planned(suite, raw, cells)
    stored_ids = set(cells["cell_id"])
    missing = [c.label for c in plan if c.cell_id not in stored_ids]
    report = Report(run, directory, directory / "index.html", directory / "report.md",
                    missing=missing, stored=len(cells),
                    expected=len(plan) if plan else int(info.get("expected_cells")
                                                        or len(cells)))

    level = suite.level if suite is not None else 0.95
    summary = summary_table(metrics, cells, level)
    grads = grad_table(metrics)
    summary.to_csv(directory / "tables" / "summary.csv", index=False)
    grads.to_csv(directory / "tables" / "gradient_stats.csv", index=False)
    cells.drop(columns=["config"]).to_csv(directory / "tables" / "cells.csv", index=False)

    figures: list[tuple[str, str, bytes]] = []
    for name, make in FIGURES.items():
        made = make(run_data) if len(metrics) else None
        if made is None:
            continue
        fig, caption = made
        png = png_bytes(fig)
        (directory / "figures" / f"{name}.png").write_bytes(png)
        figures.append((name, caption, png))
    report.figures = [n for n, _, _ in figures]

    failed = cells[cells["status"] != "ok"][["label", "task", "seed", "status", "diverged_at"]]
    header = (f"Run `{run}` (suite `{info['suite']}`): {len(cells)} of {report.expected} cells "
              f"stored ({_status_line(cells)}); gangrad {info.get('gangrad')}, torch "
              f"{info.get('torch')}, device {info.get('device')}, commit "
              f"{(info.get('git_commit') or 'unknown')[:10]}; written "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")
    if suite is not None and suite.sequential is not None:
        from gangrad.runner.suite import ALPHA

        seq = suite.sequential
        seeds = cells.groupby("task")["seed"].nunique().to_dict() if len(cells) else {}
        header += (f" Sequential allocation: {seq.first} seeds, then {seq.batch} more at each "
                   f"look while a comparison with the best is undetermined, up to "
                   f"{seq.max_seeds} ({seq.looks} looks at most); every decision is made at "
                   f"level α/{seq.looks} = {1 - seq.level:.4g} (Bonferroni over the looks, "
                   f"α = {ALPHA:g} in all). Seeds per task: "
                   + ", ".join(f"{t} {n}" for t, n in sorted(seeds.items())) + ".")
    missing_text = ""
    if missing:
        shown = ", ".join(missing[:20]) + (f", … ({len(missing) - 20} more)"
                                           if len(missing) > 20 else "")
        missing_text = f"Incomplete: {len(missing)} cells not stored yet: {shown}."

    questions = _questions(Path(out_dir) / "questions")
    reproductions = _questions(Path(out_dir) / "reproductions")
    view = summary_view(summary)
    efficiency = efficiency_view(efficiency_table(grads))
    write_markdown(report, header, missing_text, view, failed, figures, questions, efficiency,
                   reproductions)
    write_html(report, header, missing_text, view, failed, figures, questions, efficiency,
               reproductions)
    (directory / "report.json").write_text(json.dumps(
        {"run": run, "stored": report.stored, "expected": report.expected,
         "missing": missing, "figures": report.figures}, indent=2) + "\n")
    return report


def _questions(folder: Path) -> list[dict]:
    """Records saved beside the report with their figures: answers of ``gangrad ask``
    (``questions/NAME.json``) and results of ``gangrad reproduce``
    (``reproductions/NAME.json``)."""
    out = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        record = json.loads(path.read_text())
        png = path.with_suffix(".png")
        if png.exists():
            record["png"] = png
            out.append(record)
    return out


