"""Deterministic pass-through: the generator's output *is* the sample.

Continuous: ``x = params``. Discrete: ``x = softmax(params)``, the probability vector
itself, so a discrete task sees continuous values. The gradient is exact backpropagation,

.. math::  \\hat g = ∇_θ f(x(θ)),

so it is the exact gradient of the deterministic objective ``f(x(θ))`` and requires an
``f`` that is differentiable in ``x``. On a discrete space that objective is not the
expected cost of a discrete sample, ``E_{x~Cat(θ)} f(x)``; the two agree when ``f`` is
linear in the one-hot ``x`` (then ``f(softmax θ) = E f(x)``), and differ otherwise.
This is how the original GAN works (Goodfellow et al., 2014): G and D are differentiable
and G's output goes straight into D.

Requires: differentiable ``f``. Spaces: both. Noise: none.
"""

from __future__ import annotations

import torch

from gangrad.estimators._base import AbstractEstimator, Cost
from gangrad.spaces import Continuous, Discrete, Space

__all__ = ["Pathwise"]


class Pathwise(AbstractEstimator):
    """Exact backprop through a deterministic generator (softmax pass-through if discrete)."""

    key = "pathwise"
    rows_independent = True
    space_types = (Continuous, Discrete)
    differentiable_f = True

    def __init__(self) -> None:
        pass

    def _noise(self, params, space, generator):
        return None

    def _emit(self, params: torch.Tensor, space: Space) -> torch.Tensor:
        return params.softmax(dim=-1) if isinstance(space, Discrete) else params

    def _sample(self, params, noise, space):
        return self._emit(params, space)

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space: Space) -> torch.Tensor:
        return f(self._emit(params, space))
