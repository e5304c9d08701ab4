r"""IndeCateR (De Smet, Sansone & Zuidberg Dos Martires, NeurIPS 2023, "Differentiable
Sampling of Categorical Distributions Using the CatLog-Derivative Trick").

For ``L`` independent categoricals ``x_d ~ Cat(p_d)``, ``p_d = softmax(θ_d)``, the
CatLog-derivative trick sums out one variable at a time:

.. math::
    ∇_θ E[f(x)] = \sum_{d=1}^{L} E_{x_{−d}}\Big[\sum_{k=1}^{C} ∇_θ p_d(k)\,
    f(x_{−d}, x_d = k)\Big],

and IndeCateR estimates the outer expectation with the same samples for every ``d``:

.. math::
    \hat g = \frac1S \sum_{s=1}^{S} \sum_{d=1}^{L} \sum_{k=1}^{C} ∇_θ p_d(k)\,
    f\big(x^{(s)}_{−d}, x_d = k\big),\qquad x^{(s)} \sim p_θ .

Unbiased; a baseline would change nothing (``Σ_k ∇p_d(k) = 0``). ``f`` is a black box.
Of the ``L·C`` points per sample, the ``L`` with ``k = x_d`` are ``x`` itself, so ``f`` is
called on ``x`` (``B·S`` rows: what :meth:`sample` emits (the first draw) and what the
surrogate's value is) and on the ``L(C − 1)`` points that differ from it
(``B·S·L·(C − 1)`` rows): ``S·(1 + L(C − 1))`` evaluations per row, at most the paper's
``S·L·C`` (:meth:`evaluations`; ``f_evaluations`` is its value on ``Discrete(1, 2)``:
``2S``). Memory: the variants hold ``B·S·L²·C(C − 1)`` numbers.

Noise: uniforms ``(B, S, L, C)``, Gumbel-max as in ``score_function``. Spaces: discrete,
any number of classes.

Args:
    samples: ``S``, samples per row (integer ≥ 1; the paper's ``N``).
"""

from __future__ import annotations

import torch

from gangrad._validate import integer
from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import AbstractEstimator, Cost
from gangrad.spaces import Discrete, Space

__all__ = ["IndeCateR"]


class IndeCateR(AbstractEstimator):
    """Sum out each position exactly, given the others' sampled values; unbiased."""

    key = "indecater"
    space_types = (Discrete,)
    differentiable_f = False
    rows_independent = True

    def __init__(self, samples: int = 1) -> None:
        self.samples = integer(self.key, "samples", samples, minimum=1)

    @property
    def f_evaluations(self) -> int:  # type: ignore[override]
        return 2 * self.samples

    def evaluations(self, space: Space) -> float:
        self._check_supported(space)
        return float(self.samples * (1 + space.length * (space.classes - 1)))

    def _noise(self, params, space, generator):
        shape = (params.shape[0], self.samples, *params.shape[1:])  # B x S x L x C
        return cat.uniform_noise(shape, params, generator)

    def _draws(self, params: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return cat.one_hot_argmax(params.unsqueeze(1) + cat.gumbel(noise))  # B x S x L x C

    def _sample(self, params, noise, space):
        return self._draws(params, noise)[:, 0]

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        B, S = params.shape[0], self.samples
        L, C = params.shape[1:]
        with torch.no_grad():
            x = self._draws(params.detach(), noise)  # B x S x L x C
            fx = f(x.reshape(B * S, L, C)).reshape(B, S)
            classes = torch.arange(C, device=params.device)
            # the C − 1 other classes of each position: (x_d + j) mod C, j = 1..C−1
            other = (x.argmax(-1).unsqueeze(-1) + classes[1:]) % C  # B x S x L x (C−1)
            other = (other.unsqueeze(-1) == classes).to(x.dtype)  # B x S x L x (C−1) x C
            at_d = torch.eye(L, dtype=x.dtype, device=x.device).view(1, 1, L, 1, L, 1)
            variants = x[:, :, None, None] * (1 - at_d) + at_d * other.unsqueeze(-2)
            fv = f(variants.reshape(-1, L, C)).reshape(B, S, L, C - 1)
            # f(x_{−d}, x_d = k) for every d, k: B x S x L x C
            table = fx[..., None, None] * x + (fv.unsqueeze(-1) * other).sum(-2)
        probs = params.softmax(-1)
        return fx.mean(1) + ((probs - probs.detach()) * table.mean(1)).sum((1, 2))
