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


def summary_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per task, each estimator's final value of the headline metric across seeds.

    ``rank`` orders by the mean; ``tie`` marks estimators whose interval overlaps the
    best one's (the data do not separate them from the best).
    """
    train = metrics[metrics["kind"] == "train"]
    rows = []
    for task_key, tdf in train.groupby("task", sort=True):
        name, higher = tasks.headline_metric(task_key)
        final = tdf[tdf["name"] == name]
        last = final.loc[final.groupby("cell_id")["step"].idxmax()]
        grad = metrics[(metrics["kind"] == "grad") & (metrics["task"] == task_key)
                       & (metrics["layer"] == "total")]
        for label, ldf in last.groupby("label"):
            m, lo, hi = mean_ci(ldf["value"])
            g = grad[grad["label"] == label]
            g_end = g[g["step"] == g["step"].max()] if len(g) else g
            rows.append({"task": task_key, "estimator": label, "metric": name,
                         "higher_is_better": higher, "mean": m, "ci_lo": lo, "ci_hi": hi,
                         "seeds": len(ldf), "step": int(ldf["step"].max()),
                         "grad_variance": g_end[g_end["name"] == "variance"]["value"].mean(),
                         "grad_bias": g_end[g_end["name"] == "bias"]["value"].mean(),
                         "grad_cosine": g_end[g_end["name"] == "cosine"]["value"].mean(),
                         "time_ms": g_end[g_end["name"] == "time_ms"]["value"].median()})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    out = []
    for _, tdf in df.groupby("task", sort=True):
        higher = bool(tdf["higher_is_better"].iloc[0])
        tdf = tdf.sort_values("mean", ascending=not higher).reset_index(drop=True)
        tdf["rank"] = np.arange(1, len(tdf) + 1)
        best = tdf.iloc[0]
        lo_b, hi_b = best["ci_lo"], best["ci_hi"]
        tie = []
        for i, r in tdf.iterrows():
            if i == 0:
                tie.append("best")
            elif any(math.isnan(v) for v in (r["ci_lo"], r["ci_hi"], lo_b, hi_b)):
                tie.append("?")
            else:
                tie.append("tie" if r["ci_lo"] <= hi_b and lo_b <= r["ci_hi"] else "")
        tdf["tie"] = tie
        out.append(tdf)
    return pd.concat(out, ignore_index=True)


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
