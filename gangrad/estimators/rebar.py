r"""REBAR (Tucker et al., 2017, "REBAR: Low-variance, unbiased gradient estimates for
discrete latent variable models").

For ``b = onehot(argmax z)``, ``z = log_softmax(θ) + g`` (Gumbels ``g``) and the conditional
``z̃ ~ p(z | b)``,

.. math::
    \hat g = \big[f(b) − η f(σ_λ(z̃))\big] ∇_θ \log p(b) + η ∇_θ f(σ_λ(z)) − η ∇_θ f(σ_λ(z̃)),
    \qquad σ_λ(z) = \operatorname{softmax}(z/λ),

is unbiased for ``∇_θ E_{b~Cat(softmax θ)}[f(b)]`` for every ``η`` and ``λ``:
REINFORCE with the control variate ``η f(σ_λ(·))``, the Concrete relaxation of ``f``, whose
expectation is corrected pathwise. ``η`` (initially 1) and the temperature ``λ``
(parameterised as ``log λ``, initially ``temperature``) are learned during use to minimise
the variance (:meth:`learn`, Adam with learning rate ``cv_lr``); the shared estimate, the
noise layout and the learned state are described in
:mod:`gangrad.estimators._control_variate`.

Requires: ``f`` differentiable in relaxed ``x`` (it is also evaluated at the relaxed
points, where its gradient is used). Spaces: discrete. ``f`` is called on ``b`` (B rows,
what :meth:`sample` emits and what the surrogate's value is) and once on the stacked
relaxations ``σ_λ(z)``, ``σ_λ(z̃)`` (2B rows): three evaluations per row.

Args:
    temperature: initial ``λ`` (> 0).
    cv_lr: Adam learning rate of ``(η, log λ)`` (> 0).
"""

from __future__ import annotations

import math

import torch

from gangrad._validate import positive
from gangrad.estimators._base import Cost
from gangrad.estimators._control_variate import AbstractLearnedControlVariate, Control, per_row

__all__ = ["REBAR", "relaxed_cost"]


def relaxed_cost(control: Control, z: torch.Tensor, f: Cost) -> torch.Tensor:
    """``η f(softmax(z / λ))`` for ``z (N, L, C)``: ``(N,)`` (``(S, N)`` for ``z (S, N, L,
    C)`` and a control variate per seed)."""
    temperature = per_row(control["log_temperature"], z, 3).exp()
    return per_row(control["eta"], z, 1) * f((z / temperature).softmax(dim=-1))


class REBAR(AbstractLearnedControlVariate):
    """REINFORCE with the learned control variate ``η f(softmax(z/λ))``; unbiased."""

    key = "rebar"
    f_evaluations = 3
    stacks_seeds = True

    def __init__(self, temperature: float = 0.5, cv_lr: float = 1e-3) -> None:
        self.temperature = positive(self.key, "temperature", temperature)
        self.cv_lr = positive(self.key, "cv_lr", cv_lr)

    def _init_control(self, shape: tuple[int, ...]) -> Control:
        return {"eta": torch.tensor(1.0, dtype=torch.float64),
                "log_temperature": torch.tensor(math.log(self.temperature), dtype=torch.float64)}

    def _control(self, control: Control, z: torch.Tensor, f: Cost) -> torch.Tensor:
        return relaxed_cost(control, z, f)
