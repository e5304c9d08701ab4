r"""ReinMax (Liu et al., 2023, "Bridging Discrete and Backpropagation: Straight-Through and
Beyond", Algorithm 2).

Straight-through is the forward-Euler (first-order) approximation of the gradient of
``E_{D~Cat(π_0)} f(D)``, ``π_0 = softmax θ``; ReinMax replaces it with Heun's method
(second order) at no extra cost. With the sampled one-hot ``D`` and

.. math::
    π_1 = \tfrac12\big(D + \operatorname{softmax}(θ/τ)\big),\qquad
    \hat g = \Big(2 J(π_1) − \tfrac12 J(π_0)\Big)^{\top} ∇_x f(x)\Big|_{x=D},
    \qquad J(π) = \operatorname{diag}(π) − ππ^{\top},

``J(π)`` being the Jacobian of ``softmax`` w.r.t. its logits at output ``π``. Algorithm 2
builds it from autograd: ``π_1 ← softmax(⊥(\ln π_1 − θ) + θ)`` (value ``π_1``, Jacobian
``J(π_1)``), ``π_2 = 2π_1 − ½π_0``, output ``D + π_2 − ⊥π_2``. Forward: the hard one-hot
``D``, an exact categorical sample.

Consequences (checked exactly, by enumerating ``D``, in the tests): at ``τ = 1``,
``E_D[J(π_1)] = ¾ J(π_0)`` (as ``E[DD^⊤] = diag π_0``), so ``E[\hat g] = J(π_0)^{\top} c``
is exact for linear ``f(x) = c^{\top}x``; and, Heun's rule being exact for quadratics, the
mean is exact for any ``f`` quadratic in the one-hot ``x``, where straight-through is
biased. It is biased in general (for a cubic ``f`` it can be more biased than
straight-through), and for ``τ ≠ 1`` even for linear ``f``. The authors recommend ``τ ≥ 1``
(their implementation refuses ``τ < 1``).

Requires: ``f`` differentiable in relaxed ``x``. Spaces: discrete. Noise: uniforms of the
logits' shape (Gumbel-max sampling; the same sample as ``straight_through``).

Args:
    temperature: ``τ`` (> 0).
"""

from __future__ import annotations

import torch

from gangrad._validate import positive
from gangrad.estimators._base import Cost
from gangrad.estimators._gumbel_max import AbstractGumbelMax

__all__ = ["ReinMax"]


class ReinMax(AbstractGumbelMax):
    """Hard one-hot forward, Heun's-method (second-order) straight-through backward."""

    key = "reinmax"

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = positive(self.key, "temperature", temperature)

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        hard = self._hard(params, noise)  # B x L x C
        pi0 = params.softmax(dim=-1)
        pi1 = 0.5 * (hard + (params.detach() / self.temperature).softmax(dim=-1))
        log_pi1 = pi1.clamp_min(torch.finfo(pi1.dtype).tiny).log()
        pi1 = (params + (log_pi1 - params).detach()).softmax(dim=-1)
        pi2 = 2 * pi1 - 0.5 * pi0
        return f(hard + pi2 - pi2.detach())
