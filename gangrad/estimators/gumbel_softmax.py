"""Gumbel-softmax / Concrete relaxation (Jang et al., 2017; Maddison et al., 2017).

.. math::  x = \\operatorname{softmax}((θ + g)/τ),\\qquad g_c = −\\log(−\\log u_c),

a relaxed one-hot vector, differentiated pathwise. Unbiased for the *relaxed* objective
``E_g f(softmax((θ+g)/τ))``, biased for ``E_{x~Cat(θ)} f(x)``; the bias shrinks as the
temperature τ → 0 while the variance grows (roughly like 1/τ).

Equivalent to ``torch.nn.functional.gumbel_softmax(θ, tau=τ, hard=False)``, written out so
that the noise can be passed in (fixed, replayed, vmapped).

Requires: ``f`` differentiable in relaxed ``x``. Spaces: discrete. ``f`` sees the relaxed
vector; :meth:`sample` emits the hard one-hot ``argmax(θ + g)`` of the same Gumbels (a
symbol, as every discrete estimator but ``pathwise`` emits). A training loop that wants
its discriminator to see exactly what ``f`` saw records ``f``'s input.
"""

from __future__ import annotations

import torch

from gangrad._validate import positive
from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import Cost
from gangrad.estimators._gumbel_max import AbstractGumbelMax

__all__ = ["GumbelSoftmax"]


class GumbelSoftmax(AbstractGumbelMax):
    """Relaxed one-hot x = softmax((logits + Gumbel)/τ), pathwise gradient."""

    key = "gumbel_softmax"

    def __init__(self, temperature: float = 0.5) -> None:
        self.temperature = positive(self.key, "temperature", temperature)

    def _relaxed(self, params: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return ((params + cat.gumbel(noise)) / self.temperature).softmax(dim=-1)

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        return f(self._relaxed(params, noise))
