"""The report's pages: ``report.md`` (figures beside it) and ``index.html`` (one
self-contained file, figures embedded), from the same summary, figures and answers."""

from __future__ import annotations

import base64
import html
import math
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from gangrad.report import Report

__all__ = ["efficiency_view", "summary_view", "write_html", "write_markdown"]

SUMMARY_NOTE = ("Estimators ranked per task by the final value of the task's headline metric "
                "over the seeds that finished sound (mean, 95% t-interval inside the "
                "metric's range); seeds that diverged or failed are counted and never "
                "ranked on a value from before the fault. 'vs best' compares each estimator "
                "with the best by paired differences over their common seeds (same initial "
                "networks, data and latents): better or worse (paired t-test), equivalent "
                "within the task's practical margin (two one-sided tests), or undetermined "
                "with the seeds that would likely decide it; the decisions are Holm-adjusted "
                "over the task's comparisons, the intervals of the differences are each "
                "95% on its own. 'converged' is the convergence check: the paired change of "
                "the metric from the evaluation nearest T/2 to the last one, T, lies within "
                "the task's margin by two one-sided tests (converged), differs from 0 (still "
                "moving), or neither (unsettled); an estimator that is still moving or "
                "unsettled, has a faulty seed, fewer than two sound seeds or an infinite "
                "interval is not ranked and cannot be the best, and its row says why. "
                "Values are compared at equal G steps; 'f evals/row' is what each G step "
                "costs in calls of D per row, so an estimator that spends more per step is "
                "ahead in compute (the cost table below ranks at equal f-evaluations and "
                "equal time). Gradient columns are at the last checkpoint. To decide "
                "what is undetermined, run the suite with sequential allocation (gangrad run "
                "SUITE --until-decided MAX adds seeds look by look and decides every look at "
                "level 0.05/K over its K looks); adding seeds by hand (--seeds N) and "
                "reading the decisions again is a second look that the stated level does "
                "not cover.")


EFFICIENCY_NOTE = ("Gradient estimators at equal cost, per task at its last checkpoint "
                   "(mean over seeds): variance × f-evaluations is the variance left after "
                   "spending the same number of calls of f (the discriminator), variance × "
                   "time the variance left after the same time; lower is better, ranked by "
                   "the first. Deterministic estimators have variance 0; a biased estimator "
                   "(the straight-through family, relaxations) keeps its bias whatever it "
                   "spends, so read the bias (‖E g − g*‖ against the task's reference) "
                   "beside it.")


def efficiency_view(eff: pd.DataFrame) -> pd.DataFrame:
    """The printed cost-efficiency table: one row per task and estimator."""
    if eff.empty:
        return eff
    view = eff[["task", "estimator"]].copy()
    view["f evals/row"] = eff["f_evals"].map(_fmt)
    view["bias"] = eff["bias"].map(_fmt) if "bias" in eff else "–"
    view["variance"] = eff["variance"].map(_fmt)
    view["var × evals"] = eff["var_x_evals"].map(_fmt)
    view["rank (evals)"] = eff["rank_var_x_evals"].map(lambda r: "–" if r != r else str(int(r)))
    view["var × ms"] = eff["var_x_time"].map(_fmt) if "var_x_time" in eff else "–"
    view["rank (time)"] = (eff["rank_var_x_time"].map(lambda r: "–" if r != r else str(int(r)))
                           if "rank_var_x_time" in eff else "–")
    return view


def _fmt(v: object) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.4g}"
    return str(v)


def summary_view(summary: pd.DataFrame) -> pd.DataFrame:
    """The printed summary: rank, value with its interval, seeds, the comparison with the
    best (outcome, paired difference with its interval) and the gradient columns."""
    if summary.empty:
        return summary
    view = summary[["task", "estimator", "metric"]].copy()
    view.insert(1, "rank", summary["rank"].map(lambda r: "–" if r != r else str(int(r))))
    view["final value [95% CI]"] = summary.apply(
        lambda r: f"{_fmt(r['mean'])} [{_fmt(r['ci_lo'])}, {_fmt(r['ci_hi'])}]", axis=1)
    view["direction"] = summary["higher_is_better"].map({True: "higher", False: "lower"})
    view["seeds"] = summary.apply(lambda r: f"{r['seeds']}/{r['cells']}", axis=1)
    if "converged" in summary:
        view["converged (T/2 → T)"] = summary.apply(_convergence_cell, axis=1)
    view["vs best"] = summary["outcome"]
    view["difference to best [95% CI]"] = summary.apply(
        lambda r: "" if r["vs_best"] != r["vs_best"] else
        f"{_fmt(r['vs_best'])} [{_fmt(r['vs_best_lo'])}, {_fmt(r['vs_best_hi'])}]", axis=1)
    for col, name in (("grad_bias", "grad bias"), ("grad_variance", "grad variance"),
                      ("grad_cosine", "cosine"), ("f_evals", "f evals/row"),
                      ("time_ms", "ms/estimate")):
        view[name] = summary[col].map(_fmt)
    return view


def _convergence_cell(r: pd.Series) -> str:
    if r["converged"] == "unchecked":
        return "unchecked"
    return (f"{r['converged']}: {_fmt(r['change'])} [{_fmt(r['change_lo'])}, "
            f"{_fmt(r['change_hi'])}] from step {r['half_step']}")


def _md_table(df: pd.DataFrame) -> str:
    cells = [[_fmt(v).replace("|", "\\|") for v in row] for row in df.itertuples(index=False)]
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    return "\n".join([head, rule] + ["| " + " | ".join(r) + " |" for r in cells])


