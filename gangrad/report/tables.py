"""Tables of a run: final training quality per estimator with intervals, ranks and paired
comparisons with the best, and gradient statistics aggregated over seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gangrad.measure import STATISTICS
from gangrad.stats import TaskDecision, mean_ci, task_decisions

__all__ = ["efficiency_table", "grad_table", "summary_table"]


def summary_table(metrics: pd.DataFrame, cells: pd.DataFrame | None = None,
                  level: float = 0.95) -> pd.DataFrame:
    """Per task, each estimator's final headline metric over its sound seeds, ranked, and
    compared with the best by paired differences over common seeds, as
    :func:`gangrad.stats.task_decisions` decides: ``outcome`` is ``best``, ``worse``,
    ``equivalent`` (within the task's margin), ``better`` or ``undetermined`` (with
    ``seeds_needed``), after why the estimator was not ranked where it was not (seeds that
    diverged or failed, fewer than two sound seeds, an infinite interval, a metric still
    moving between ``T/2`` and ``T``); one that is not ranked and has no comparison is
    ``undetermined``, never ``best``. ``converged`` is the convergence check's status,
    with the change ``T/2 → T`` and its interval. Estimators that are not ranked are listed
    after the ranked ones. Decisions are at ``level`` (a sequential suite's ``1 − α/K``).
    """
    rows = []
    for task_key, d in task_decisions(metrics, cells, level).items():
        for label in sorted(d.cells):
            rows.append(_row(d, label, _gradient_columns(metrics, task_key, label)))
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    return pd.concat([_rank(tdf) for _, tdf in df.groupby("task", sort=True)],
                     ignore_index=True)


def _row(d: TaskDecision, label: str, grads: dict[str, float]) -> dict:
    m, lo, hi = d.mean_ci(label)
    c, check = d.comparisons.get(label), d.convergence[label]
    if label == d.best:
        outcome = "best"
    elif c is None:
        outcome = ""
    elif c.outcome == "undetermined" and c.seeds_needed:
        outcome = f"undetermined (about {c.seeds_needed} more seeds)"
    else:
        outcome = c.outcome
    if label in d.not_ranked:  # a fault speaks for itself; other reasons are introduced
        why = d.not_ranked[label]
        why = why if why == d.faults.get(label) else f"not ranked: {why}"
        outcome = "; ".join(x for x in (why, outcome or "undetermined") if x)
    return {"task": d.task, "estimator": label, "metric": d.metric,
            "higher_is_better": d.higher_is_better, "mean": m, "ci_lo": lo, "ci_hi": hi,
            "seeds": len(d.values.get(label, {})), "cells": d.cells[label], "outcome": outcome,
            "ranked": label not in d.not_ranked,
            "vs_best": c.difference if c else math.nan, "vs_best_lo": c.lo if c else math.nan,
            "vs_best_hi": c.hi if c else math.nan, "p_holm": c.p_difference if c else math.nan,
            "p_equivalence_holm": c.p_equivalence if c else math.nan,
            "seeds_needed": c.seeds_needed if c else None, "margin": d.margin,
            "converged": check.status, "half_step": check.half_step,
            "change": check.change, "change_lo": check.lo, "change_hi": check.hi, **grads}


def _gradient_columns(metrics: pd.DataFrame, task_key: str, label: str) -> dict[str, float]:
    g = metrics[(metrics["kind"] == "grad") & (metrics["task"] == task_key)
                & (metrics["layer"] == "total") & (metrics["label"] == label)]
    g_end = g[g["step"] == g["step"].max()] if len(g) else g

    def stat(name: str, how: str = "mean") -> float:
        return float(getattr(g_end[g_end["name"] == name]["value"], how)())

    return {"grad_variance": stat("variance"), "grad_bias": stat("bias"),
            "grad_cosine": stat("cosine"), "f_evals": stat("f_evals"),
            "time_ms": stat("time_ms", "median")}


def _rank(tdf: pd.DataFrame) -> pd.DataFrame:
    higher = bool(tdf["higher_is_better"].iloc[0])
    tdf = tdf.assign(_unranked=~tdf["ranked"]).sort_values(
        ["_unranked", "mean"], ascending=[True, not higher], na_position="last")
    tdf = tdf.drop(columns="_unranked").reset_index(drop=True)
    ranked = tdf["ranked"].to_numpy()
    tdf["rank"] = np.where(ranked, np.cumsum(ranked), np.nan)
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
        for stat in (s for s in STATISTICS if s.summary):
            if stat.name in sdf:  # the across-seed interval of the mean, inside its range
                m, lo, hi = mean_ci(sdf[stat.name], low=stat.low, high=stat.high)
                row[stat.name], row[stat.name + "_lo"], row[stat.name + "_hi"] = m, lo, hi
        rows.append(row)
    out = pd.DataFrame(rows)
    for col in ("var_x_evals", "var_x_time"):  # rank at equal f-calls and at equal time
        if col in out:
            out["rank_" + col] = out.groupby(["task", "step"])[col].rank(method="min")
    return out


def efficiency_table(grads: pd.DataFrame) -> pd.DataFrame:
    """Per task, at its last checkpoint: each estimator's bias, variance, ``f_evals``, variance
    × f-evaluations and variance × time, ranked by variance × f-evaluations (ties by
    variance × time). Deterministic estimators have variance 0 and rank first."""
    if grads.empty or "var_x_evals" not in grads:
        return pd.DataFrame()
    last = grads[grads["step"] == grads.groupby("task")["step"].transform("max")]
    cols = ["task", "estimator", "seeds", "f_evals", "bias", "variance", "var_x_evals",
            "rank_var_x_evals", "var_x_time", "rank_var_x_time", "time_ms"]
    last = last[[c for c in cols if c in last]]
    order = [c for c in ("task", "rank_var_x_evals", "var_x_time") if c in last]
    return last.sort_values(order).reset_index(drop=True)
