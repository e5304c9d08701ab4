"""Decisions on a stored run: per task, the best estimator and every other's comparison with
it, on sound, converged cells. Reports, ``gangrad.load(..., table="summary")`` and the
runner's sequential allocation all read these, so they decide the same way.

``metrics`` is a run's tidy frame (:func:`gangrad.runner.tidy`: ``cell_id, task, label,
seed, kind, step, name, value``, ``status`` where the cells table is not given); ``cells``
the run's cells (``cell_id, task, label, seed, status``), which also lists the cells that
failed before storing any metric.

Per task and estimator, on the task's headline metric (its first declared):

- **faults** — seeds that diverged or failed; a faulty cell is never read for a value;
- **convergence** — :func:`gangrad.stats.convergence` between the evaluation nearest
  ``T/2`` and the last one, ``T``;
- **undetermined** — a comparison with the best is undetermined or a convergence check
  is unsettled: what more seeds could decide (the runner's sequential allocation adds
  seeds to such tasks);
- **eligible** to be the best: no faulty seed, at least two sound seeds, a finite interval
  of the mean, and a convergence check that did not find the metric still moving or
  unsettled (a run with no evaluation at ``T/2`` is *unchecked* and stays eligible, with
  the flag shown). The best is the eligible estimator with the best mean; every other is
  compared with it (:func:`gangrad.stats.compare_to_best`). An estimator that is not
  eligible keeps its comparison but its row says why it was not ranked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gangrad.stats._convergence import Convergence, convergence
from gangrad.stats._paired import Comparison, compare_to_best, mean_ci

__all__ = ["TaskDecision", "task_decisions", "undetermined_tasks"]


@dataclass
class TaskDecision:
    """What a run decides on one task."""

    task: str
    metric: str
    higher_is_better: bool
    margin: float
    low: float
    high: float
    values: dict[str, dict[int, float]]  # label -> {seed: value at T}, sound cells
    cells: dict[str, int]  # label -> cells run
    faults: dict[str, str]  # label -> "diverged in 1/8 seeds; ..." ('' when none)
    convergence: dict[str, Convergence]
    best: str | None
    comparisons: dict[str, Comparison] = field(default_factory=dict)
    not_ranked: dict[str, str] = field(default_factory=dict)  # label -> why

    def mean_ci(self, label: str) -> tuple[float, float, float]:
        """The label's mean at ``T`` and its interval, inside the metric's range."""
        return mean_ci(list(self.values.get(label, {}).values()), low=self.low,
                       high=self.high)

    @property
    def undetermined(self) -> bool:
        """More seeds could change what is decided: a comparison with the best is
        undetermined, or an estimator's convergence check is unsettled."""
        return (any(c.outcome == "undetermined" for c in self.comparisons.values())
                or any(c.status == "unsettled" for c in self.convergence.values()))


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


def _half_and_end(m: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per cell, the row of its last evaluation ``T`` and of the one nearest ``T/2`` (after
    step 0 and before ``T``; none when the cell has no such evaluation)."""
    if m.empty:
        return m, m
    end_step = m.groupby("cell_id")["step"].transform("max")
    end = m[m["step"] == end_step]
    inner = m[(m["step"] > 0) & (m["step"] < end_step)].copy()
    if inner.empty:
        return inner, end
    inner["gap"] = (inner["step"] - end_step[inner.index] / 2).abs()
    inner = inner.sort_values(["cell_id", "gap", "step"])
    return inner.drop_duplicates("cell_id"), end


def _by_label(rows: pd.DataFrame) -> dict[str, dict[int, float]]:
    values: dict[str, dict[int, float]] = {}
    for rec in rows.itertuples():
        if math.isfinite(rec.value):
            values.setdefault(rec.label, {})[int(rec.seed)] = float(rec.value)
    return values


def _decide(metrics: pd.DataFrame, tout: pd.DataFrame, ok: set[str], task_key: str,
            level: float) -> TaskDecision:
    from gangrad import tasks

    name, _ = tasks.headline_metric(task_key)
    spec = tasks.REGISTRY.get(task_key).metric(name)
    m = metrics[(metrics["kind"] == "train") & (metrics["task"] == task_key)
                & (metrics["name"] == name) & metrics["cell_id"].isin(ok)]
    half_rows, end_rows = _half_and_end(m)
    values, halves = _by_label(end_rows), _by_label(half_rows)
    labels = sorted(tout["label"].unique())
    checks = {}
    for label in labels:
        half_step = int(half_rows.loc[half_rows["label"] == label, "step"].median()) \
            if (half_rows["label"] == label).any() else 0
        end_step = int(end_rows.loc[end_rows["label"] == label, "step"].median()) \
            if (end_rows["label"] == label).any() else 0
        checks[label] = convergence(label, name, halves.get(label, {}),
                                    values.get(label, {}), spec.margin, half_step, end_step)
    faults = {label: _faults(ldf["status"]) for label, ldf in tout.groupby("label")}
    decision = TaskDecision(task_key, name, spec.higher_is_better, spec.margin, spec.low,
                            spec.high, values, tout.groupby("label").size().to_dict(), faults,
                            checks, None)
    for label in labels:
        why = _not_eligible(decision, label)
        if why:
            decision.not_ranked[label] = why
    eligible = [label for label in labels if label not in decision.not_ranked]
    if eligible:
        means = {label: float(np.mean(list(values[label].values()))) for label in eligible}
        pick = max if spec.higher_is_better else min
        decision.best = pick(eligible, key=means.get)
        decision.comparisons = {c.estimator: c for c in compare_to_best(
            {k: v for k, v in values.items() if v}, decision.best, spec.higher_is_better,
            spec.margin, level)}
    return decision


def _not_eligible(d: TaskDecision, label: str) -> str:
    """Why ``label`` cannot be the task's best ('' when it can)."""
    values = d.values.get(label, {})
    if d.faults.get(label):
        return d.faults[label]
    if len(values) < 2:
        return f"{len(values)} sound seed{'s' if len(values) != 1 else ''} (two are needed)"
    _, lo, hi = d.mean_ci(label)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "its interval is not finite"
    check = d.convergence[label]
    if check.status in ("moving", "unsettled"):
        return (f"not converged: {d.metric} changed {check.change:+.3g} [95% CI "
                f"{check.lo:+.3g}, {check.hi:+.3g}] from step {check.half_step} to "
                f"{check.end_step}, margin ±{check.margin:g}")
    return ""


def task_decisions(metrics: pd.DataFrame, cells: pd.DataFrame | None = None,
                   level: float = 0.95) -> dict[str, TaskDecision]:
    """Each task's :class:`TaskDecision`, its comparisons decided at ``level`` (a sequential
    suite's ``1 − α/K``)."""
    outcomes = _outcomes(metrics, cells)
    ok = set(outcomes.loc[outcomes["status"] == "ok", "cell_id"])
    return {task_key: _decide(metrics, tout, ok, task_key, level)
            for task_key, tout in outcomes.groupby("task", sort=True)}


def undetermined_tasks(metrics: pd.DataFrame, cells: pd.DataFrame | None = None,
                       level: float = 0.95) -> set[str]:
    """The tasks with a comparison against their best that is undetermined at ``level``."""
    return {t for t, d in task_decisions(metrics, cells, level).items() if d.undetermined}
