"""Tables of a run: final training quality per estimator with intervals, ranks and ties,
and gradient statistics aggregated over seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gangrad import tasks
from gangrad.measure import STATISTICS
from gangrad.stats import mean_ci

__all__ = ["grad_table", "summary_table"]


def _outcomes(metrics: pd.DataFrame, cells: pd.DataFrame | None) -> pd.DataFrame:
    """One row per cell: task, label, status (from the cells table where given: failed
    cells store no metrics)."""
    source = cells if cells is not None else metrics
    out = source[["cell_id", "task", "label"]].copy()
    out["status"] = source["status"] if "status" in source else "ok"
    return out.drop_duplicates("cell_id")


def _outcome_note(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = [f"{what} in {counts[what]}/{total} seeds" for what in ("diverged", "failed")
             if counts.get(what)]
    return "; ".join(parts)


def summary_table(metrics: pd.DataFrame, cells: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per task, each estimator's final value of the headline metric across the seeds that
    finished sound (``ok``): a diverged or failed cell is never ranked on its last value
    before the fault; ``seeds`` counts the sound ones, ``outcome`` says how many
    diverged or failed. An estimator with no sound seed is listed last, unranked.

    ``rank`` orders by the mean; ``tie`` marks estimators whose interval overlaps the
    best one's (the data do not separate them from the best).
    """
    outcomes = _outcomes(metrics, cells)
    ok_cells = set(outcomes.loc[outcomes["status"] == "ok", "cell_id"])
    train = metrics[(metrics["kind"] == "train") & metrics["cell_id"].isin(ok_cells)]
    rows = []
    for (task_key, label), odf in outcomes.groupby(["task", "label"], sort=True):
        name, higher = tasks.headline_metric(task_key)
        final = train[(train["task"] == task_key) & (train["label"] == label)
                      & (train["name"] == name)]
        last = final.loc[final.groupby("cell_id")["step"].idxmax()] if len(final) else final
        g = metrics[(metrics["kind"] == "grad") & (metrics["task"] == task_key)
                    & (metrics["layer"] == "total") & (metrics["label"] == label)]
        g_end = g[g["step"] == g["step"].max()] if len(g) else g
        m, lo, hi = mean_ci(last["value"])
        rows.append({"task": task_key, "estimator": label, "metric": name,
                     "higher_is_better": higher, "mean": m, "ci_lo": lo, "ci_hi": hi,
                     "seeds": len(last), "outcome": _outcome_note(
                         odf["status"].value_counts().to_dict()),
                     "step": int(last["step"].max()) if len(last) else None,
                     "grad_variance": g_end[g_end["name"] == "variance"]["value"].mean(),
                     "grad_bias": g_end[g_end["name"] == "bias"]["value"].mean(),
                     "grad_cosine": g_end[g_end["name"] == "cosine"]["value"].mean(),
                     "time_ms": g_end[g_end["name"] == "time_ms"]["value"].median()})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    return pd.concat([_rank(tdf) for _, tdf in df.groupby("task", sort=True)],
                     ignore_index=True)


def _rank(tdf: pd.DataFrame) -> pd.DataFrame:
    higher = bool(tdf["higher_is_better"].iloc[0])
    tdf = tdf.sort_values("mean", ascending=not higher, na_position="last")
    tdf = tdf.reset_index(drop=True)
    ranked = tdf["seeds"] > 0
    tdf["rank"] = np.where(ranked, np.arange(1, len(tdf) + 1), np.nan)
    best = tdf.iloc[0]
    lo_b, hi_b = best["ci_lo"], best["ci_hi"]
    tie = []
    for i, r in tdf.iterrows():
        if not ranked[i]:
            tie.append("")
        elif i == 0:
            tie.append("best")
        elif any(math.isnan(v) for v in (r["ci_lo"], r["ci_hi"], lo_b, hi_b)):
            tie.append("?")
        else:
            tie.append("tie" if r["ci_lo"] <= hi_b and lo_b <= r["ci_hi"] else "")
    tdf["tie"] = tie
    return tdf


def grad_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Gradient statistics of the ``total`` layer per task, estimator and checkpoint step,
    averaged over seeds (with the across-seed interval of the mean)."""
    g = metrics[(metrics["kind"] == "grad") & (metrics["layer"] == "total")]
    if g.empty:
        return pd.DataFrame()
    wide = g.pivot_table(index=["task", "label", "seed", "step"], columns="name",
                         values="value").reset_index()
    rows = []
    for (task_key, label, step), sdf in wide.groupby(["task", "label", "step"]):
        row = {"task": task_key, "estimator": label, "step": step, "seeds": len(sdf)}
        for col in (s.name for s in STATISTICS if s.summary):
            if col in sdf:
                m, lo, hi = mean_ci(sdf[col])
                row[col], row[col + "_lo"], row[col + "_hi"] = m, lo, hi
        rows.append(row)
    return pd.DataFrame(rows)
