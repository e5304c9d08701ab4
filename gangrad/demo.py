"""A closed-form bias/variance table for the core estimators.

Continuous: ``f(x) = (x − k)²`` with ``x ~ N(μ, σ²)``, ``μ = σ = 1``, ``k ∈ {1, 0, −3}``;
the gradient with respect to the mean is ``2(μ − k)`` for every estimator (for pathwise,
``f(μ)`` has the same gradient because f is quadratic). Closed-form per-sample variances:
``4σ²`` pathwise through the noise (smoothing, reparam), and
``E[f(x)²(x − μ)²]/σ⁴ − 4(μ − k)²`` for the score function (quadrature).

Discrete: ``x ~ Cat(softmax θ)`` over 5 symbols with a tabulated cost ``f(x) = (c·x)²``;
the reference gradient is exact by enumeration.

Each of ``replicates`` batch rows holds the same parameters, so one backward pass gives
that many independent single-row estimates. Bias and variance, and their 95% intervals,
are computed as in :func:`gangrad.measure.group_stats` (the bias without its
noise floor).
"""

from __future__ import annotations

import math

import pandas as pd
import torch

from gangrad import estimators, exact
from gangrad.measure import group_stats
from gangrad.spaces import Discrete

__all__ = ["continuous_table", "discrete_table", "score_function_variance"]


CONTINUOUS = [
    ("pathwise", {}),
    ("smoothing", {"sigma": 1.0}),
    ("reparam", {}),
    ("score_function", {"sigma": 1.0}),
    ("score_function", {"sigma": 1.0, "baseline": "mean"}),
    ("score_function", {"sigma": 1.0, "baseline": "mean", "samples": 4}),
]
DISCRETE = [
    ("pathwise", {}),
    ("score_function", {}),
    ("score_function", {"baseline": "mean"}),
    ("score_function", {"baseline": "mean", "samples": 4}),
    ("straight_through", {}),
    ("gumbel_softmax", {"temperature": 1.0}),
    ("gumbel_softmax", {"temperature": 0.5}),
    ("st_gumbel", {"temperature": 0.5}),
]
LOGITS = torch.tensor([0.5, -1.0, 0.0, 1.5, -0.3])
COST = torch.tensor([3.0, -1.0, 0.5, 2.0, -2.5])


def score_function_variance(mu: float, sigma: float, k: float) -> float:
    """Per-sample variance of ``f(x)(x − μ)/σ²`` for ``f = (x − k)²``, ``x ~ N(μ, σ²)``."""
    nodes, weights = exact.gauss_hermite(40)
    x = mu + sigma * nodes
    second = float((weights * ((x - k) ** 2 * (x - mu) / sigma**2) ** 2).sum())
    return second - 4 * (mu - k) ** 2


def _row_grads(est, params: torch.Tensor, f) -> torch.Tensor:
    params = params.detach().requires_grad_(True)
    est.surrogate(params, f).mean().backward()
    return (params.grad * params.shape[0]).reshape(params.shape[0], -1).double()


def _summary(g: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """Bias norm and total variance (trace) with 95% intervals, as the gradient-statistics
    engine computes them. g: R x D."""
    stats = group_stats(g, truth)
    return {k: stats[k] for k in ("bias", "bias_lo", "bias_hi", "variance", "variance_lo",
                                  "variance_hi")}


def continuous_table(replicates: int = 100_000, seed: int = 0, mu: float = 1.0,
                     sigma: float = 1.0) -> pd.DataFrame:
    """Mean-gradient bias and per-sample variance on ``f = (x − k)²``; one row per cell."""
    torch.manual_seed(seed)
    rows = []
    for k in (1.0, 0.0, -3.0):
        def f(x, k=k):
            return ((x - k) ** 2).sum(-1)

        truth = torch.tensor([2 * (mu - k)], dtype=torch.float64)
        closed = {"pathwise": 0.0, "smoothing": 4 * sigma**2, "reparam": 4 * sigma**2}
        for key, hyper in CONTINUOUS:
            est = estimators.create(key, **hyper)
            n = replicates // hyper.get("samples", 1)
            params = torch.full((n, 1), mu)
            if key == "reparam":
                params = torch.stack([params, torch.full((n, 1), math.log(sigma))], dim=1)
            g = _row_grads(est, params, f)[:, :1]  # the gradient w.r.t. the mean
            variance = closed.get(key, math.nan)
            if key == "score_function" and hyper.get("baseline", "none") == "none":
                variance = score_function_variance(mu, sigma, k) / hyper.get("samples", 1)
            rows.append({"estimator": est.label, "k": k, "exact_gradient": 2 * (mu - k),
                         "mean": float(g.mean()), **_summary(g, truth),
                         "variance_closed_form": variance})
    return pd.DataFrame(rows)


def discrete_table(replicates: int = 100_000, seed: int = 0) -> pd.DataFrame:
    """Bias and variance against the enumerated gradient of ``E (c·x)²`` over 5 symbols."""
    torch.manual_seed(seed)
    space = Discrete(1, len(LOGITS))

    def f(x):
        return (x[:, 0, :] @ COST) ** 2

    truth = exact.discrete_gradient(LOGITS.reshape(1, 1, -1), f).reshape(-1).double()
    rows = []
    for key, hyper in DISCRETE:
        est = estimators.create(key, **hyper)
        n = replicates // hyper.get("samples", 1)
        params = LOGITS.reshape(1, *space.shape).expand(n, *space.shape).clone()
        rows.append({"estimator": est.label, "f_evaluations": est.f_evaluations,
                     **_summary(_row_grads(est, params, f), truth)})
    return pd.DataFrame(rows)
