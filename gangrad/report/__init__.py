"""Reports of a stored run: ``reports/RUN/index.html`` (one self-contained file, figures
embedded), ``reports/RUN/report.md`` (figures beside it) and the tables as CSV.

::

    from gangrad.report import build_report
    path = build_report("quick")        # works on a partial or still-running run

A partial run is reported as it stands, with the cells still missing listed at the top.
"""

from __future__ import annotations

import base64
import html
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gangrad.report.figures import FIGURES, png_bytes
from gangrad.report.tables import grad_table, summary_table

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
    import tempfile

    from gangrad.runner.suite import SuiteError, load_suite

    if not info.get("suite_text"):
        return []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{info['suite']}.toml"
        path.write_text(info["suite_text"])
        try:
            suite = load_suite(path)
        except SuiteError:
            return []
    return [c.label for c in suite.cells if c.cell_id not in stored_ids]


def _fmt(v: object) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.4g}"
    return str(v)


def _summary_view(summary: pd.DataFrame) -> pd.DataFrame:
    if summary.empty:
        return summary
    view = summary[["task", "rank", "estimator", "metric", "tie", "seeds"]].copy()
    view["final value [95% CI]"] = summary.apply(
        lambda r: f"{_fmt(r['mean'])} [{_fmt(r['ci_lo'])}, {_fmt(r['ci_hi'])}]", axis=1)
    view["direction"] = summary["higher_is_better"].map({True: "higher", False: "lower"})
    for col, name in (("grad_bias", "grad bias"), ("grad_variance", "grad variance"),
                      ("grad_cosine", "cosine"), ("time_ms", "ms/estimate")):
        view[name] = summary[col].map(_fmt)
    return view


def _md_table(df: pd.DataFrame) -> str:
    cells = [[_fmt(v).replace("|", "\\|") for v in row] for row in df.itertuples(index=False)]
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    return "\n".join([head, rule] + ["| " + " | ".join(r) + " |" for r in cells])


def _status_line(cells: pd.DataFrame) -> str:
    counts = cells["status"].value_counts().to_dict() if len(cells) else {}
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "diverged", "failed"))


def build_report(run: str, store: str | Path | None = None,
                 out_dir: str | Path = "reports") -> Report:
    """Write the report of ``run``; returns where it went and what is missing."""
    from gangrad.runner.store import Store

    with Store(store) as db:
        info = db.run_info(run)
        metrics = db.metrics(run)
        cells = db.cells(run)
        samples = db.samples(run)
    directory = Path(out_dir) / run
    (directory / "figures").mkdir(parents=True, exist_ok=True)
    (directory / "tables").mkdir(parents=True, exist_ok=True)
    missing = _missing(info, set(cells["cell_id"]))
    report = Report(run, directory, directory / "index.html", directory / "report.md",
                    missing=missing, stored=len(cells),
                    expected=int(info.get("expected_cells") or len(cells)))

    summary = summary_table(metrics)
    grads = grad_table(metrics)
    summary.to_csv(directory / "tables" / "summary.csv", index=False)
    grads.to_csv(directory / "tables" / "gradient_stats.csv", index=False)
    cells.drop(columns=["config"]).to_csv(directory / "tables" / "cells.csv", index=False)

    figures: list[tuple[str, str, bytes]] = []
    for name, make in FIGURES.items():
        made = make(metrics, samples, run) if len(metrics) else None
        if made is None:
            continue
        fig, caption = made
        data = png_bytes(fig)
        (directory / "figures" / f"{name}.png").write_bytes(data)
        figures.append((name, caption, data))
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
    view = _summary_view(summary)
    _write_markdown(report, header, missing_text, view, failed, figures, questions)
    _write_html(report, header, missing_text, view, failed, figures, questions)
    (directory / "report.json").write_text(json.dumps(
        {"run": run, "stored": report.stored, "expected": report.expected,
         "missing": missing, "figures": report.figures}, indent=2) + "\n")
    return report


def _questions(folder: Path) -> list[dict]:
    """Answers written by ``gangrad ask`` beside the report (``questions/NAME.json``)."""
    out = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        record = json.loads(path.read_text())
        png = path.with_suffix(".png")
        if png.exists():
            record["png"] = png
            out.append(record)
    return out


