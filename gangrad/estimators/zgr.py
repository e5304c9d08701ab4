r"""ZGR, the zero-temperature Gumbel-Rao estimator (Shekhovtsov, 2023, "Cold Analysis of
Rao-Blackwellized Straight-Through Gumbel-Softmax Gradient Estimator", ICML).

Forward: the hard one-hot ``x = onehot(argmax(θ + g))``, an exact categorical sample.
Backward: the limit ``τ → 0`` of the Gumbel-Rao Jacobian ``E[∂ softmax((θ+g)/τ)/∂θ | x]``
(``rao_blackwell_st``), which has a closed form: the average of straight-through and DARN,

.. math::
    \hat g = \tfrac12\Big(\underbrace{J(p)^{\top} ∇_x f}_{\text{ST}}
             + \underbrace{∇_θ \log p(x)\,⟨∇_x f,\ x − p⟩}_{\text{DARN}}\Big)\Big|_{x},
    \qquad p = \operatorname{softmax} θ,\ J(p) = \operatorname{diag} p − pp^{\top},

per position. Implemented as ``x + d − ⊥d`` with ``d = ½(p + (x − ⊥p)\log p(x))``
(``log p(x)`` the log-probability of the drawn symbol). ST and DARN are each exact in mean
for ``f`` linear in the one-hot ``x``; their biases on the quadratic terms cancel, so ZGR's
mean is exact for every ``f`` of degree ≤ 2 in ``x`` (ibid.), checked by enumeration in the
tests; it is biased for higher degrees. No temperature; one evaluation of ``f``.

Per position the backward matrix is ``½(diag p + xx^⊤ − xp^⊤ − px^⊤)``, which is also
ReinMax's ``2J(½(x + p)) − ½J(p)`` at ``τ = 1`` (expand it with ``diag x = xx^⊤``): for the
same noise ``zgr`` and ``reinmax(temperature=1)`` give the same estimate (tested).

Requires: ``f`` differentiable in relaxed ``x``. Spaces: discrete. Noise: uniforms of the
logits' shape (Gumbel-max sampling; the same sample as ``straight_through``).
"""

from __future__ import annotations

import torch

from gangrad.estimators._base import Cost
from gangrad.estimators._gumbel_max import AbstractGumbelMax

__all__ = ["ZGR"]


class ZGR(AbstractGumbelMax):
    """Hard one-hot forward; backward the average of straight-through and DARN."""

    key = "zgr"

    def __init__(self) -> None:
        pass

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        hard = self._hard(params, noise)  # B x L x C
        log_p = params.log_softmax(dim=-1)
        p = log_p.exp()
        log_px = (hard * log_p).sum(dim=-1, keepdim=True)  # B x L x 1
        d = 0.5 * (p + (hard - p.detach()) * log_px)
        return f(hard + d - d.detach())
