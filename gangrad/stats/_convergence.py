"""The convergence rule: has a training run's headline metric stopped moving, and does a
comparison's outcome hold at both budgets?

A training-based verdict compares arms after ``T`` steps. It answers the question only if
the arms have finished moving by then, so every arm is also read at ``T/2`` (the same runs,
evaluated half-way: no extra training) and:

- **converged** — the paired change of the headline metric from ``T/2`` to ``T`` over the
  seeds, ``d_s = m_s(T) − m_s(T/2)``, is *equivalent to zero within the task's practical
  margin* ``δ`` by two one-sided tests at level ``α = 0.05`` (``scipy.stats.ttest_1samp``
  against ``−δ`` and ``+δ``), i.e. the 90% interval of the mean change lies inside ``±δ``;
- **moving** — the change differs from zero (t-test, ``p < α``) and is not within ``±δ``;
- **unsettled** — neither: too few seeds or too much noise to tell;
- **unchecked** — the run has no evaluation at ``T/2`` (or fewer than two sound seeds).

Requiring *every* arm of a verdict to pass its test at ``α`` is an intersection–union test
(Berger 1982): the chance of calling a set of arms converged when one is not stays ``≤ α``
without a multiplicity correction.

A comparison's outcome is then stated only when every arm converged **and** the outcome
(:func:`gangrad.stats.compare_to_best`) is the same at ``T/2`` and ``T``; otherwise it is
``budget-dependent`` (:func:`budget_outcome`) and both results are shown.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gangrad.stats._paired import Comparison, paired_difference

__all__ = ["BUDGET_DEPENDENT", "Convergence", "budget_outcome", "convergence",
           "convergence_sentence"]

#: the outcome of a comparison that does not hold at both budgets, or whose arms did not
#: all converge
BUDGET_DEPENDENT = "budget-dependent"
_ALPHA = 0.05


@dataclass(frozen=True)
class Convergence:
    """One arm's check: its metric's mean at ``T/2`` and ``T`` and the paired change.

    ``change``, ``lo``, ``hi``: the mean change ``T − T/2`` over the common seeds and its
    95% interval; ``p_equivalence``: the two one-sided tests' p against ``±margin``.
    """

    arm: str
    metric: str
    half_step: int
    end_step: int
    half: float
    end: float
    change: float
    lo: float
    hi: float
    margin: float
    seeds: int
    p_change: float
    p_equivalence: float
    status: str  # converged | moving | unsettled | unchecked

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    def numbers(self) -> dict[str, Any]:
        """As plain data, for an answer's JSON or a report table."""
        return asdict(self)


def convergence(arm: str, metric: str, half: Mapping[int, float], end: Mapping[int, float],
                margin: float, half_step: int, end_step: int) -> Convergence:
    """The check of one arm from ``{seed: value}`` at ``T/2`` (``half``) and ``T`` (``end``),
    on the seeds where both are finite."""
    common = sorted(s for s in set(half) & set(end)
                    if math.isfinite(half[s]) and math.isfinite(end[s]))
    d = np.array([end[s] - half[s] for s in common], dtype=float)
    mean_half = float(np.mean([half[s] for s in common])) if common else math.nan
    mean_end = float(np.mean([end[s] for s in common])) if common else math.nan
    if len(d) < 2 or half_step >= end_step:
        change = float(d.mean()) if len(d) else math.nan
        return Convergence(arm, metric, half_step, end_step, mean_half, mean_end, change,
                           math.nan, math.nan, margin, len(d), math.nan, math.nan,
                           "unchecked")
    change, lo, hi, p_change, p_eq = paired_difference(d, margin)
    if p_eq == p_eq and p_eq < _ALPHA:
        status = "converged"
    elif p_change == p_change and p_change < _ALPHA:
        status = "moving"
    else:
        status = "unsettled"
    return Convergence(arm, metric, half_step, end_step, mean_half, mean_end, change, lo, hi,
                       margin, len(d), p_change, p_eq, status)


def budget_outcome(half: Comparison | str, end: Comparison | str,
                   checks: Iterable[Convergence]) -> str:
    """The outcome a verdict may state: the one at ``T`` when every arm of ``checks``
    converged and the outcome at ``T/2`` is the same, else :data:`BUDGET_DEPENDENT`."""
    a = half.outcome if isinstance(half, Comparison) else half
    b = end.outcome if isinstance(end, Comparison) else end
    if a == b and all(c.converged for c in checks):
        return b
    return BUDGET_DEPENDENT


def convergence_sentence(c: Convergence, digits: int = 3) -> str:
    """``arm: metric 0.41 at step 500 → 0.40 at step 1000, change −0.01 [95% CI …] within
    ±0.05: converged`` — the check in words."""
    if c.status == "unchecked":
        return (f"{c.arm}: {c.metric} {c.end:.{digits}g} at step {c.end_step}; not checked "
                f"(no evaluation at T/2 on two or more seeds)")
    verdict = {"converged": "converged", "moving": "still moving",
               "unsettled": "not shown to have stopped"}[c.status]
    return (f"{c.arm}: {c.metric} {c.half:.{digits}g} at step {c.half_step} → "
            f"{c.end:.{digits}g} at step {c.end_step}, change {c.change:+.{digits}g} "
            f"[95% CI {c.lo:+.{digits}g}, {c.hi:+.{digits}g}] against ±{c.margin:g} over "
            f"{c.seeds} seeds: {verdict}")
