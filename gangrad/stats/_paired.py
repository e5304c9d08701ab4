"""Intervals of a mean across seeds, and paired comparisons that decide.

Comparisons are paired: two estimators trained from the same seed share their initial D
(and G where their heads agree), data and latents (:class:`gangrad.train.TrainState`), so
their per-seed difference removes what the seeds have in common. A comparison is
``better``/``worse`` (paired t-test, ``scipy.stats.ttest_1samp`` on the differences),
``equivalent`` within the practical margin the task declares beside the metric (two
one-sided tests), or ``undetermined`` with the seeds likely needed; comparisons against
the best are Holm-adjusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats

__all__ = ["Comparison", "compare", "compare_paired", "compare_to_best", "fmt_ci", "holm",
           "mean_ci", "paired_difference"]


def mean_ci(values: pd.Series | np.ndarray, level: float = 0.95, low: float = -math.inf,
            high: float = math.inf) -> tuple[float, float, float]:
    """Mean and Student-t interval across seeds (``nan`` half-width for one seed), kept
    inside the metric's range ``[low, high]``."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if len(v) < 2:
        return m, math.nan, math.nan
    half = float(scipy.stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / len(v) ** 0.5)
    return m, max(m - half, low), min(m + half, high)


def fmt_ci(m: float, lo: float, hi: float) -> str:
    """``m [95% CI lo, hi]`` to 3 significant digits."""
    return f"{m:.3g} [95% CI {lo:.3g}, {hi:.3g}]"


def compare(a, b, lower_is_better: bool, name_a: str, name_b: str,
            level: float = 0.95) -> tuple[str, float, float, float]:
    """Welch interval of mean(a) − mean(b): which is better, or ``inconclusive``."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        lo = hi = diff
    else:
        dof = (va + vb) ** 2 / ((va**2 / (len(a) - 1) if va else 0)
                                + (vb**2 / (len(b) - 1) if vb else 0) or 1e-300)
        half = float(scipy.stats.t.ppf(0.5 + level / 2, max(dof, 1.0)) * se)
        lo, hi = diff - half, diff + half
    if lo <= 0 <= hi:
        return "inconclusive", diff, lo, hi
    a_better = (hi < 0) if lower_is_better else (lo > 0)
    return (f"{name_a} better" if a_better else f"{name_b} better"), diff, lo, hi


# -- paired comparisons across seeds --------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """One estimator against a reference one (the best) on their common seeds.

    ``outcome`` reads from the first estimator's side: ``better`` or ``worse`` (the paired
    difference is resolved), ``equivalent`` (within ``margin``, two one-sided tests), or
    ``undetermined``; ``seeds_needed`` then estimates how many more common seeds would
    likely decide it (80% power). ``p_difference`` and ``p_equivalence`` are
    Holm-adjusted over the comparisons made together (:func:`compare_to_best`).
    """

    estimator: str
    reference: str
    outcome: str
    difference: float  # mean of estimator − reference over the common seeds
    lo: float
    hi: float
    seeds: int
    p_difference: float
    p_equivalence: float
    seeds_needed: int | None


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` (family-wise error; NaN kept as NaN).
    scipy offers false-discovery control only."""
    order = sorted((p, i) for i, p in enumerate(p_values) if p == p)
    adjusted = [math.nan] * len(p_values)
    running, m = 0.0, len(order)
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def paired_difference(d: np.ndarray, margin: float) -> tuple[float, float, float, float, float]:
    """Of per-seed differences ``d``: their mean, its 95% interval, the t-test's p against 0
    and the two one-sided tests' p against ``±margin`` (NaN without a margin)."""
    n, mean = len(d), float(d.mean())
    if n < 2:
        return mean, -math.inf, math.inf, math.nan, math.nan
    if float(d.std()) == 0.0:  # identical differences: the difference is exact
        p_diff = 0.0 if mean != 0 else 1.0
        p_eq = 0.0 if abs(mean) < margin else 1.0
        return mean, mean, mean, p_diff, p_eq if margin == margin else math.nan
    test = scipy.stats.ttest_1samp(d, 0.0)
    ci = test.confidence_interval(0.95)
    p_eq = math.nan
    if margin == margin and margin > 0:  # two one-sided tests against ±margin
        p_eq = max(float(scipy.stats.ttest_1samp(d, -margin, alternative="greater").pvalue),
                   float(scipy.stats.ttest_1samp(d, margin, alternative="less").pvalue))
    return mean, float(ci.low), float(ci.high), float(test.pvalue), p_eq