def _write_markdown(report: Report, header: str, missing_text: str, view: pd.DataFrame,
                    failed: pd.DataFrame, figures, questions) -> None:
    lines = [f"# gangrad report: {report.run}", "", header, ""]
    if missing_text:
        lines += [f"**{missing_text}**", ""]
    lines += ["## Summary", "",
              "Estimators ranked per task by the final value of the task's headline metric "
              "(mean over seeds, 95% t-interval); `tie` marks an interval that overlaps the "
              "best one's. Gradient columns are at the last checkpoint.", ""]
    lines += [_md_table(view) if not view.empty else "(no finished cells)", ""]
    if len(failed):
        lines += ["## Cells that did not finish cleanly", "", _md_table(failed),
                  ""]
    for name, caption, _ in figures:
        lines += [f"## {name.replace('_', ' ').capitalize()}", "",
                  f"![{name}](figures/{name}.png)", "", caption, ""]
    if questions:
        lines += ["## Questions", "",
                  "Answered by `gangrad ask NAME` (each its own experiment; verdicts computed "
                  "from the data).", ""]
        for q in questions:
            mode = "full" if q.get("settings", {}).get("full") else "quick"
            lines += [f"### {q['name']} ({mode})", "", f"*{q['question']}* ({q['origin']})", "",
                      f"**Verdict.** {q['verdict']}", "",
                      f"![{q['name']}](../questions/{q['png'].name})", "", q["caption"], ""]
    lines += ["Tables: `tables/summary.csv`, `tables/gradient_stats.csv`, `tables/cells.csv`."]
    report.markdown.write_text("\n".join(lines) + "\n")


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
table { border-collapse: collapse; font-size: 12px; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; }
th { background: #f1f1f1; }
tr.best td { font-weight: 600; }
figure { margin: 2em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #444; max-width: 1000px; }
.warn { background: #fff4d6; padding: 0.6em; border-left: 4px solid #e0a800; }
"""


# Marks the page with how many embedded figures decoded (read by the rendering test) and
# warns the reader if one did not.
LOAD_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.documentElement.setAttribute('data-figures', ok + '/' + imgs.length);
  if (ok < imgs.length) {
    var p = document.createElement('p'); p.className = 'warn';
    p.textContent = (imgs.length - ok) + ' figure(s) failed to load.';
    document.body.insertBefore(p, document.body.firstChild);
  }
});
</script>"""


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, r in df.iterrows():
        cls = ' class="best"' if r.get("tie") == "best" else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r)
                    + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _write_html(report: Report, header: str, missing_text: str, view: pd.DataFrame,
                failed: pd.DataFrame, figures, questions) -> None:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>gangrad report: "
             f"{html.escape(report.run)}</title><style>{CSS}</style></head><body>",
             f"<h1>gangrad report: {html.escape(report.run)}</h1>",
             f"<p>{html.escape(header)}</p>"]
    if missing_text:
        parts.append(f"<p class='warn'>{html.escape(missing_text)}</p>")
    parts += ["<h2>Summary</h2><p>Estimators ranked per task by the final value of the task's "
              "headline metric (mean over seeds, 95% t-interval); <em>tie</em> marks an "
              "interval that overlaps the best one's. Gradient columns are at the last "
              "checkpoint.</p>",
              _html_table(view) if not view.empty else "<p>(no finished cells)</p>"]
    if len(failed):
        parts += ["<h2>Cells that did not finish cleanly</h2>", _html_table(failed)]
    for name, caption, data in figures:
        b64 = base64.b64encode(data).decode()
        parts.append(f"<figure id='{name}'><h2>{name.replace('_', ' ').capitalize()}</h2>"
                     f"<img alt='{name}' src='data:image/png;base64,{b64}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    if questions:
        parts.append("<h2>Questions</h2><p>Answered by <code>gangrad ask NAME</code> (each "
                     "its own experiment; verdicts computed from the data).</p>")
        for q in questions:
            b64 = base64.b64encode(q["png"].read_bytes()).decode()
            mode = "full" if q.get("settings", {}).get("full") else "quick"
            parts.append(
                f"<figure id='q-{html.escape(q['name'])}'><h3>{html.escape(q['name'])} ({mode})"
                f"</h3><p><em>{html.escape(q['question'])}</em> ({html.escape(q['origin'])})</p>"
                f"<p><strong>Verdict.</strong> {html.escape(q['verdict'])}</p>"
                f"<img alt='{html.escape(q['name'])}' src='data:image/png;base64,{b64}'>"
                f"<figcaption>{html.escape(q['caption'])}</figcaption></figure>")
    parts.append(LOAD_CHECK)
    parts.append("</body></html>")
    report.html.write_text("\n".join(parts))
