"""Score-function estimator (REINFORCE; Williams, 1992; Glynn, 1990).

.. math::  ∇_θ E_{p_θ}[f(x)] = E_{p_θ}[(f(x) − b)\\, ∇_θ \\log p_θ(x)]

for any baseline ``b`` independent of ``x``. ``f`` is a black box: evaluated without
gradient, so it need not be differentiable (nor continuous) in ``x``.

Distributions: continuous ``x ~ N(params, σ²I)``; discrete ``x ~ Cat(softmax(params))``
per position, one-hot (drawn by Gumbel-max from uniform noise).

Baselines (``baseline``):

- ``"none"``: ``b = 0``.
- ``"mean"``: leave-one-out mean. With ``samples = S > 1`` draws per row, each draw's
  baseline is the mean cost of the row's other ``S − 1`` draws (RLOO; Kool et al., 2019);
  with ``S = 1``, the mean cost of the batch's other rows (needs ``B ≥ 2``). Either way
  ``b`` is independent of the draw it multiplies, so the estimate stays unbiased.
- ``"ema"``: an exponential moving average of past batches' mean cost, updated *after*
  use (``decay`` ``ema_decay``). This is state learned during use: see ``baseline_``,
  :meth:`reset`, and :meth:`frozen` for a copy that stops updating it. The first call has
  no history and uses ``b = 0``.
- ``"group_mean"`` (Dr. GRPO; Liu et al., 2025, "Understanding R1-Zero-Like Training: A
  Critical Perspective"): the advantage ``f_s − \\bar f`` with ``\\bar f`` the mean of the
  row's ``S ≥ 2`` draws *including* ``s``. Since ``f_s − \\bar f = ((S − 1)/S)(f_s −
  \\bar f_{−s})``, it is RLOO (``"mean"``) scaled by ``(S − 1)/S``, and its expectation is
  exactly ``((S − 1)/S) ∇E f``: biased by that known factor only (the direction is exact).
- ``"group_norm"`` (GRPO; Shao et al., 2024, "DeepSeekMath", Sec. 4.1.2): the advantage
  ``(f_s − \\bar f)/(\\mathrm{std}_s f + ε)`` over the row's ``S ≥ 2`` draws (``std`` with
  Bessel's correction and ``ε = 10⁻⁴``, as TRL's ``GRPOTrainer`` computes it). The
  divisor depends on the draws it multiplies, so the estimate is biased, and not by a
  constant factor: its expectation is in general not parallel to ``∇E f``.

Both group baselines keep each row's draws to themselves (rows independent); neither is
defined for one draw per row, so they require ``samples ≥ 2``.

With ``S > 1`` the row's estimate is the average over its draws and ``f`` is called on
``B·S`` samples. For f = (x − k)², x ~ N(μ, 1), the per-sample variance without baseline
is ``E[f(x)²(x − μ)²] − 4(μ − k)²`` (15, 30, 495 at μ = 1 for k = 1, 0, −3).
"""

from __future__ import annotations

import torch
from torch.distributions import Normal

from gangrad._validate import choice, integer, positive, unit_interval
from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import AbstractEstimator, Cost
from gangrad.spaces import Continuous, Discrete

__all__ = ["ScoreFunction"]

BASELINES = ("none", "mean", "ema", "group_mean", "group_norm")
GROUPS = ("group_mean", "group_norm")
GROUP_NORM_EPS = 1e-4  # added to the group std, as TRL's GRPOTrainer does


