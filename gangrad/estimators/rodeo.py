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
network ``h_φ`` of the first-order Taylor expansion of ``f`` around each other sample,
averaged over the other samples:

.. math::
    (h_k, \tilde h_k)(y) = \frac1{K−1}\sum_{j≠k} h_φ\big(ℓ_j(y), f(b_j)\big),\qquad
    ℓ_j(y) = ∇_b f(b_j)^\top (y − b_j),

so neighbours ``b^{(i)}`` are scored by the network, never by ``f``. The network's *outputs*
are averaged: this is the released code's ``discrete_stein_output_avg``, the variant its
authors run for ``K > 2``; at ``K = 2`` (one other sample) it is their
``discrete_stein_avg``, which averages the *inputs* instead. It costs ``K(K − 1)(n + 1)``
evaluations of the small network per row, ``f`` still ``K``. After 300 :meth:`learn` steps
(batches of 64, ``cv_lr`` 1e-2), RODEO's variance over RLOO's at ``K = 3, 4`` is 0.10–0.11
on a quadratic cost of 3 bits (0.32–0.44 with averaged inputs) and 0.036–0.037 on a
softplus of 10 bits (0.033–0.035 with averaged inputs).

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
    def _h(control: ms.Control, linear: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
        """``h_φ`` at inputs of one shape ``(...)``: ``(..., 2)``."""
        inputs = torch.stack(torch.broadcast_tensors(linear, cost), dim=-1)
        return torch.tanh(inputs @ control["w1"] + control["b1"]) @ control["w2"] + control["b2"]

    def _estimate(self, params: torch.Tensor, f: Cost, noise: torch.Tensor,
                  control: ms.Control) -> tuple[torch.Tensor, torch.Tensor]:
        """``f(b_k)`` ``(B, K)`` and ``ĝ_α`` ``(B, n)``; differentiable in ``control``."""
        n = params.shape[1]
        p = torch.sigmoid(logit(params)).unsqueeze(1)  # B x 1 x n
        b = ms.bernoulli_draws(p[:, 0], noise)  # B x K x n
        K = b.shape[1]
        fx, slope = ms.values_and_slopes(f, b)
        # the other samples j ≠ k of each k: K x (K − 1)
        others = torch.tensor([[j for j in range(K) if j != k] for k in range(K)],
                              device=b.device)
        slope_j, b_j, f_j = slope[:, others], b[:, others], fx[:, others]  # B x K x K−1 (x n)
        linear = (slope_j * (b.unsqueeze(2) - b_j)).sum(-1)  # ℓ_j(b_k): B x K x K−1
        # ℓ_j(b_k^{(i)}): B x K x K−1 x n
        linear_flip = linear.unsqueeze(-1) + slope_j * (1 - 2 * b).unsqueeze(2)
        h = self._h(control, linear, f_j).mean(2)  # B x K x 2
        h_flip = self._h(control, linear_flip, f_j.unsqueeze(-1)).mean(2)  # B x K x n x 2
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
