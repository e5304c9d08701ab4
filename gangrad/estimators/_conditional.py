r"""Gumbels conditioned on the argmax: ``z̃ ~ p(z | b)``, the shared maths of REBAR, RELAX
and the Rao-Blackwellized straight-through estimator.

With normalised logits ``ℓ = log_softmax(θ)`` (so ``p_c = e^{ℓ_c}``) and Gumbels ``g``,
``z = ℓ + g`` has ``b = onehot(argmax z) ~ Cat(p)``, and ``max_c z_c`` is a standard
Gumbel independent of ``b`` (its location is ``logsumexp ℓ = 0``). Given ``b`` the other
coordinates are Gumbels with location ``ℓ_i`` truncated above at that maximum. Inverting
the two CDFs with uniforms ``v`` gives (the appendices of Tucker et al., 2017, and
Grathwohl et al., 2018; Paulus et al., 2021)

.. math::
    z̃_b = −\log(−\log v_b),\qquad
    z̃_i = −\log\Big(\frac{−\log v_i}{p_i} − \log v_b\Big)\quad (i ≠ b),

so that ``(b, z̃)`` has the law of ``(b, z)``. ``z̃`` is a differentiable function of ``θ``
for fixed ``b`` and ``v``: the reparameterisation of ``p(z | b)`` that REBAR and RELAX
differentiate. It is computed as ``−logaddexp(log(−log v_i) − ℓ_i, log(−log v_b))`` so
that a tiny ``p_i`` does not overflow ``1/p_i``. Shapes: ``(..., L, C)`` throughout; ``b``
is one-hot along the last axis. vmap-safe (selection by multiplying with ``b``).
"""

from __future__ import annotations

import torch

from gangrad.estimators import _categorical as cat

__all__ = ["conditional_gumbel", "perturbed"]


def perturbed(logits: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z, b)``: ``z = log_softmax(θ) + Gumbel(u)`` and ``b = onehot(argmax z)``.

    ``b`` is the Gumbel-max sample of the other discrete estimators for the same ``u``.
    """
    z = logits.log_softmax(dim=-1) + cat.gumbel(u)
    return z, cat.one_hot_argmax(z.detach())


def conditional_gumbel(logits: torch.Tensor, b: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A sample of ``z = log_softmax(θ) + g`` given ``argmax z = b``, from uniforms ``v``.

    ``logits`` is ``(..., L, C)``; ``b`` and ``v`` broadcast against it (e.g. ``v`` of shape
    ``(K, ..., L, C)`` gives ``K`` conditional draws).
    """
    log_p = logits.log_softmax(dim=-1)
    log_e = torch.log(-torch.log(v))  # log of the Exp(1) variables −log v
    log_e_top = (b * log_e).sum(dim=-1, keepdim=True)  # ... x L x 1
    top = -log_e_top
    rest = -torch.logaddexp(log_e - log_p, log_e_top)
    return b * top + (1 - b) * rest
