"""Reparameterized Gaussian with a learned conditional variance.

The head emits a location and a log-scale per coordinate, ``params[:, 0] = loc`` and
``params[:, 1] = log_scale``, and the sample is

.. math::  x = loc + e^{log\\_scale} ε,\\qquad ε ~ N(0, I),

differentiated pathwise with respect to both (Kingma & Welling, 2014; Rezende et al., 2014):
``∇_{loc} = ∇_x f``, ``∇_{log\\_scale} = ∇_x f · σ ε``. Unbiased for
``∇ E_{x~N(loc, σ²)} f(x)``. This is what Goodfellow et al. (2014) mention as the way to
*learn* the generator's conditional variance instead of fixing it.

Requires: differentiable ``f``. Spaces: continuous; ``param_shape(Continuous(d)) = (2, d)``.
For f = (x − k)² at loc = μ, σ = e^s: ``Var ∇_{loc} = 4σ²`` and
``Var ∇_s = 4σ²((μ − k)² + 2σ²)``.
"""

from __future__ import annotations

import torch

from gangrad.estimators._base import AbstractEstimator, Cost
from gangrad.spaces import Continuous

__all__ = ["Reparam"]


class Reparam(AbstractEstimator):
    """Learned loc and log-scale; x = loc + exp(log_scale)·ε, pathwise to both."""

    key = "reparam"
    rows_independent = True
    space_types = (Continuous,)
    differentiable_f = True

    def __init__(self) -> None:
        pass

    def _param_shape(self, space):
        return (2, *space.shape)

    def _noise(self, params, space, generator):
        return torch.randn(params[:, 0].shape, generator=generator, dtype=params.dtype,
                           device=params.device)

    def _sample(self, params, noise, space):
        return params[:, 0] + params[:, 1].exp() * noise

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        return f(params[:, 0] + params[:, 1].exp() * noise)
