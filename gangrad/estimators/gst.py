r"""Gapped Straight-Through (Fan, Chi, Rudnicky & Ramadge, 2022, "Training Discrete Deep
Generative Models via Gapped Straight-Through Estimator", ICML).

Straight-through Gumbel-softmax (``st_gumbel``) backpropagates through
``softmax((θ + g)/τ)``; its Gumbel-perturbed logits ``θ + g`` (i) have their argmax at the
sample ``D``, (ii) differ from ``θ`` by a shift that carries no gradient, and (iii) put the
sampled logit above the others by a gap. GST keeps these properties with a *deterministic*
shift given ``D``, so the backward pass needs no Gumbel noise (no resampling). With ``d``
the sampled class and ``θ_max = max_c θ_c``,

.. math::
    m_d = θ_{\max},\qquad m_c = \min(θ_c,\ θ_{\max} − κ)\quad (c ≠ d),\qquad
    m = θ + \bot(m − θ),

    \hat g = \frac{∂ \operatorname{softmax}(m/τ)}{∂θ}^{\top} ∇_x f(x)\Big|_{x=D},

implemented as ``D + s − ⊥s``, ``s = softmax(m/τ)``. The gap ``κ`` is fixed
(``variant="fixed"``, the paper's GST-1.0 at ``gap=1.0``) or ``κ = −\log(1 − π_d)/π_d``
with ``π = softmax θ`` (``variant="p"``, GST-p; ``gap`` is then unused). Given ``D`` the
estimate is deterministic, like straight-through's and unlike ST-Gumbel's, whose
Jacobian also varies with the Gumbels given ``D``: that is the variance it removes. Biased.

Requires: ``f`` differentiable in relaxed ``x``. Spaces: discrete. Noise: uniforms of the
logits' shape (Gumbel-max sampling; the same ``D`` as ``straight_through``).

Args:
    gap: ``κ`` for ``variant="fixed"`` (> 0).
    variant: ``"fixed"`` (GST-κ) or ``"p"`` (GST-p, gap from the sampled probability).
    temperature: ``τ`` of the backward softmax (> 0).
"""

from __future__ import annotations

import torch

from gangrad._validate import choice, positive
from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import Cost
from gangrad.estimators._gumbel_max import AbstractGumbelMax

__all__ = ["GST"]

VARIANTS = ("fixed", "p")


class GST(AbstractGumbelMax):
    """Hard one-hot forward; softmax of deterministically gapped logits backward."""

    key = "gst"

    def __init__(self, gap: float = 1.0, variant: str = "fixed",
                 temperature: float = 0.5) -> None:
        self.gap = positive(self.key, "gap", gap)
        self.variant = choice(self.key, "variant", variant, VARIANTS)
        self.temperature = positive(self.key, "temperature", temperature)

    def _gap(self, theta: torch.Tensor, hard: torch.Tensor) -> torch.Tensor | float:
        if self.variant == "fixed":
            return self.gap
        eps = torch.finfo(theta.dtype).eps
        pi = (hard * theta.softmax(dim=-1)).sum(dim=-1, keepdim=True).clamp(eps, 1 - eps)
        return -torch.log1p(-pi) / pi  # B x L x 1, from 1 (π → 0) upwards

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        theta = params.detach()
        hard = cat.one_hot_argmax(theta + cat.gumbel(noise))  # B x L x C
        top = theta.max(dim=-1, keepdim=True).values
        lifted = hard * (top - (hard * theta).sum(dim=-1, keepdim=True))
        lowered = (1 - hard) * (theta - top + self._gap(theta, hard)).clamp_min(0)
        soft = ((params + lifted - lowered) / self.temperature).softmax(dim=-1)
        return f(hard + soft - soft.detach())
