"""Exact expectations: enumeration for small discrete spaces, quadrature for Gaussians.

These give the reference values that estimators are tested against and, later, the
reference gradients of the gradient-statistics engine.

Discrete: for logits ``θ`` of shape ``(B, L, C)`` the symbols are independent categoricals,
``p_θ(x) = Π_l softmax(θ_l)[x_l]``, and

.. math::  E_{p_θ}[f(x)] = Σ_{x ∈ \\{1..C\\}^L} p_θ(x) f(x),

a differentiable function of ``θ`` whose autograd gradient is exact.

Gaussian: :func:`gauss_hermite` returns nodes and weights of probabilists' Gauss–Hermite
quadrature, ``E_{ε~N(0,1)}[h(ε)] ≈ Σ_i w_i h(ε_i)``, exact for polynomials of degree
``< 2·degree``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import torch

from gangrad.spaces import Discrete

__all__ = [
    "MAX_OUTCOMES",
    "discrete_expectation",
    "discrete_gradient",
    "discrete_log_prob",
    "gauss_hermite",
    "outcomes",
]

MAX_OUTCOMES = 1 << 16

Cost = Callable[[torch.Tensor], torch.Tensor]


def outcomes(space: Discrete, *, max_outcomes: int = MAX_OUTCOMES,
             dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Every sample of ``space`` as one-hot tensors, shape ``(classes**length, length, classes)``.

    Ordered lexicographically by symbol sequence (first position slowest).
    """
    if not isinstance(space, Discrete):
        raise TypeError(f"enumeration needs a Discrete space, got {space}")
    if space.outcomes > max_outcomes:
        raise ValueError(
            f"{space} has {space.outcomes} outcomes, more than max_outcomes={max_outcomes}; "
            "exact enumeration is meant for small spaces"
        )
    symbols = torch.tensor(
        list(itertools.product(range(space.classes), repeat=space.length)), device=device
    ).reshape(space.outcomes, space.length)  # N x L
    return torch.nn.functional.one_hot(symbols, space.classes).to(dtype)  # N x L x C


def discrete_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``log p_θ(x)`` for logits ``(B, L, C)`` and one-hot ``x (N, L, C)``: shape ``(B, N)``."""
    log_p = torch.log_softmax(logits, dim=-1)  # B x L x C
    return torch.einsum("blc,nlc->bn", log_p, x)


def discrete_expectation(logits: torch.Tensor, f: Cost, *,
                         max_outcomes: int = MAX_OUTCOMES) -> torch.Tensor:
    """``E_{p_θ}[f(x)]`` per row, shape ``(B,)``, differentiable in ``logits (B, L, C)``.

    ``f`` is evaluated once on all outcomes (it must treat rows independently).
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must have shape (B, length, classes), got {tuple(logits.shape)}")
    space = Discrete(logits.shape[1], logits.shape[2])
    xs = outcomes(space, max_outcomes=max_outcomes, dtype=logits.dtype, device=logits.device)
    fx = f(xs)  # N
    if fx.shape != (xs.shape[0],):
        raise ValueError(f"f must map (N, *space) to (N,), got output shape {tuple(fx.shape)}")
    return (discrete_log_prob(logits, xs).exp() * fx).sum(-1)


def discrete_gradient(logits: torch.Tensor, f: Cost, *,
                      max_outcomes: int = MAX_OUTCOMES) -> torch.Tensor:
    """Exact ``∇_θ mean_b E_{p_θ_b}[f(x)]``, same shape as ``logits``."""
    theta = logits.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(
        discrete_expectation(theta, f, max_outcomes=max_outcomes).mean(), theta
    )
    return grad


def gauss_hermite(degree: int, *, dtype: torch.dtype = torch.float64,
                  device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights for ``E_{ε~N(0,1)}[h(ε)] ≈ Σ w_i h(ε_i)`` (weights sum to 1)."""
    if degree < 1:
        raise ValueError(f"degree must be an integer >= 1, got {degree}")
    nodes, weights = np.polynomial.hermite_e.hermegauss(degree)
    weights = weights / weights.sum()
    return (torch.as_tensor(nodes, dtype=dtype, device=device),
            torch.as_tensor(weights, dtype=dtype, device=device))
