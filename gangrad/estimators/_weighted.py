r"""Shared maths of the GAN estimators that weight REINFORCE by the discriminator (MaliGAN,
BGAN).

D's logit ``T`` turns into an importance weight. For the discriminator that is optimal
against the generator ``p_θ``, ``D* = σ(T*) = p_d/(p_d + p_θ)`` (Goodfellow et al., 2014,
Prop. 1), so

.. math::  r(x) = \frac{D^*(x)}{1 − D^*(x)} = e^{T^*(x)} = \frac{p_d(x)}{p_θ(x)},

and ``E_{p_θ}[r(x) h(x)] = E_{p_d}[h(x)]`` for any ``h``. With ``N`` samples ``x_i ~ p_θ``
and self-normalised weights ``w_i = r_i / Σ_j r_j = softmax(T)_i``,

.. math::  Σ_i w_i ∇_θ \log p_θ(x_i) \;\longrightarrow\; E_{p_d}[∇_θ \log p_θ(x)]
           = −∇_θ \mathrm{KL}(p_d \,\|\, p_θ) \quad (N → ∞)

at the optimal D: the gradient of the log-likelihood of the data, which both papers ascend
(the normalisation makes the estimate biased by ``O(1/N)``, and the unknown normaliser
``E_{p_θ} r`` cancels). The estimate, which the G step subtracts, is

.. math::  ĝ = −Σ_i (w_i − b)\, ∇_θ \log p_θ(x_i),

written per draw as the *advantage* ``A_i = N(w_i − b) = r_i / \bar r − N b`` (``\bar r``
the group's mean weight): the surrogate of a row with ``S`` draws is
``mean_s f(x_s) − mean_s A_s(\log p_θ(x_s) − ⊥\log p_θ(x_s))``, its value the mean cost, its
gradient ``−(1/S) Σ_s A_s ∇ \log p_θ(x_s)``. With the weights normalised over a row's ``S``
draws, ``N = S``; over the whole batch, ``N = B·S``, and the mean over the batch's rows of
the rows' gradients is ``ĝ`` itself. A constant baseline ``b = 1/N`` (the weights' mean)
leaves the expectation unchanged, since ``E ∇\log p_θ(x) = 0``.

This is not an estimate of ``∇ E_{p_θ}[f(x)]``: ``f`` gives the surrogate's value (the cost
the step reports, and the fakes the discriminator trains on) and plays no part in the
gradient. The gradient statistics measure it against ``∇ E f`` all the same, so the bias
they report is the distance between the two objectives.

Samples: ``S`` per row, one-hot, by Gumbel-max from uniform noise ``(B, S, L, C)``;
:meth:`sample` emits the first. ``f`` and ``logit`` are both called once on the ``B·S``
draws, without gradient.
"""

from __future__ import annotations

import abc

import torch

from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import AbstractEstimator, Cost
from gangrad.spaces import Discrete

__all__ = ["AbstractDiscriminatorWeighted"]


class AbstractDiscriminatorWeighted(AbstractEstimator):
    """REINFORCE weighted by ``exp`` of D's logit at ``samples`` one-hot draws per row."""

    space_types = (Discrete,)
    differentiable_f = False
    needs_logit = True
    samples: int

    @abc.abstractmethod
    def _advantage(self, logits: torch.Tensor) -> torch.Tensor:
        """``A (B, S)`` from D's logits ``T (B, S)`` at the draws (no gradient)."""

    @property
    def f_evaluations(self) -> int:  # type: ignore[override]
        return self.samples

    def _noise(self, params, space, generator):
        shape = (params.shape[0], self.samples, *params.shape[1:])  # B x S x L x C
        return cat.uniform_noise(shape, params, generator)

    @staticmethod
    def _draws(params: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return cat.one_hot_argmax(params.unsqueeze(1) + cat.gumbel(noise))  # B x S x L x C

    def _sample(self, params, noise, space):
        return self._draws(params, noise)[:, 0]

    def _surrogate(self, params: torch.Tensor, f: Cost, noise: torch.Tensor,
                   space: Discrete, *, logit: Cost) -> torch.Tensor:
        B, S = params.shape[0], self.samples
        x = self._draws(params.detach(), noise)
        flat = x.reshape(B * S, *x.shape[2:])
        with torch.no_grad():
            fx = f(flat).reshape(B, S)
            advantage = self._advantage(logit(flat).reshape(B, S))
        log_p = cat.log_prob(params.unsqueeze(1), x)  # B x S
        return fx.mean(1) - (advantage * (log_p - log_p.detach())).mean(1)
