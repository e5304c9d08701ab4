r"""Antithetic pairs of Bernoulli samples: the shared part of ARM and DisARM.

A binary space ``Discrete(n, 2)`` is ``n`` independent Bernoullis. Its params are the
logits ``θ (B, n, 2)``, so the Bernoulli logit is ``α = θ[..., 1] − θ[..., 0]`` and
``p = σ(α) = softmax(θ)[..., 1]``; an estimate ``g`` of ``∇_α E f`` maps to the params as
``∂/∂θ[..., 1] = +g``, ``∂/∂θ[..., 0] = −g`` (the surrogate differentiates ``α``).

From one uniform ``u`` per position the pair

.. math::  b = 1[u < σ(α)],\qquad b̃ = 1[1 − u < σ(α)]

has both members exactly ``Bernoulli(σ(α))`` (``1 − u`` is uniform too) and is
antithetic. ``f`` is called once on the pair (``2B`` rows, row ``2i`` is ``b_i`` and row
``2i + 1`` is ``b̃_i``) and is a black box (no gradient through it). The surrogate's value
is the pair's mean cost ``(f(b) + f(b̃))/2``, an unbiased estimate of ``E f``;
:meth:`sample` emits the one-hot of ``b``. Noise: ``u`` of shape ``(B, n)``.
"""

from __future__ import annotations

import abc

import torch

from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import AbstractEstimator, Cost
from gangrad.spaces import Discrete, Space

__all__ = ["AbstractAntithetic", "logit", "one_hot_binary"]


def logit(params: torch.Tensor) -> torch.Tensor:
    """Bernoulli logits ``α = θ[..., 1] − θ[..., 0]`` of binary one-hot logits ``θ``."""
    return params[..., 1] - params[..., 0]


def one_hot_binary(b: torch.Tensor) -> torch.Tensor:
    """``(..., n)`` of zeros and ones -> one-hot ``(..., n, 2)`` over ``{0, 1}``."""
    return torch.stack([1 - b, b], dim=-1)


class AbstractAntithetic(AbstractEstimator):
    """An estimator from ``f`` at an antithetic pair ``(b, b̃)``; binary spaces only."""

    space_types = (Discrete,)
    space_requirement = "binary Discrete(n, 2) spaces (one Bernoulli per position)"
    differentiable_f = False
    f_evaluations = 2

    @abc.abstractmethod
    def _logit_gradient(self, f_b: torch.Tensor, f_tilde: torch.Tensor, alpha: torch.Tensor,
                        u: torch.Tensor, b: torch.Tensor, b_tilde: torch.Tensor
                        ) -> torch.Tensor:
        """The estimate of ``∇_α E f``, ``(B, n)``, from ``f(b), f(b̃) (B,)`` and the rest
        ``(B, n)``."""

    def supports(self, space: Space) -> bool:
        return isinstance(space, Discrete) and space.classes == 2

    def _expected_shapes(self) -> str:
        return "(B, n, 2) for a binary Discrete(n, 2)"

    def _noise(self, params, space, generator):
        return cat.uniform_noise(params.shape[:-1], params, generator)

    def _pair(self, alpha: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.sigmoid(alpha)
        return (u < p).to(alpha.dtype), (1 - u < p).to(alpha.dtype)

    def _sample(self, params, noise, space):
        return one_hot_binary(self._pair(logit(params), noise)[0])

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        alpha = logit(params)  # B x n
        with torch.no_grad():
            b, b_tilde = self._pair(alpha.detach(), noise)
            pair = one_hot_binary(torch.stack([b, b_tilde], dim=1))  # B x 2 x n x 2
            fx = f(pair.reshape(-1, *pair.shape[2:])).reshape(-1, 2)  # B x 2
            g = self._logit_gradient(fx[:, 0], fx[:, 1], alpha.detach(), noise, b, b_tilde)
        return fx.mean(1) + (g * (alpha - alpha.detach())).sum(-1)
