r"""RODEO (Shi, Zhou, Hwang, Titsias & Mackey, NeurIPS 2022, "Gradient Estimation with
Discrete Stein Operators"), for binary ``b``.

A Markov chain that leaves ``q`` invariant gives zero-mean control variates: with the
Gibbs kernel that picks a position ``i`` uniformly and resamples it, the *Stein operator*

.. math::
    (\mathcal A h)(b) = \frac1n \sum_{i=1}^{n} q_i(\bar b_i)\,\big(h(b^{(i)}) − h(b)\big),
    \qquad E_{b∼q}[(\mathcal A h)(b)] = 0 \text{ for every } h,

where ``b^{(i)}`` is ``b`` with bit ``i`` flipped and ``q_i(\bar b_i)`` the probability of
the flipped value. With ``K`` samples ``b_k ~ Bernoulli(p)``, ``p = σ(α)``, RODEO adds two
such control variates to leave-one-out REINFORCE (RLOO):

.. math::
    \hat g_α = \frac1K \sum_k \Big[\Big(f(b_k) − \frac1{K−1}\sum_{j≠k}\big(f(b_j) +
    (\mathcal A h_j)(b_j)\big)\Big)(b_k − p) + \big(\mathcal A [\tilde h_k · (· − p)]\big)(b_k)
    \Big],

one inside the baseline (a better estimate of ``E f``) and one on the score directly
(``y ↦ \tilde h_k(y)(y − p)``). Both ``h_k`` and ``\tilde h_k`` depend on the other samples
only, so each term has mean zero: unbiased for every ``h``. They are the two outputs of a
network ``h_φ(ℓ_k(y), \bar f_{−k})`` of the Taylor expansion of ``f`` around the other
samples, ``\bar f_{−k} = \frac1{K−1}Σ_{j≠k} f(b_j)`` and
``ℓ_k(y) = \frac1{K−1}Σ_{j≠k} ∇_b f(b_j)^\top (y − b_j)`` (the released code's ``avg``
variant): neighbours ``b^{(i)}`` are scored by the network, never by ``f``.

Learned during use (:meth:`learn`, one Adam step per call, learning rate ``cv_lr``,
minimising ``mean_b ‖\hat g_b‖²``, as in the released code): ``φ``. Choices where the paper
leaves one: one hidden layer of ``hidden`` tanh units on the two scalar inputs (the
released code: 100 leaky-ReLU units), first layer uniform in ``±1/√2`` from a fixed-seed
NumPy generator, output layer zero, so RODEO starts as RLOO (the released code starts from
zero coefficients instead); ``cv_lr`` 1e-3 as in the released code. The network sees
scalars only, so one control variate serves every binary space; state handling (made by
the first :meth:`learn` on the params' device and dtype, shared by :meth:`frozen` copies,
forgotten by ``reset``, never created by the surrogate) is in
:mod:`gangrad.estimators._multisample`.

Requires: ``f`` differentiable in ``x`` (slopes at the samples, one vector-Jacobian
product; :mod:`gangrad.estimators._multisample`). ``f`` is called on the ``K`` samples:
``f_evaluations = K``; the surrogate's value is their mean cost and :meth:`sample` emits
the first. Noise: uniforms ``(B, K, n)``. Spaces: binary ``Discrete(n, 2)`` only.

Args:
    samples: ``K``, samples per row (integer ≥ 2).
    hidden: hidden units of ``h_φ`` (integer ≥ 1).
    cv_lr: Adam learning rate of ``φ`` (> 0).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gangrad._validate import integer, positive
from gangrad.estimators import _multisample as ms
from gangrad.estimators._base import Cost
from gangrad.estimators._bernoulli import logit

__all__ = ["RODEO"]

INIT_SEED = 0


class RODEO(ms.AbstractLearnedBinary):
    """RLOO with two learned discrete-Stein control variates; unbiased, binary only."""

    key = "rodeo"

    def __init__(self, samples: int = 2, hidden: int = 32, cv_lr: float = 1e-3) -> None:
        self.samples = integer(self.key, "samples", samples, minimum=2)
        self.hidden = integer(self.key, "hidden", hidden, minimum=1)
        self.cv_lr = positive(self.key, "cv_lr", cv_lr)

    @property
    def f_evaluations(self) -> int:  # type: ignore[override]
        return self.samples

    def _init_control(self, shape: tuple[int, ...]) -> ms.Control:
        """Fresh float64 CPU tensors of ``h_φ``; the same for every per-sample ``shape``."""
        bound = 1 / math.sqrt(2)
        rng = np.random.default_rng(INIT_SEED)
        return {"w1": torch.from_numpy(rng.uniform(-bound, bound, (2, self.hidden))),
                "b1": torch.from_numpy(rng.uniform(-bound, bound, self.hidden)),
                "w2": torch.zeros(self.hidden, 2, dtype=torch.float64),
                "b2": torch.zeros(2, dtype=torch.float64)}

    @staticmethod
    def _h(control: ms.Control, linear: torch.Tensor, mean_cost: torch.Tensor) -> torch.Tensor:
        """``h_φ`` at inputs of one shape ``(...)``: ``(..., 2)``."""
        inputs = torch.stack(torch.broadcast_tensors(linear, mean_cost), dim=-1)
        return torch.tanh(inputs @ control["w1"] + control["b1"]) @ control["w2"] + control["b2"]

    def _estimate(self, params: torch.Tensor, f: Cost, noise: torch.Tensor,
                  control: ms.Control) -> tuple[torch.Tensor, torch.Tensor]:
        """``f(b_k)`` ``(B, K)`` and ``ĝ_α`` ``(B, n)``; differentiable in ``control``."""
        n = params.shape[1]
        p = torch.sigmoid(logit(params)).unsqueeze(1)  # B x 1 x n
        b = ms.bernoulli_draws(p[:, 0], noise)  # B x K x n
        fx, slope = ms.values_and_slopes(f, b)
        slope_loo = ms.leave_one_out(slope)  # B x K x n
        mean_cost = ms.leave_one_out(fx)  # B x K
        linear = (slope_loo * b).sum(-1) - ms.leave_one_out((slope * b).sum(-1))  # ℓ_k(b_k)
        linear_flip = linear.unsqueeze(-1) + slope_loo * (1 - 2 * b)  # ℓ_k(b^{(i)}): B x K x n
        h = self._h(control, linear, mean_cost)  # B x K x 2
        h_flip = self._h(control, linear_flip, mean_cost.unsqueeze(-1))  # B x K x n x 2
        w = p * (1 - b) + (1 - p) * b  # q_i(flipped value): B x K x n
        stein_f = (w * (h_flip[..., 0] - h[..., :1])).mean(-1)  # (A h_k)(b_k): B x K
        score = b - p  # B x K x n
        # (A[h̃ (· − p)])(b_k), coordinate l: the flip of bit l also moves (y − p)_l
        stein_score = (score * (w * h_flip[..., 1]).mean(-1, keepdim=True)
                       + w * h_flip[..., 1] * (1 - 2 * b) / n
                       - score * h[..., 1:] * w.mean(-1, keepdim=True))
        baseline = ms.leave_one_out(fx + stein_f)
        g = ((fx - baseline).unsqueeze(-1) * score + stein_score).mean(1)
        return fx, g
