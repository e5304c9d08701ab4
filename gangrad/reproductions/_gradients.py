"""Per-sample gradient estimates of one scalar parameter, and their mean and variance with
95% intervals and standard errors: the measurement shared by the estimator-variance
reproductions.

Every row of ``params`` holds the same value, so the rows' gradients are independent
estimates from one estimator; the per-sample variance is their variance. The mean's
interval is Student's t (:func:`gangrad.stats.mean_ci`); the variance's is the chi-square
interval with Satterthwaite's degrees of freedom from the spread of the squared deviations
(the fourth moment) that :func:`gangrad.measure.group_stats` computes and whose coverage
its tests check.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from gangrad.estimators import AbstractEstimator
from gangrad.measure import group_stats
from gangrad.stats import mean_ci

__all__ = ["gradient_summary", "per_sample_gradients"]

ROUNDING = 1e-12  # relative float64 error allowed for a deterministic estimate


def per_sample_gradients(est: AbstractEstimator, row: torch.Tensor,
                         f: Callable[[torch.Tensor], torch.Tensor],
                         coordinate: tuple[int, ...], n: int, generator: torch.Generator,
                         chunk: int = 250_000) -> np.ndarray:
    """``n`` independent estimates of ``∂ E f / ∂ row[coordinate]`` from ``est``.

    ``row`` is one sample's params (``est.param_shape(space)``), repeated ``n`` times in
    chunks of ``chunk`` rows; the noise is drawn from ``generator``.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2 (estimates for a variance), got {n}")
    out = []
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        params = row.detach().expand(rows, *row.shape).clone().requires_grad_(True)
        est.surrogate(params, f, generator=generator).sum().backward()
        out.append(params.grad[(slice(None), *coordinate)].detach().cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def gradient_summary(g: np.ndarray, exact: float) -> dict[str, float]:
    """Mean and per-sample variance of estimates ``g (n,)``, each with its 95% interval,
    standard error and degrees of freedom: the mean's ``s/√n`` with ``n − 1``; the
    variance's ``√((m₄ − s⁴)/n)`` (``m₄`` the fourth central moment) with Satterthwaite's
    ``2s⁴/se²``. A deterministic estimate has standard errors 0."""
    mean, mean_lo, mean_hi = mean_ci(g)
    n = len(g)
    mean_se = float(g.std(ddof=1) / np.sqrt(n))
    if np.ptp(g) == 0:  # a deterministic estimate: variance 0, the mean exact to rounding
        variance = variance_lo = variance_hi = variance_se = 0.0
        mean_lo, mean_hi = mean - ROUNDING * abs(mean), mean + ROUNDING * abs(mean)
        variance_dof, mean_se = np.inf, 0.0
    else:
        stats = group_stats(torch.from_numpy(g).reshape(-1, 1),
                            torch.tensor([exact], dtype=torch.float64))
        variance, variance_lo, variance_hi = (stats["variance"], stats["variance_lo"],
                                              stats["variance_hi"])
        centred = g - g.mean()
        m4, s2 = float(np.mean(centred**4)), float(np.mean(centred**2))
        variance_se = float(np.sqrt(max(m4 - s2 * s2, 0.0) / n))
        variance_dof = 2 * variance**2 / variance_se**2 if variance_se > 0 else np.inf
    return {"n": n, "mean": mean, "mean_lo": mean_lo, "mean_hi": mean_hi,
            "mean_se": mean_se, "mean_dof": n - 1,
            "variance": variance, "variance_lo": variance_lo, "variance_hi": variance_hi,
            "variance_se": variance_se, "variance_dof": variance_dof}
