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

__all__ = ["Report", "build_report"]


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


def _missing(info: dict, stored_ids: set[str]) -> list[str]:
    """Labels of the suite's cells that the store does not hold yet."""
    from gangrad.runner import SuiteError, parse_suite

    if not info.get("suite_text"):
        return []
    try:
        suite = parse_suite(info["suite_text"], info["suite"])
    except SuiteError:
        return []
    return [c.label for c in suite.cells if c.cell_id not in stored_ids]


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
        run_data = RunData(tidy(db.metrics(run), cells), cells, db.samples(run))
    metrics = run_data.metrics
    directory = Path(out_dir) / run
    (directory / "figures").mkdir(parents=True, exist_ok=True)
    (directory / "tables").mkdir(parents=True, exist_ok=True)
    missing = _missing(info, set(cells["cell_id"]))
    report = Report(run, directory, directory / "index.html", directory / "report.md",
                    missing=missing, stored=len(cells),
                    expected=int(info.get("expected_cells") or len(cells)))

    summary = summary_table(metrics, cells)
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


