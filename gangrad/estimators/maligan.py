r"""MaliGAN: maximum-likelihood augmented discrete GAN (Che et al., 2017, arXiv 1702.07983).

The generator ascends the log-likelihood of the target ``q(x) ∝ p_θ(x) r_D(x)``, with
``r_D = D/(1 − D) = e^{T}`` (``T`` D's logit), which is ``p_d`` itself when D is optimal
(the paper's Sec. 3). From ``m`` samples of the generator, its basic training algorithm
updates G with

.. math::  ∇_θ ≈ Σ_{i=1}^{m} \Big(\frac{r_D(x_i)}{Σ_j r_D(x_j)} − b\Big) ∇_θ \log p_θ(x_i),

normalised importance weights minus a baseline, ascended; this estimator returns its
negative (the G step descends). At the optimal D its expectation tends to
``−∇_θ KL(p_d ‖ p_θ)`` as ``m`` grows, the maximum-likelihood direction (see
:mod:`gangrad.estimators._weighted` for the derivation and the surrogate). It is **not**
an estimate of ``∇ E f``: it follows its own objective, and the gradient statistics report
the difference as bias.

Hyper-parameters:

- ``samples`` (``S``): draws per row (one per latent ``z``, as the paper draws one sequence
  per generation).
- ``normalize``: ``"batch"`` (default, the paper's: the ``m = B·S`` draws of the whole
  batch share one normaliser, which couples the rows) or ``"row"`` (each row's ``S``
  draws, ``S ≥ 2``: one normaliser per ``z``, as BGAN does; rows then independent).
- ``baseline``: ``"mean"`` (default), ``b = 1/m``, the weights' mean, so every draw's
  advantage is ``r_i/\bar r − 1``; or ``"none"``, ``b = 0``. Either way the expectation is
  the same (``b`` is a constant); the baseline lowers the variance.

``normalize="row"`` with ``baseline="none"`` is BGAN's discrete estimator
(:mod:`gangrad.estimators.bgan`). Requires D's ``logit`` (``needs_logit``). Spaces:
discrete. f-evaluations per row: ``samples`` (D at each draw).
"""

from __future__ import annotations

import torch

from gangrad._validate import choice, integer
from gangrad.estimators._weighted import AbstractDiscriminatorWeighted

__all__ = ["MaliGAN"]

NORMALIZE = ("batch", "row")
BASELINES = ("mean", "none")


class MaliGAN(AbstractDiscriminatorWeighted):
    """REINFORCE with self-normalised weights D/(1 − D) minus a baseline."""

    key = "maligan"

    def __init__(self, samples: int = 1, normalize: str = "batch",
                 baseline: str = "mean") -> None:
        self.samples = integer(self.key, "samples", samples, minimum=1)
        self.normalize = choice(self.key, "normalize", normalize, NORMALIZE)
        self.baseline = choice(self.key, "baseline", baseline, BASELINES)
        if self.normalize == "row" and self.samples < 2:
            raise ValueError(f"{self.key}: normalize='row' needs samples >= 2 (one draw "
                             f"normalised alone always weighs 1), got samples={samples}")

    @property
    def rows_independent(self) -> bool:  # type: ignore[override]
        """True only when each row's draws are normalised on their own."""
        return self.normalize == "row"

    def _advantage(self, logits: torch.Tensor) -> torch.Tensor:
        B, S = logits.shape
        if self.normalize == "row":
            relative = logits.softmax(1) * S  # r_i / mean of the row's r
        else:
            if B * S < 2:
                raise ValueError("maligan: normalize='batch' needs at least 2 draws in the "
                                 "batch (rows x samples)")
            relative = (logits.flatten().softmax(0) * (B * S)).reshape(B, S)
        return relative - 1 if self.baseline == "mean" else relative
