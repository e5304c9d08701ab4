r"""Measure-valued gradient of a Gaussian mean (Pflug, 1989, "Sampling derivatives of
probabilities"; Mohamed, Rosca, Figurnov & Mnih, 2020, "Monte Carlo Gradient Estimation in
Machine Learning", JMLR, §6).

The derivative of the density ``N(x; μ, σ²)`` in ``μ`` is a signed measure, written as
the difference of two probability densities (its *weak derivative*, Hahn–Jordan form):
``∂_μ N(x; μ, σ²) = c (p^+(x) − p^−(x))`` with ``c = 1/(σ\sqrt{2π})`` and ``p^±`` the
law of ``μ ± σw``, ``w ~ Weibull(scale √2, shape 2)`` (a Rayleigh, density
``w e^{−w²/2}``). Hence

.. math::
    ∂_{μ_k} E_{x∼N(μ, σ²I)} f(x) = \frac{1}{σ\sqrt{2π}}
        E\big[f(μ + σ(ε_{−k} + w_k e_k)) − f(μ + σ(ε_{−k} − w_k e_k))\big],

``ε_{−k}`` the other coordinates of ``ε ~ N(0, I)``. The two sides share ``w_k`` and
``ε_{−k}`` (coupling, which lowers the variance). Unbiased for any integrable ``f``,
which is a black box (no gradient through it, nor differentiability). For
``f = (x − k)²`` in one dimension the estimate is ``4(μ − k)w/\sqrt{2π}``: mean
``2(μ − k)``, variance ``(16/π − 4)(μ − k)² ≈ 1.093(μ − k)²`` (0 at ``μ = k``).

Cost: one pair per coordinate, ``2·dim`` evaluations for the gradient, plus one at the
emitted Gaussian sample ``x = μ + σε``, whose cost is the surrogate's value (the pair
points are not Gaussian, so their mean would not estimate ``E f``): ``2·dim + 1`` calls
of ``f`` per row (:meth:`evaluations`; ``f_evaluations`` is the one-dimensional 3).
``f`` is called twice: on the ``B`` samples, then on the ``2·B·dim`` pair points (row
``2(dim·b + k) + j`` is side ``j`` (0: ``+``, 1: ``−``) of coordinate ``k`` of row ``b``).

Requires: nothing of ``f``. Spaces: continuous. Params: the mean ``μ (B, dim)``. Noise:
``(B, 2, dim)``: ``[:, 0]`` is ``ε``, ``[:, 1]`` is ``w``.

Args:
    sigma: the fixed standard deviation ``σ`` (> 0), as in ``score_function``.
"""

from __future__ import annotations

import math

import torch

from gangrad._validate import positive
from gangrad.estimators._base import AbstractEstimator, Cost
from gangrad.spaces import Continuous, Space

__all__ = ["MeasureValued"]


class MeasureValued(AbstractEstimator):
    """Weak derivative of N(μ, σ²): coupled Weibull pairs, one per coordinate of μ."""

    key = "measure_valued"
    rows_independent = True
    space_types = (Continuous,)
    differentiable_f = False
    f_evaluations = 3

    def __init__(self, sigma: float = 0.1) -> None:
        self.sigma = positive(self.key, "sigma", sigma)

    def evaluations(self, space: Space) -> float:
        self._check_supported(space)
        return float(2 * space.dim + 1)

    def _noise(self, params, space, generator):
        kw = {"generator": generator, "dtype": params.dtype, "device": params.device}
        eps = torch.randn(params.shape, **kw)
        u = torch.rand(params.shape, **kw).clamp_min(torch.finfo(params.dtype).tiny)
        w = torch.sqrt(-2 * torch.log(u))  # Weibull(√2, 2) by its inverse CDF
        return torch.stack([eps, w], dim=1)

    def _sample(self, params, noise, space):
        return params + self.sigma * noise[:, 0]

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        mu = params.detach()  # B x d
        eps, w = noise[:, 0], noise[:, 1]
        d = mu.shape[-1]
        with torch.no_grad():
            value = f(mu + self.sigma * eps)  # B
            eye = torch.eye(d, dtype=mu.dtype, device=mu.device)
            sides = torch.tensor([1.0, -1.0], dtype=mu.dtype, device=mu.device)
            # B x d(k) x 2(side) x d: ε with coordinate k replaced by ±w_k
            z = (eps[:, None, None, :] * (1 - eye)[None, :, None, :]
                 + sides[None, None, :, None] * (w[:, :, None, None] * eye[None, :, None, :]))
            fx = f((mu[:, None, None, :] + self.sigma * z).reshape(-1, d)).reshape(-1, d, 2)
            g = (fx[..., 0] - fx[..., 1]) / (self.sigma * math.sqrt(2 * math.pi))  # B x d
        return value + (g * (params - params.detach())).sum(-1)
