"""Tables of a run: final training quality per estimator with intervals, ranks and ties,
and gradient statistics aggregated over seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.stats

from gangrad import tasks

__all__ = ["grad_table", "mean_ci", "primary_metric", "summary_table"]


def mean_ci(values: pd.Series | np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval across seeds (``nan`` half-width for one seed)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if len(v) < 2:
        return m, math.nan, math.nan
    half = float(scipy.stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / len(v) ** 0.5)
    return m, m - half, m + half


def primary_metric(task_key: str) -> tuple[str, bool]:
    """The task's headline metric and whether higher is better."""
    cls = tasks.REGISTRY.get(task_key)
    name, higher = next(iter(cls.metrics.items()))
    return name, higher


def summary_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per task, each estimator's final value of the headline metric across seeds.

    ``rank`` orders by the mean; ``tie`` marks estimators whose interval overlaps the
    best one's (the data do not separate them from the best).
    """
    train = metrics[metrics["kind"] == "train"]
    rows = []
    for task_key, tdf in train.groupby("task", sort=True):
        name, higher = primary_metric(task_key)
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
        for col in ("bias", "variance", "mse", "snr", "cosine", "sign_agreement", "time_ms",
                    "peak_mem_mb", "f_evals", "var_x_time"):
            if col in sdf:
                m, lo, hi = mean_ci(sdf[col])
                row[col], row[col + "_lo"], row[col + "_hi"] = m, lo, hi
        rows.append(row)
    return pd.DataFrame(rows)