REPRODUCTIONS_NOTE = ("Published numbers beside gangrad's measurement of them, run by "
                      "`gangrad reproduce NAME`. Verdict: agrees, equivalent to the "
                      "reference within the margin the reproduction declares (two one-sided "
                      "tests, the reference's own standard error included); differs, the 95% "
                      "interval of the difference lies outside the margin; inconclusive, "
                      "neither (both Holm-adjusted over a table's rows); scaled, a cut-down "
                      "protocol compared only as a trend; comparison rows have no reference.")


def reproduction_rows(record: dict) -> pd.DataFrame:
    """A saved reproduction's rows as a table: published ± error, measured [interval]."""
    def published(r: dict) -> str:
        if r["published"] is None:
            return "—"
        err = r.get("published_error")
        return _fmt(r["published"]) + (f" ± {_fmt(err)}" if err is not None else "")

    return pd.DataFrame({
        "quantity": [r["quantity"] for r in record["rows"]],
        "setting": [r["setting"] for r in record["rows"]],
        "published": [published(r) for r in record["rows"]],
        "measured": [r["measured"] for r in record["rows"]],
        "95% interval": [f"[{_fmt(r['lo'])}, {_fmt(r['hi'])}]" for r in record["rows"]],
        "margin": ["—" if r.get("margin") is None else f"±{_fmt(r['margin'])}"
                   for r in record["rows"]],
        "verdict": [_verdict(r) for r in record["rows"]],
    })


def _verdict(row: dict) -> str:
    """A saved row's verdict (records written before the verdict rule: yes/no)."""
    if "verdict" not in row:
        return {True: "yes", False: "no", None: "comparison"}[row["agrees"]]
    return {"scaled": "scaled (trend)", None: "comparison"}.get(row["verdict"],
                                                                 row["verdict"])


def write_markdown(report: Report, header: str, missing_text: str, view: pd.DataFrame,
                    failed: pd.DataFrame, figures, questions,
                    efficiency: pd.DataFrame | None = None, reproductions=()) -> None:
    lines = [f"# gangrad report: {report.run}", "", header, ""]
    if missing_text:
        lines += [f"**{missing_text}**", ""]
    lines += ["## Summary", "",
              SUMMARY_NOTE, ""]
    lines += [_md_table(view) if not view.empty else "(no finished cells)", ""]
    if efficiency is not None and not efficiency.empty:
        lines += ["## Cost at equal budget", "", EFFICIENCY_NOTE, "", _md_table(efficiency),
                  ""]
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
                      f"**Answer** ({q.get('outcome', 'undetermined')}). "
                      f"{q.get('answer') or q['verdict']}", "",
                      f"[The numbers, the convergence check and what would change the answer]"
                      f"(../questions/{q['name']}.md)", "",
                      f"![{q['name']}](../questions/{q['png'].name})", "", q["caption"], ""]
    if reproductions:
        lines += ["## Reproductions", "", REPRODUCTIONS_NOTE, ""]
        for r in reproductions:
            mode = "full" if r.get("settings", {}).get("full") else "quick"
            lines += [f"### {r['name']} ({mode})", "", f"*{r['title']}* ({r['source']})", "",
                      f"**Summary.** {r['summary']}", "", _md_table(reproduction_rows(r)), "",
                      f"![{r['name']}](../reproductions/{r['png'].name})", ""]
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
        cls = ' class="best"' if r.get("vs best") == "best" else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r)
                    + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_html(report: Report, header: str, missing_text: str, view: pd.DataFrame,
                failed: pd.DataFrame, figures, questions,
                efficiency: pd.DataFrame | None = None, reproductions=()) -> None:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>gangrad report: "
             f"{html.escape(report.run)}</title><style>{CSS}</style></head><body>",
             f"<h1>gangrad report: {html.escape(report.run)}</h1>",
             f"<p>{html.escape(header)}</p>"]
    if missing_text:
        parts.append(f"<p class='warn'>{html.escape(missing_text)}</p>")
    parts += [f"<h2>Summary</h2><p>{html.escape(SUMMARY_NOTE)}</p>",
              _html_table(view) if not view.empty else "<p>(no finished cells)</p>"]
    if efficiency is not None and not efficiency.empty:
        parts += [f"<h2>Cost at equal budget</h2><p>{html.escape(EFFICIENCY_NOTE)}</p>",
                  _html_table(efficiency)]
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
                f"<p><strong>Answer</strong> ({html.escape(q.get('outcome', 'undetermined'))})."
                f" {html.escape(q.get('answer') or q['verdict'])}</p>"
                f"<details><summary>The numbers</summary><p>{html.escape(q['verdict'])}</p>"
                f"</details>"
                f"<img alt='{html.escape(q['name'])}' src='data:image/png;base64,{b64}'>"
                f"<figcaption>{html.escape(q['caption'])}</figcaption></figure>")
    if reproductions:
        parts.append(f"<h2>Reproductions</h2><p>{html.escape(REPRODUCTIONS_NOTE)}</p>")
        for r in reproductions:
            b64 = base64.b64encode(r["png"].read_bytes()).decode()
            mode = "full" if r.get("settings", {}).get("full") else "quick"
            parts.append(
                f"<figure id='r-{html.escape(r['name'])}'><h3>{html.escape(r['name'])} "
                f"({mode})</h3><p><em>{html.escape(r['title'])}</em> "
                f"({html.escape(r['source'])})</p><p><strong>Summary.</strong> "
                f"{html.escape(r['summary'])}</p>{_html_table(reproduction_rows(r))}"
                f"<img alt='{html.escape(r['name'])}' src='data:image/png;base64,{b64}'>"
                "</figure>")
    parts.append(LOAD_CHECK)
    parts.append("</body></html>")
    report.html.write_text("\n".join(parts))
