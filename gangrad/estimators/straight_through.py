"""Straight-through estimator (Bengio et al., 2013).

Forward: a hard one-hot sample ``x ~ Cat(softmax θ)``. Backward: as if ``x`` had been the
probabilities ``p = softmax θ``,

.. math::  \\hat g = \\frac{∂ p}{∂ θ}^{\\top} ∇_x f(x)\\big|_{x = \\text{one-hot}},

implemented as ``x + p − stop_gradient(p)``. Biased in general; exact when ``f`` is linear
in ``x`` (then ``E[∇_x f] = ∇_x f`` is constant and ``∂E f/∂θ = ∂p/∂θ^T ∇_x f``).

Requires: ``f`` differentiable in (relaxed) ``x``. Spaces: discrete. Noise: uniforms of
the logits' shape (Gumbel-max sampling).
"""

from __future__ import annotations

import torch

from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import AbstractEstimator, Cost
from gangrad.spaces import Discrete

__all__ = ["StraightThrough"]


class StraightThrough(AbstractEstimator):
    """Hard one-hot sample forward, gradient through the softmax probabilities backward."""

    key = "straight_through"
    rows_independent = True
    space_types = (Discrete,)
    differentiable_f = True

    def __init__(self) -> None:
        pass

    def _noise(self, params, space, generator):
        return cat.uniform_noise(params.shape, params, generator)

    def _sample(self, params, noise, space):
        return cat.one_hot_argmax(params + cat.gumbel(noise))

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        hard = cat.one_hot_argmax(params.detach() + cat.gumbel(noise))
        probs = params.softmax(dim=-1)
        return f(hard + probs - probs.detach())
