r"""RELAX (Grathwohl et al., 2018, "Backpropagation through the Void: Optimizing control
variates for black-box gradient estimation"), for discrete ``b``.

For ``b = onehot(argmax z)``, ``z = log_softmax(θ) + g`` (Gumbels ``g``), the conditional
``z̃ ~ p(z | b)`` and a learned control variate ``c_φ``,

.. math::
    \hat g = \big[f(b) − c_φ(z̃)\big] ∇_θ \log p(b) + ∇_θ c_φ(z) − ∇_θ c_φ(z̃),

unbiased for ``∇_θ E_{b~Cat(softmax θ)}[f(b)]`` for every ``φ``. Here

.. math::
    c_φ(z) = η f(σ_λ(z)) + r_φ(σ_λ(z)),\qquad σ_λ(z) = \operatorname{softmax}(z/λ),

the REBAR term (dropped with ``rebar_term=False``) plus a one-hidden-layer tanh MLP
``r_φ`` on the flattened relaxed sample (``L·C → hidden → 1``), as in the paper's discrete
experiments. ``η`` (initially 1), ``log λ`` (initially ``log temperature``)
and ``φ`` (first layer uniform in ``±1/sqrt(L·C)`` from a fixed-seed NumPy generator,
output layer zero, so RELAX starts as REBAR) are learned during use to minimise the
variance (:meth:`learn`, Adam with learning rate ``cv_lr``); the shared estimate, the noise
layout and the learned state are described in :mod:`gangrad.estimators._control_variate`.

Requires: ``f`` differentiable in relaxed ``x`` when ``rebar_term`` (otherwise ``f`` is a
black box: only ``f(b)`` is evaluated, and only ``c_φ`` is differentiated). Spaces:
discrete. Evaluations of ``f`` per row: 3 with the REBAR term (``b``, ``σ_λ(z)``,
``σ_λ(z̃)``), else 1.

Args:
    temperature: initial ``λ`` (> 0).
    hidden: hidden units of ``r_φ`` (integer ≥ 1).
    rebar_term: include ``η f(σ_λ(z))`` in ``c_φ``.
    cv_lr: Adam learning rate of the control variate's parameters (> 0).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gangrad._validate import integer, positive
from gangrad.estimators._base import Cost
from gangrad.estimators._control_variate import AbstractLearnedControlVariate, Control, per_row
from gangrad.estimators.rebar import relaxed_cost

__all__ = ["RELAX"]

INIT_SEED = 0


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b``; with a leading seed dimension on both, one product per seed, each the
    product that seed's own estimator computes (a batched product may round otherwise)."""
    if a.dim() == 2:
        return a @ b
    return torch.stack([x @ y for x, y in zip(a.unbind(0), b.unbind(0), strict=True)])


class RELAX(AbstractLearnedControlVariate):
    """REINFORCE with a learned neural control variate (plus the REBAR term); unbiased."""

    key = "relax"
    stacks_seeds = True

    def __init__(self, temperature: float = 0.5, hidden: int = 32, rebar_term: bool = True,
                 cv_lr: float = 1e-3) -> None:
        self.temperature = positive(self.key, "temperature", temperature)
        self.hidden = integer(self.key, "hidden", hidden, minimum=1)
        if not isinstance(rebar_term, bool):
            raise ValueError(f"{self.key}: rebar_term must be True or False, got {rebar_term!r}")
        self.rebar_term = rebar_term
        self.cv_lr = positive(self.key, "cv_lr", cv_lr)

    @property
    def differentiable_f(self) -> bool:  # type: ignore[override]
        return self.rebar_term

    @property
    def f_evaluations(self) -> int:  # type: ignore[override]
        return 3 if self.rebar_term else 1

    def _init_control(self, shape: tuple[int, ...]) -> Control:
        n_in = math.prod(shape)
        bound = 1 / math.sqrt(n_in)
        rng = np.random.default_rng(INIT_SEED)
        control = {
            "log_temperature": torch.tensor(math.log(self.temperature), dtype=torch.float64),
            "w1": torch.from_numpy(rng.uniform(-bound, bound, (n_in, self.hidden))),
            "b1": torch.from_numpy(rng.uniform(-bound, bound, self.hidden)),
            "w2": torch.zeros(self.hidden, dtype=torch.float64),
            "b2": torch.tensor(0.0, dtype=torch.float64),
        }
        if self.rebar_term:
            control["eta"] = torch.tensor(1.0, dtype=torch.float64)
        return control

    def _control(self, control: Control, z: torch.Tensor, f: Cost) -> torch.Tensor:
        x = (z / per_row(control["log_temperature"], z, 3).exp()).softmax(dim=-1)  # N x L x C
        h = torch.tanh(_matmul(x.flatten(-2), control["w1"]) + per_row(control["b1"], z, 1))
        r = _matmul(h, control["w2"]) + per_row(control["b2"], z, 1)
        return r + relaxed_cost(control, z, f) if self.rebar_term else r
