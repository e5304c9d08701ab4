r"""ARM, Augment-REINFORCE-Merge (Yin & Zhou, 2019, "ARM: Augment-REINFORCE-merge gradient
for stochastic binary networks").

For ``n`` independent ``b_l ~ Bernoulli(σ(α_l))`` and one uniform ``u_l`` per position,

.. math::
    ∇_{α_l} E[f(b)] = E_u\big[\big(f(b̃) − f(b)\big)\,(u_l − \tfrac12)\big],\qquad
    b = 1[u < σ(α)],\ b̃ = 1[u > σ(−α)] = 1[1 − u < σ(α)]

(with ``b̃`` the paper's ``1[u > σ(−φ)]`` and ``b`` their ``1[u < σ(φ)]``).
Unbiased; ``f`` is a black box evaluated at the antithetic pair ``(b, b̃)``, two
evaluations per row. Params are binary logits; ``α = θ[..., 1] − θ[..., 0]``, and the
estimate reaches ``θ`` as ``±g`` (see :mod:`gangrad.estimators._bernoulli`, which also
gives the noise, the emitted sample ``b`` and the surrogate's value). For one variable at
``σ(α) = ½``: ``ĝ = Δ|u − ½|``, ``Δ = f(1) − f(0)``, variance ``Δ²/48``.

Requires: nothing of ``f``. Spaces: binary ``Discrete(n, 2)`` only.
"""

from __future__ import annotations

from gangrad.estimators._bernoulli import AbstractAntithetic

__all__ = ["ARM"]


class ARM(AbstractAntithetic):
    """``(f(b̃) − f(b))(u − ½)`` at an antithetic Bernoulli pair; unbiased, binary only."""

    key = "arm"
    rows_independent = True

    def __init__(self) -> None:
        pass

    def _logit_gradient(self, f_b, f_tilde, alpha, u, b, b_tilde):
        return (f_tilde - f_b).unsqueeze(-1) * (u - 0.5)
