"""Statistics across seeds, shared by reports and questions: intervals of a mean and the
comparison of two groups. (Statistics of replicate gradients: :mod:`gangrad.measure`.)"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.stats

__all__ = ["compare", "fmt_ci", "mean_ci"]


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
