r"""Rao-Blackwellized straight-through Gumbel-softmax (Paulus, Maddison & Krause, 2021,
"Rao-Blackwellizing the Straight-Through Gumbel-Softmax Gradient Estimator").

Forward: the hard one-hot ``b = onehot(argmax(θ + g))``, an exact categorical sample.
Backward: the straight-through Gumbel-softmax Jacobian averaged over ``K`` Gumbels drawn
conditionally on ``b`` (see :mod:`gangrad.estimators._conditional`),

.. math::
    \hat g = \frac1K \sum_{k=1}^K
      \frac{∂ \operatorname{softmax}((θ + g̃_k)/τ)}{∂θ}^{\top} ∇_x f(x)\Big|_{x=b},
    \qquad g̃_k \sim p(g \mid \operatorname{argmax}(θ + g) = b),

with ``g̃_k`` held fixed in the derivative. As ``K → ∞`` this is
``E[\hat g_{\mathrm{ST\text{-}GS}} \mid b]``, the conditional expectation of the
straight-through Gumbel-softmax estimate (``st_gumbel``): the same mean (the same bias,
biased in general), a variance never larger (Rao-Blackwell), at one evaluation of ``f``;
only the backward pass costs ``K`` softmaxes. Implemented as ``b + s − ⊥s`` with
``s = mean_k softmax((θ + g̃_k)/τ)``.

Requires: ``f`` differentiable in relaxed ``x``. Spaces: discrete. Noise: uniforms of shape
``(B, 1 + K, L, C)``: ``[:, 0]`` draws ``b`` (the same sample as ``st_gumbel`` from the same
uniforms), ``[:, 1:]`` the ``K`` conditional Gumbels.

Args:
    temperature: ``τ`` of the relaxation (> 0).
    samples: ``K``, conditional Gumbel draws per sample (integer ≥ 1).
"""

from __future__ import annotations

import torch

from gangrad._validate import integer, positive
from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import AbstractEstimator, Cost
from gangrad.estimators._conditional import conditional_gumbel, perturbed
from gangrad.spaces import Discrete

__all__ = ["RaoBlackwellST"]


class RaoBlackwellST(AbstractEstimator):
    """Hard one-hot forward; the ST Gumbel-softmax Jacobian averaged over p(g | b) backward."""

    key = "rao_blackwell_st"
    rows_independent = True
    space_types = (Discrete,)
    differentiable_f = True

    def __init__(self, temperature: float = 0.5, samples: int = 10) -> None:
        self.temperature = positive(self.key, "temperature", temperature)
        self.samples = integer(self.key, "samples", samples, minimum=1)

    def _noise(self, params, space, generator):
        shape = (params.shape[0], 1 + self.samples, *params.shape[1:])
        return cat.uniform_noise(shape, params, generator)

    def _sample(self, params, noise, space):
        return perturbed(params, noise[:, 0])[1]

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        theta = params.detach()
        _, b = perturbed(theta, noise[:, 0])  # B x L x C
        with torch.no_grad():
            # z̃ − log_softmax θ: Gumbels given argmax(θ + g) = b, B x K x L x C
            g = (conditional_gumbel(theta.unsqueeze(1), b.unsqueeze(1), noise[:, 1:])
                 - theta.log_softmax(dim=-1).unsqueeze(1))
        soft = ((params.unsqueeze(1) + g) / self.temperature).softmax(dim=-1).mean(1)
        return f(b + soft - soft.detach())