def _seeds_needed(d: np.ndarray, margin: float, m: int, alpha: float = 0.05) -> int | None:
    """Common seeds likely to decide a comparison (80% power at the Holm level ``alpha/m``
    of ``m`` comparisons): the fewer of those that resolve the difference and those that
    show equivalence, less the seeds used."""
    n, mean, sd = len(d), abs(float(d.mean())), float(d.std(ddof=1)) if len(d) > 1 else math.nan
    if not (math.isfinite(sd) and math.isfinite(mean)) or sd == 0:  # nothing to plan on
        return None
    power = scipy.stats.norm.ppf(0.8)
    needs = []
    if mean > 0:
        needs.append(((scipy.stats.norm.ppf(1 - alpha / 2 / m) + power) * sd / mean) ** 2)
    if margin == margin and mean < margin:
        needs.append(((scipy.stats.norm.ppf(1 - alpha / m) + power) * sd / (margin - mean))
                     ** 2)
    return max(math.ceil(min(needs)) - n, 1) if needs else None


def compare_to_best(values: dict[str, dict[int, float]], best: str, higher_is_better: bool,
                    margin: float, level: float = 0.95) -> list[Comparison]:
    """Each estimator of ``values`` (label -> {seed: value}) against ``best`` on their
    common seeds: paired t-tests for a difference and two one-sided tests for
    equivalence within ``margin``, Holm-adjusted over the comparisons and decided at
    ``1 − level`` (the intervals of the differences stay 95%)."""
    others = [label for label in values if label != best]
    rows = []
    for label in others:
        common = sorted(set(values[label]) & set(values[best]))
        d = np.array([values[label][s] - values[best][s] for s in common], dtype=float)
        rows.append((label, d, *paired_difference(d, margin)) if len(d) else
                    (label, d, math.nan, math.nan, math.nan, math.nan, math.nan))
    p_diff = holm([r[5] for r in rows])
    p_eq = holm([r[6] for r in rows])
    alpha, m = 1 - level, max(len(rows), 1)
    out = []
    for (label, d, mean, lo, hi, _, _), pd_, pe in zip(rows, p_diff, p_eq, strict=True):
        if pd_ == pd_ and pd_ < alpha:
            ahead = mean > 0 if higher_is_better else mean < 0
            outcome, needed = ("better" if ahead else "worse"), None
        elif pe == pe and pe < alpha:
            outcome, needed = "equivalent", None
        else:
            outcome, needed = ("undetermined",
                               _seeds_needed(d, margin, m, alpha) if len(d) else None)
        out.append(Comparison(label, best, outcome, mean, lo, hi, len(d), pd_, pe, needed))
    return out


def compare_paired(a: dict[int, float], b: dict[int, float], higher_is_better: bool,
                   margin: float, names: tuple[str, str] = ("a", "b"),
                   level: float = 0.95) -> Comparison:
    """``a`` against ``b`` (each seed -> value) on their common seeds: one paired
    comparison (:func:`compare_to_best` with ``b`` as the reference), read from ``a``'s
    side: ``better``/``worse``/``equivalent`` within ``margin``/``undetermined``."""
    name_a, name_b = names
    if name_a == name_b:
        raise ValueError(f"compare_paired: the two names must differ, got {names}")
    return compare_to_best({name_a: a, name_b: b}, name_b, higher_is_better, margin,
                           level)[0]
