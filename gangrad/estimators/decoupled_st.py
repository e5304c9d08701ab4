r"""Decoupled straight-through Gumbel-softmax (Shah, Yan, Mozer & Liu, 2024, "Improving
Discrete Optimisation Via Decoupled Straight-Through Gumbel-Softmax", arXiv:2410.13331v1;
v2 is retitled "... Via Decoupled Straight-Through Estimator").

ST-Gumbel ties two choices to one temperature: how random the forward sample is
(exploration) and how the backward softmax spreads the gradient over the classes. The
decoupled estimator gives each its own temperature. The paper writes the Gumbel-softmax
with the temperature on the logits only, ``softmax(θ/τ + g)`` (v1 notes that this differs
from Jang et al.'s ``softmax((θ + g)/τ)``), and evaluates it at ``τ_f`` forward and at
``τ_b`` backward with the same Gumbels ``g`` (v1's Algorithm 1, as its public ICLR 2025
review record, OpenReview 5pFV1FxG9d, states it):

.. math::
    x = \operatorname{onehot}(\operatorname{argmax}(θ/τ_f + g)) \sim
        \operatorname{Cat}(\operatorname{softmax}(θ/τ_f)),\qquad
    \hat g = \frac{∂ y}{∂θ}^{\top} ∇_x f(x)
           = \frac1{τ_b}\big(y \odot (∇_x f − y^\top ∇_x f)\big),\quad
    y = \operatorname{softmax}(θ/τ_b + g),

implemented as ``x + y − ⊥y``. The backward pass depends on ``τ_f`` only through which
class ``x`` picks. At ``τ_f = τ_b = τ`` this is the paper's single-temperature ST-GS, which
is ``st_gumbel(temperature=1)`` on the logits ``θ/τ`` (same noise, same sample, ``1/τ`` times
its gradient) and equals ``st_gumbel(temperature=τ)`` only at ``τ = 1``: torch's form keeps
the categorical of ``θ`` forward for every ``τ``; the paper's emits ``Cat(softmax(θ/τ_f))``
(all tested). Against ``∇E_{Cat(softmax θ)} f`` the estimate therefore carries the change of
distribution (``τ_f ≠ 1``) as bias, on top of straight-through's own. Biased.

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
    """Hard one-hot of softmax(θ/τ_f + g) forward, softmax(θ/τ_b + g) backward, one ``g``."""

    key = "decoupled_st"

    def __init__(self, forward_temperature: float = 1.0,
                 backward_temperature: float = 1.0) -> None:
        self.forward_temperature = positive(self.key, "forward_temperature",
                                            forward_temperature)
        self.backward_temperature = positive(self.key, "backward_temperature",
                                             backward_temperature)

    def _sample(self, params, noise, space):
        return cat.one_hot_argmax(params / self.forward_temperature + cat.gumbel(noise))

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        g = cat.gumbel(noise)
        hard = cat.one_hot_argmax(params.detach() / self.forward_temperature + g)
        soft = (params / self.backward_temperature + g).softmax(dim=-1)
        return f(hard + soft - soft.detach())
