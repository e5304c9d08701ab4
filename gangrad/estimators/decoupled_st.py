r"""Decoupled straight-through Gumbel-softmax (Shah, Yan, Mozer & Liu, 2024, "Improving
Discrete Optimisation Via Decoupled Straight-Through Gumbel-Softmax").

ST-Gumbel ties two choices to one temperature: how random the forward sample is
(exploration) and how the backward softmax spreads the gradient over the classes. The
decoupled estimator gives each its own temperature. With Gumbels ``g`` and tempered scores
``s = θ/τ_f + g``,

.. math::
    x = \operatorname{onehot}(\operatorname{argmax} s) \sim
        \operatorname{Cat}(\operatorname{softmax}(θ/τ_f)),\qquad
    \hat g = \frac{∂ \operatorname{softmax}(s/τ_b)}{∂θ}^{\top} ∇_x f(x),

implemented as ``x + y − ⊥y``, ``y = softmax(s/τ_b)``: straight-through Gumbel-softmax at
temperature ``τ_b`` applied to the logits ``θ/τ_f``. A positive rescaling of ``θ + g`` leaves
its argmax unchanged, so the forward temperature acts by scaling the logits before the
Gumbels are added. At ``τ_f = 1`` the sample is the categorical of the logits and the
estimator *is* ``st_gumbel(temperature=τ_b)``: the same noise gives the same sample and the
same gradient (tested). For ``τ_f ≠ 1`` the emitted distribution is
``Cat(softmax(θ/τ_f))``, so against ``∇E_{Cat(softmax θ)} f`` the estimate carries the
change of distribution as bias, on top of ST-Gumbel's own. Biased.

Requires: ``f`` differentiable in relaxed ``x``. Spaces: discrete. Noise: uniforms of the
logits' shape (Gumbel-max sampling).

Args:
    forward_temperature: ``τ_f`` (> 0), the temperature of the emitted categorical.
    backward_temperature: ``τ_b`` (> 0), the temperature of the backward softmax.
"""

from __future__ import annotations

import torch

from gangrad._validate import positive
from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import Cost
from gangrad.estimators._gumbel_max import AbstractGumbelMax

__all__ = ["DecoupledST"]


class DecoupledST(AbstractGumbelMax):
    """Hard one-hot from softmax(θ/τ_f) forward, Gumbel-softmax at τ_b backward."""

    key = "decoupled_st"

    def __init__(self, forward_temperature: float = 1.0,
                 backward_temperature: float = 1.0) -> None:
        self.forward_temperature = positive(self.key, "forward_temperature",
                                            forward_temperature)
        self.backward_temperature = positive(self.key, "backward_temperature",
                                             backward_temperature)

    def _scores(self, params: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return params / self.forward_temperature + cat.gumbel(noise)

    def _sample(self, params, noise, space):
        return cat.one_hot_argmax(self._scores(params, noise))

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        scores = self._scores(params, noise)
        soft = (scores / self.backward_temperature).softmax(dim=-1)
        return f(cat.one_hot_argmax(scores.detach()) + soft - soft.detach())
