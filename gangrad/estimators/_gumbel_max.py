"""The shared part of the estimators whose categorical sample is drawn by Gumbel-max
(straight-through, Gumbel-softmax and their descendants): one uniform per logit, noise of
the params' shape, and the hard sample ``onehot(argmax(θ + g))`` with Gumbels ``g``. Their
rows are independent and they differentiate ``f`` at relaxed or hard points."""

from __future__ import annotations

import torch

from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import AbstractEstimator
from gangrad.spaces import Discrete

__all__ = ["AbstractGumbelMax"]


class AbstractGumbelMax(AbstractEstimator):
    """A discrete estimator on Gumbel-max samples; subclasses write ``_surrogate``."""

    rows_independent = True
    space_types = (Discrete,)
    differentiable_f = True

    def _noise(self, params, space, generator):
        return cat.uniform_noise(params.shape, params, generator)

    def _hard(self, params: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The one-hot Gumbel-max sample ``onehot(argmax(θ + g))``, no gradient."""
        return cat.one_hot_argmax(params.detach() + cat.gumbel(noise))

    def _sample(self, params, noise, space):
        return cat.one_hot_argmax(params + cat.gumbel(noise))
