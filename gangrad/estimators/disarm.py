r"""DisARM (Dong, Mnih & Tucker, 2020, "DisARM: An antithetic gradient estimator for binary
latent variables").

For ``n`` independent ``b_l ~ Bernoulli(σ(α_l))`` and the antithetic pair
``b = 1[u < σ(α)]``, ``b̃ = 1[1 − u < σ(α)]`` of ARM, integrating ARM's estimate over
``u`` given ``(b, b̃)`` (Rao-Blackwellisation) gives

.. math::
    \hat g_l = \tfrac12\big(f(b) − f(b̃)\big)\,(−1)^{b̃_l}\,1[b_l ≠ b̃_l]\,σ(|α_l|)

(ibid.): unbiased, with variance never above ARM's, and 0 where ``b = b̃``. ``f`` is a
black box evaluated at the pair, two evaluations per row. Params are binary logits;
``α = θ[..., 1] − θ[..., 0]``, and the estimate reaches ``θ`` as ``±g`` (see
:mod:`gangrad.estimators._bernoulli`, which also gives the noise, the emitted sample ``b``
and the surrogate's value). For one variable, ``ĝ = ½Δσ(|α|)`` with probability
``2σ(−|α|)`` and 0 otherwise (``Δ = f(1) − f(0)``): at ``σ(α) = ½`` it is exact.

Requires: nothing of ``f``. Spaces: binary ``Discrete(n, 2)`` only.
"""

from __future__ import annotations

import torch

from gangrad.estimators._bernoulli import AbstractAntithetic

__all__ = ["DisARM"]


class DisARM(AbstractAntithetic):
    """ARM integrated over u given the pair: ½(f(b) − f(b̃))(−1)^b̃ 1[b ≠ b̃] σ(|α|)."""

    key = "disarm"
    rows_independent = True

    def __init__(self) -> None:
        pass

    def _logit_gradient(self, f_b, f_tilde, alpha, u, b, b_tilde):
        weight = (1 - 2 * b_tilde) * (b != b_tilde).to(alpha.dtype) * torch.sigmoid(alpha.abs())
        return 0.5 * (f_b - f_tilde).unsqueeze(-1) * weight
