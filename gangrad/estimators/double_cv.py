r"""Double control variates (Titsias & Shi, AISTATS 2022, "Double Control Variates for
Gradient Estimation in Discrete Latent Variable Models").

The leave-one-out REINFORCE estimate (RLOO) with ``K`` samples ``b_k ~ Bernoulli(p)``,
``p = σ(α)``, uses the other samples' mean cost as the *main* control variate. Its
baseline is noisy; a *second* control variate, from a first-order Taylor expansion of ``f``
with slope ``s_{−k}``, corrects each cost before the baselines are formed:

.. math::
    \tilde f_k = f(b_k) − β\, s_{−k}^\top (b_k − p),\qquad
    \hat g_α = \frac1K \sum_k \Big(\tilde f_k − \frac1{K−1}\sum_{j≠k}\tilde f_j\Big)(b_k − p)
    \;+\; β\,\bar s \odot p(1 − p),

with ``b_k − p = ∇_α \log q(b_k)`` and ``\bar s = \frac1K Σ_k s_{−k}``. The last term is
the expectation the Taylor term removes (``E[(s_{−k}^\top (b_k − p))(b_k − p)] =
s_{−k} \odot p(1 − p)`` because ``s_{−k}`` does not depend on ``b_k``), so the estimate is
unbiased for every ``β``; ``β = 0`` is RLOO. The slope (``expansion``):

- ``"samples"`` (the paper's method, no extra evaluation): the other samples' mean
  gradient ``s_{−k} = \frac1{K−1}\sum_{j≠k} ∇_b f(b_j)``, from the backward pass through
  ``f(b_j)``.
- ``"mean"`` (gangrad's variant, not in the paper: MuProp's expansion point, Gu et al.
  2016, inside the leave-one-out estimate): ``s = ∇_b f(p)``, one more evaluation of ``f``
  at the relaxed point ``x = (1 − p, p)``. For ``f`` linear in ``b`` and ``β = 1`` the
  estimate is exact.

On the paper's toy as its released notebook runs it (maximise
``E mean_d (b_d − 0.499)²``, ``D = 200``, ``K = 2``, RMSprop from ``p = 0.5``), the
variance over RLOO's is 1 at step 0 (``β = 0``), 0.17–0.25 at step 500 and 0.005–0.04 at
step 1000 (eight seeds; ``tests/test_estimators_frontier_b.py``): once the samples'
slopes agree, the Taylor term removes most of the noise. With ``K = 3`` the leave-one-out
slopes no longer cancel the samples' cross terms and the same figures are 0.76–0.92 and
0.12–0.26 over RLOO with ``K = 3``. The expansion at the mean, at the same three
evaluations, is 0.33–0.56 (step 500) and 0.06–0.28 (step 1000) times the paper's ``K = 3``
and below RLOO's. Against the paper's ``K = 2`` (two evaluations) its variance is
0.72–1.10 times as large at step 500 and 0.39–1.9 at step 1000: per evaluation it is worse
at step 500 in every seed and no better on balance at step 1000.

``β`` is learned during use, as in the paper's released code: initially 0 (RLOO), one Adam
step (learning rate ``cv_lr``) per :meth:`learn` on ``mean_b ‖ĝ_b‖²``; see
:mod:`gangrad.estimators._multisample` for the learned state. The paper treats binary
latent variables only, and so does this module.

Requires: ``f`` differentiable in ``x`` (slopes ``∂f/∂x_1 − ∂f/∂x_0``). ``f`` is called on
the ``K`` samples (``B·K`` rows; the surrogate's value is their mean cost, :meth:`sample`
emits the first) with one vector-Jacobian product through that call, and with
``expansion="mean"`` once more at ``p``: ``f_evaluations = K`` (``K + 1``). Noise:
uniforms ``(B, K, n)``. Spaces: binary ``Discrete(n, 2)`` only.

Args:
    samples: ``K``, samples per row (integer ≥ 2).
    expansion: ``"samples"`` or ``"mean"``, where the Taylor slope is taken.
    cv_lr: Adam learning rate of ``β`` (> 0).
"""

from __future__ import annotations

import torch

from gangrad._validate import choice, integer, positive
from gangrad.estimators import _multisample as ms
from gangrad.estimators._bernoulli import logit

__all__ = ["DoubleCV"]

EXPANSIONS = ("samples", "mean")


class DoubleCV(ms.AbstractLearnedBinary):
    """RLOO whose costs are corrected by a Taylor control variate; unbiased, binary only."""

    key = "double_cv"

    def __init__(self, samples: int = 2, expansion: str = "samples",
                 cv_lr: float = 1e-3) -> None:
        self.samples = integer(self.key, "samples", samples, minimum=2)
        self.expansion = choice(self.key, "expansion", expansion, EXPANSIONS)
        self.cv_lr = positive(self.key, "cv_lr", cv_lr)

    @property
    def f_evaluations(self) -> int:  # type: ignore[override]
        return self.samples + (self.expansion == "mean")

    def _init_control(self, shape: tuple[int, ...]) -> ms.Control:
        return {"weight": torch.tensor(0.0, dtype=torch.float64)}

    def _estimate(self, params, f, noise, control):
        p = torch.sigmoid(logit(params))  # B x n
        b = ms.bernoulli_draws(p, noise)  # B x K x n
        fx, slope = ms.values_and_slopes(f, b)  # B x K, B x K x n
        if self.expansion == "samples":
            slope = ms.leave_one_out(slope)
        else:
            slope = ms.values_and_slopes(f, p.unsqueeze(1))[1].expand_as(b)
        beta = control["weight"]
        taylor = (slope * (b - p.unsqueeze(1))).sum(-1)  # B x K
        corrected = fx - beta * taylor
        advantage = corrected - ms.leave_one_out(corrected)
        g = ((advantage.unsqueeze(-1) * (b - p.unsqueeze(1))).mean(1)
             + beta * slope.mean(1) * p * (1 - p))
        return fx, g