class ScoreFunction(AbstractEstimator):
    """REINFORCE: (f(x) − b)·∇log p(x); f is a black box. Gaussian or categorical x."""

    key = "score_function"
    space_types = (Continuous, Discrete)
    differentiable_f = False

    def __init__(self, baseline: str = "none", sigma: float = 0.1, samples: int = 1,
                 ema_decay: float = 0.9) -> None:
        self.baseline = choice(self.key, "baseline", baseline, BASELINES)
        self.sigma = positive(self.key, "sigma", sigma)
        self.samples = integer(self.key, "samples", samples, minimum=1)
        self.ema_decay = unit_interval(self.key, "ema_decay", ema_decay)
        if self.baseline in GROUPS and self.samples < 2:
            raise ValueError(f"{self.key}: baseline={baseline!r} is over a group of draws per "
                             f"row and needs samples >= 2, got samples={samples}")
        self.baseline_: torch.Tensor | None = None  # EMA state, learned during use

    @property
    def f_evaluations(self) -> int:  # type: ignore[override]
        return self.samples

    def reset(self) -> None:
        """Forget the EMA baseline's history."""
        self.baseline_ = None

    def _warm_up(self, params, f, space, generator):
        if self.baseline == "ema":  # one batch gives the EMA a history to measure with
            self.surrogate(params, f, space=space, generator=generator)

    def _noise(self, params, space, generator):
        # B x S x (dim) or B x S x L x C
        shape = (params.shape[0], self.samples, *params.shape[1:])
        if isinstance(space, Discrete):
            return cat.uniform_noise(shape, params, generator)
        return torch.randn(shape, generator=generator, dtype=params.dtype, device=params.device)

    def _draws(self, params: torch.Tensor, noise: torch.Tensor, space) -> torch.Tensor:
        theta = params.unsqueeze(1)  # B x 1 x ...
        if isinstance(space, Discrete):
            return cat.one_hot_argmax(theta + cat.gumbel(noise))
        return theta + self.sigma * noise

    def _log_prob(self, params: torch.Tensor, x: torch.Tensor, space) -> torch.Tensor:
        theta = params.unsqueeze(1)
        if isinstance(space, Discrete):
            return cat.log_prob(theta, x)  # B x S
        return Normal(theta, self.sigma, validate_args=False).log_prob(x).sum(-1)

    def _sample(self, params, noise, space):
        return self._draws(params, noise, space)[:, 0]

    @property
    def rows_independent(self) -> bool:  # type: ignore[override]
        """False for the batch leave-one-out baseline (``samples=1``) and for the EMA
        baseline, whose state every call updates; the group baselines stay in their row."""
        return (self.baseline in ("none", *GROUPS)
                or (self.baseline == "mean" and self.samples > 1))

    def _advantage(self, fx: torch.Tensor) -> torch.Tensor:
        """The coefficient of each draw's score, ``(B, S)`` from the costs ``(B, S)``."""
        if self.baseline in GROUPS:
            centred = fx - fx.mean(1, keepdim=True)
            if self.baseline == "group_mean":
                return centred
            return centred / (fx.std(1, keepdim=True) + GROUP_NORM_EPS)
        return fx - self._baseline(fx)

    def _baseline(self, fx: torch.Tensor) -> torch.Tensor:
        B, S = fx.shape
        if self.baseline == "none":
            return torch.zeros_like(fx)
        if self.baseline == "mean":
            if S > 1:
                return (fx.sum(1, keepdim=True) - fx) / (S - 1)
            if B < 2:
                raise ValueError(
                    "score_function: baseline='mean' with samples=1 is a leave-one-out mean "
                    "over the batch and needs at least 2 rows; use samples >= 2"
                )
            return (fx.sum(0, keepdim=True) - fx) / (B - 1)
        b = torch.zeros_like(fx) if self.baseline_ is None else self.baseline_.expand_as(fx)
        if not self._frozen:
            batch_mean = fx.mean()
            self.baseline_ = (batch_mean if self.baseline_ is None else
                              self.ema_decay * self.baseline_ + (1 - self.ema_decay) * batch_mean)
        return b

    @property
    def stacks_seeds(self) -> bool:
        """Whether :meth:`seeds_surrogate` applies: the batch leave-one-out baseline, whose
        rows are coupled within a seed's batch only (the EMA baseline keeps state)."""
        return self.baseline == "mean" and self.samples == 1

    def seeds_surrogate(self, params: torch.Tensor, f: Cost, noise: torch.Tensor,
                        space) -> torch.Tensor:
        """Many seeds' surrogates at once, for :func:`gangrad.train.train_seeds`: params
        ``(S, B, ...)`` and noise ``(S, B, ...)`` (each seed's own), ``f`` mapping
        ``(S, N, ...)`` to ``(S, N)`` (each seed's rows through its own cost); returns
        ``(S, B)``, each seed's rows what :meth:`surrogate` gives that seed alone (the
        leave-one-out mean is over the seed's own batch). Requires :attr:`stacks_seeds`."""
        if not self.stacks_seeds:
            raise ValueError(f"{self.label}: seeds_surrogate needs baseline='mean', samples=1")
        seeds, B = params.shape[:2]
        if B < 2:
            raise ValueError("score_function: baseline='mean' with samples=1 is a "
                             "leave-one-out mean over the batch and needs at least 2 rows")
        flat = params.flatten(0, 1)
        x = self._draws(flat.detach(), noise.flatten(0, 1), space)  # S·B x 1 x ...
        with torch.no_grad():
            fx = f(x.reshape(seeds, B, *x.shape[2:])).reshape(seeds, B, 1)
            advantage = fx - (fx.sum(1, keepdim=True) - fx) / (B - 1)
        log_p = self._log_prob(flat, x, space).reshape(seeds, B, 1)
        return (fx + advantage * (log_p - log_p.detach())).mean(2)

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        B, S = params.shape[0], self.samples
        x = self._draws(params.detach(), noise, space)  # B x S x ...
        with torch.no_grad():
            fx = f(x.reshape(B * S, *x.shape[2:])).reshape(B, S)
            advantage = self._advantage(fx)
        log_p = self._log_prob(params, x, space)
        return (fx + advantage * (log_p - log_p.detach())).mean(1)
