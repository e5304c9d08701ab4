"""Goodfellow's Gaussian smoothing: ``x = params + σ ε``, ``ε ~ N(0, I)``.

The generator emits a noisy sample around its output and the gradient is taken pathwise
through the noise,

.. math::  \\hat g = ∇_μ f(μ + σε),\\qquad E[\\hat g] = ∇_μ E_ε f(μ + σε),

an unbiased estimate of the gradient of the *smoothed* objective. As σ → 0 the smoothed
gradient tends to ``∇_μ f(μ)`` (Goodfellow et al., 2014, eq. 1:
``lim_{σ→0} ∇_x E_{ε~N(0,σ²I)} f(x + ε) = ∇_x f(x)``): the bias against the unsmoothed
gradient vanishes. σ is the generator's conditional standard deviation, held fixed as a
hyper-parameter; anneal it with :class:`gangrad.schedules.Schedule` and
:meth:`~gangrad.estimators.AbstractEstimator.replace`::

    sched = Schedule(1.0, 1e-3, steps=5000, kind="geometric")
    est = estimators.create("smoothing", sigma=sched(0))
    est = est.replace(sigma=sched(step))   # at each training step

Requires: differentiable ``f``. Spaces: continuous. Noise: ``ε`` of the params' shape.
For f = (x − k)², the per-sample gradient ``2(μ + σε − k)`` has variance ``4σ²``.
"""

from __future__ import annotations

import torch

from gangrad._validate import positive
from gangrad.estimators._base import AbstractEstimator, Cost
from gangrad.spaces import Continuous

__all__ = ["Smoothing"]


class Smoothing(AbstractEstimator):
    """Goodfellow's σ-smoothing: x = G(z) + σε, gradient pathwise through the noise."""

    key = "smoothing"
    rows_independent = True
    space_types = (Continuous,)
    differentiable_f = True

    def __init__(self, sigma: float = 0.1) -> None:
        self.sigma = positive(self.key, "sigma", sigma)

    def _noise(self, params, space, generator):
        return torch.randn(params.shape, generator=generator, dtype=params.dtype,
                           device=params.device)

    def _sample(self, params, noise, space):
        return params + self.sigma * noise

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        return f(params + self.sigma * noise)
