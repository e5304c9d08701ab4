"""What every question shares: the answer record and the comparison that decides it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

from gangrad.report.tables import mean_ci

__all__ = ["Answer", "compare", "fmt_ci", "mean_ci"]


@dataclass
class Answer:
    """A question's result: the verdict computed from the data, its numbers and figure."""

    name: str
    question: str
    verdict: str
    numbers: dict[str, Any]
    table: pd.DataFrame
    figure: Any  # a matplotlib Figure
    caption: str
    settings: dict[str, Any] = field(default_factory=dict)


def fmt_ci(m: float, lo: float, hi: float) -> str:
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
