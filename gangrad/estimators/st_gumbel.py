"""Straight-through Gumbel-softmax (Jang et al., 2017, "ST Gumbel-Softmax").

Forward: the hard one-hot ``argmax(θ + g)``, an exact categorical sample. Backward: through
the relaxation ``y = softmax((θ + g)/τ)`` of the same Gumbels,
implemented as ``hard + y − stop_gradient(y)``. Biased; the emitted sample is one-hot.
Equivalent to ``torch.nn.functional.gumbel_softmax(θ, tau=τ, hard=True)`` with the noise
passed in.

Requires: ``f`` differentiable in relaxed ``x``. Spaces: discrete.
"""

from __future__ import annotations

import torch

from gangrad._validate import positive
from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import Cost
from gangrad.estimators._gumbel_max import AbstractGumbelMax

__all__ = ["STGumbel"]


class STGumbel(AbstractGumbelMax):
    """Hard one-hot forward (Gumbel-max), Gumbel-softmax relaxation backward."""

    key = "st_gumbel"

    def __init__(self, temperature: float = 0.5) -> None:
        self.temperature = positive(self.key, "temperature", temperature)

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        scores = params + cat.gumbel(noise)
        soft = (scores / self.temperature).softmax(dim=-1)
        return f(cat.one_hot_argmax(scores.detach()) + soft - soft.detach())
