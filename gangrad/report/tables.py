"""Tables of a run: final training quality per estimator with intervals, ranks and paired
comparisons with the best, and gradient statistics aggregated over seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gangrad import tasks
from gangrad.measure import STATISTICS
from gangrad.stats import compare_to_best, mean_ci

__all__ = ["efficiency_table", "grad_table", "summary_table", "undetermined_tasks"]


def _outcomes(metrics: pd.DataFrame, cells: pd.DataFrame | None) -> pd.DataFrame:
    """One row per cell: task, label, seed, status (from the cells table where given:
    failed cells store no metrics)."""
    source = cells if cells is not None else metrics
    out = source[["cell_id", "task", "label", "seed"]].copy()
    out["status"] = source["status"] if "status" in source else "ok"
    return out.drop_duplicates("cell_id")


def _faults(statuses: pd.Series) -> str:
    counts, total = statuses.value_counts().to_dict(), len(statuses)
    return "; ".join(f"{what} in {counts[what]}/{total} seeds" for what in ("diverged", "failed")
                     if counts.get(what))


def _final_values(metrics: pd.DataFrame, ok: set[str], task_key: str,
                  name: str) -> dict[str, dict[int, float]]:
    """label -> {seed: the headline metric at the last evaluation} over sound cells."""
    m = metrics[(metrics["kind"] == "train") & (metrics["task"] == task_key)
                & (metrics["name"] == name) & metrics["cell_id"].isin(ok)]
    last = m.loc[m.groupby("cell_id")["step"].idxmax()] if len(m) else m
    values: dict[str, dict[int, float]] = {}
    for rec in last.itertuples():
        if math.isfinite(rec.value):
            values.setdefault(rec.label, {})[int(rec.seed)] = float(rec.value)
    return values


def _task_comparisons(metrics: pd.DataFrame, tout: pd.DataFrame, ok: set[str],
                      task_key: str, level: float):
    """A task's headline metric, its values, faults, best and comparisons with the best."""
    name, _ = tasks.headline_metric(task_key)
    spec = tasks.REGISTRY.get(task_key).metric(name)
    values = _final_values(metrics, ok, task_key, name)
    faults = {label: _faults(ldf["status"]) for label, ldf in tout.groupby("label")}
    means = {label: float(np.mean(list(v.values()))) for label, v in values.items()}
    clean = [label for label in means if not faults[label]] or list(means)
    pick = max if spec.higher_is_better else min
    best = pick(clean, key=means.get) if clean else None
    comparisons = ({c.estimator: c for c in compare_to_best(
        values, best, spec.higher_is_better, spec.margin, level)} if best else {})
    return name, spec, values, faults, best, comparisons


def undetermined_tasks(metrics: pd.DataFrame, cells: pd.DataFrame | None = None,
                       level: float = 0.95) -> set[str]:
    """The tasks with a comparison against their best that is undetermined at ``level``
    (what :func:`summary_table` decides)."""
    outcomes = _outcomes(metrics, cells)
    ok = set(outcomes.loc[outcomes["status"] == "ok", "cell_id"])
    return {task_key for task_key, tout in outcomes.groupby("task", sort=True)
            if any(c.outcome == "undetermined" for c in
                   _task_comparisons(metrics, tout, ok, task_key, level)[5].values())}


def summary_table(metrics: pd.DataFrame, cells: pd.DataFrame | None = None,
                  level: float = 0.95) -> pd.DataFrame:
    """Per task, each estimator's final headline metric over its sound seeds, ranked, and
    compared with the best by paired differences over common seeds
    (:func:`gangrad.stats.compare_to_best`): ``outcome`` is ``best``, ``worse``,
    ``equivalent`` (within the task's margin), ``better`` or ``undetermined`` (with
    ``seeds_needed``), after how many seeds diverged or failed. A diverged or failed cell
    is never ranked on a value from before its fault; an estimator with no sound seed is
    listed last, unranked. The best is the best mean among estimators none of whose seeds
    failed or diverged (among all, if every one had a fault). Decisions are at ``level``
    (a sequential suite's ``1 − α/K``).
    """
    outcomes = _outcomes(metrics, cells)
    ok = set(outcomes.loc[outcomes["status"] == "ok", "cell_id"])
    rows = []
    for task_key, tout in outcomes.groupby("task", sort=True):
        name, spec, values, faults, best, comparisons = _task_comparisons(
            metrics, tout, ok, task_key, level)
        for label, ldf in tout.groupby("label"):
            rows.append(_row(task_key, label, name, spec, values.get(label, {}), len(ldf),
                             faults[label], best, comparisons.get(label),
                             _gradient_columns(metrics, task_key, label)))
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    return pd.concat([_rank(tdf) for _, tdf in df.groupby("task", sort=True)],
                     ignore_index=True)


def _row(task_key, label, name, spec, values, total, fault, best, comparison, grads) -> dict:
    m, lo, hi = mean_ci(list(values.values()), low=spec.low, high=spec.high)
    if label == best:
        outcome = "best"
    elif comparison is None:
        outcome = ""
    elif comparison.outcome == "undetermined" and comparison.seeds_needed:
        outcome = f"undetermined (about {comparison.seeds_needed} more seeds)"
    else:
        outcome = comparison.outcome
    outcome = "; ".join(x for x in (fault, outcome) if x)
    c = comparison
    return {"task": task_key, "estimator": label, "metric": name,
            "higher_is_better": spec.higher_is_better, "mean": m, "ci_lo": lo, "ci_hi": hi,
            "seeds": len(values), "cells": total, "outcome": outcome,
            "vs_best": c.difference if c else math.nan, "vs_best_lo": c.lo if c else math.nan,
            "vs_best_hi": c.hi if c else math.nan, "p_holm": c.p_difference if c else math.nan,
            "p_equivalence_holm": c.p_equivalence if c else math.nan,
            "seeds_needed": c.seeds_needed if c else None, "margin": spec.margin, **grads}


def _gradient_columns(metrics: pd.DataFrame, task_key: str, label: str) -> dict[str, float]:
    g = metrics[(metrics["kind"] == "grad") & (metrics["task"] == task_key)
                & (metrics["layer"] == "total") & (metrics["label"] == label)]
    g_end = g[g["step"] == g["step"].max()] if len(g) else g

    def stat(name: str, how: str = "mean") -> float:
        return float(getattr(g_end[g_end["name"] == name]["value"], how)())

    return {"grad_variance": stat("variance"), "grad_bias": stat("bias"),
            "grad_cosine": stat("cosine"), "time_ms": stat("time_ms", "median")}


def _rank(tdf: pd.DataFrame) -> pd.DataFrame:
    higher = bool(tdf["higher_is_better"].iloc[0])
    tdf = tdf.sort_values("mean", ascending=not higher, na_position="last")
    tdf = tdf.reset_index(drop=True)
    tdf["rank"] = np.where(tdf["seeds"] > 0, np.arange(1, len(tdf) + 1), np.nan)
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
