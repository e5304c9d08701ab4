r"""ARMS, Antithetic-REINFORCE-Multi-Sample (Dimitriev & Zhou, 2021, "ARMS:
Antithetic-REINFORCE-Multi-Sample Gradient for Binary Variables", ICML).

For ``n`` independent ``b_l ~ Bernoulli(p_l)``, ``p = σ(α)``, draw ``S`` samples
``b^{(1..S)}`` whose uniforms are *mutually antithetic* per position (a copula with
negative dependence), and correct leave-one-out REINFORCE for the dependence:

.. math::
    \hat g_l = \frac{1}{(S − 1)(1 − ρ_l)} \sum_{i=1}^S \big(f(b^{(i)}) − \bar f\big)
               \big(b^{(i)}_l − p_l\big),\qquad
    1 − ρ_l = \frac{p_l − r_l}{p_l(1 − p_l)},

with ``\bar f`` the mean of the ``S`` costs, ``r = P(b^{(i)}_l = b^{(j)}_l = 1)`` and ``ρ`` the
correlation of two of the samples (``E[f(b^{(j)})(b^{(i)}_l − p_l)] = ρ_l ∇_l E f`` for
``j ≠ i``, which the factor removes): unbiased. Independent samples (``ρ = 0``) give
leave-one-out REINFORCE; ``S = 2`` gives DisARM exactly.

Copula: the Dirichlet copula, the one of the paper's main experiments (its released code's
``arms``; a Gaussian copula is its alternative). ``d ~ Dirichlet(1_S)``, drawn as the
spacings of ``S − 1`` sorted uniforms, and ``v_i = (1 − d_i)^{S−1}`` are uniform and
negatively dependent; per position the orientation with the smaller joint tail is used,
``u = 1 − v`` for ``p ≥ ½`` and ``u = v`` otherwise, in reverse order (the copula is
exchangeable, so relabelling the samples of one position changes no law), and
``b^{(i)} = 1[u_i < p]``, with

.. math::
    r = \big(2p^{1/(S−1)} − 1\big)_+^{S−1}\ (p < ½),\qquad
    r = 2p − 1 + \big(2(1 − p)^{1/(S−1)} − 1\big)_+^{S−1}\ (p ≥ ½).

For ``S = 2`` the uniforms are ``(v, 1 − v)`` for every ``p``, ``v`` being the noise:
DisARM's pair, sample and estimate from the same ``v``.

Requires: nothing of ``f`` (a black box, called once on ``B·S`` rows, row ``S·b + i`` being
sample ``i`` of row ``b``). Spaces: binary ``Discrete(n, 2)`` only. Params are binary
logits, ``α = θ[..., 1] − θ[..., 0]`` (see :mod:`gangrad.estimators._bernoulli`). The
surrogate's value is the mean of the ``S`` costs; :meth:`sample` emits ``b^{(1)}``.
Noise: uniforms of shape ``(B, S − 1, n)``.

Args:
    samples: ``S``, antithetic samples per row (integer ≥ 2); ``S`` evaluations of ``f``.
"""

from __future__ import annotations

import torch

from gangrad._validate import integer
from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import AbstractEstimator, Cost
from gangrad.estimators._bernoulli import logit, one_hot_binary
from gangrad.spaces import Discrete, Space

__all__ = ["ARMS", "dirichlet_joint"]


def dirichlet_joint(p: torch.Tensor, samples: int) -> torch.Tensor:
    """``P(b^{(i)} = b^{(j)} = 1)`` for two of ``samples`` Dirichlet-copula Bernoullis."""
    k = samples - 1
    low = (2 * p.pow(1 / k) - 1).clamp_min(0).pow(k)
    high = 2 * p - 1 + (2 * (1 - p).pow(1 / k) - 1).clamp_min(0).pow(k)
    return torch.where(p < 0.5, low, high)


class ARMS(AbstractEstimator):
    """Leave-one-out REINFORCE over S Dirichlet-copula antithetic samples, debiased."""

    key = "arms"
    rows_independent = True
    space_types = (Discrete,)
    space_requirement = "binary Discrete(n, 2) spaces (one Bernoulli per position)"
    differentiable_f = False

    def __init__(self, samples: int = 2) -> None:
        self.samples = integer(self.key, "samples", samples, minimum=2)

    @property
    def f_evaluations(self) -> int:  # type: ignore[override]
        return self.samples

    def supports(self, space: Space) -> bool:
        return isinstance(space, Discrete) and space.classes == 2

    def _expected_shapes(self) -> str:
        return "(B, n, 2) for a binary Discrete(n, 2)"

    def _noise(self, params, space, generator):
        shape = (params.shape[0], self.samples - 1, *params.shape[1:-1])
        return cat.uniform_noise(shape, params, generator)

    def _draws(self, alpha: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The ``S`` antithetic samples, ``(B, S, n)``, from ``noise (B, S − 1, n)``."""
        edges = torch.cat([torch.zeros_like(noise[:, :1]), noise.sort(dim=1).values,
                           torch.ones_like(noise[:, :1])], dim=1)
        v = (1 - edges.diff(dim=1)).pow(self.samples - 1)  # B x S x n, uniform marginals
        p = torch.sigmoid(alpha).unsqueeze(1)
        u = torch.where(p < 0.5, v.flip(1), 1 - v)
        return (u < p).to(alpha.dtype)

    def _sample(self, params, noise, space):
        return one_hot_binary(self._draws(logit(params), noise)[:, 0])

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        alpha = logit(params)  # B x n
        S = self.samples
        with torch.no_grad():
            b = self._draws(alpha.detach(), noise)  # B x S x n
            x = one_hot_binary(b)  # B x S x n x 2
            fx = f(x.reshape(-1, *x.shape[2:])).reshape(-1, S)  # B x S
            p = torch.sigmoid(alpha.detach())
            tiny = torch.finfo(p.dtype).tiny
            debias = p * (1 - p) / (p - dirichlet_joint(p, S)).clamp_min(tiny)  # 1/(1 − ρ)
            centred = (fx - fx.mean(1, keepdim=True)).unsqueeze(-1)  # B x S x 1
            g = (centred * (b - p.unsqueeze(1))).sum(1) * debias / (S - 1)  # B x n
        return fx.mean(1) + (g * (alpha - alpha.detach())).sum(-1)
