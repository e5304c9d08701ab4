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

from gangrad.estimators._base import Cost
from gangrad.estimators._gumbel_max import AbstractGumbelMax

__all__ = ["StraightThrough"]


class StraightThrough(AbstractGumbelMax):
    """Hard one-hot sample forward, gradient through the softmax probabilities backward."""

    key = "straight_through"

    def __init__(self) -> None:
        pass

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        hard = self._hard(params, noise)
        probs = params.softmax(dim=-1)
        return f(hard + probs - probs.detach())
