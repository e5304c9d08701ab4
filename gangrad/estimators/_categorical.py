"""Shared maths of the discrete estimators: noise, one-hot samples, relaxations.

Discrete noise is uniform ``u ~ U(0, 1)`` of the logits' shape. It becomes Gumbel noise
``g = -log(-log u)``; the Gumbel-max trick ``argmax(θ + g)`` is an exact sample of
``Categorical(softmax(θ))`` and ``softmax((θ + g)/τ)`` its Concrete / Gumbel-softmax
relaxation (Maddison et al., 2017; Jang et al., 2017). Keeping the uniforms (not the
Gumbels) lets coupled estimators (REBAR, RELAX, ARM) reuse the same draw.

Everything here is written with ``torch.func.vmap`` in mind: no data-dependent shapes,
no in-place writes.
"""

from __future__ import annotations

import torch

__all__ = ["gumbel", "log_prob", "one_hot_argmax", "uniform_noise"]

def uniform_noise(shape: torch.Size | tuple[int, ...], like: torch.Tensor,
                  generator: torch.Generator | None) -> torch.Tensor:
    """``U(0, 1)`` noise, kept away from 0 and 1 so that Gumbels stay finite."""
    u = torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)
    eps = torch.finfo(like.dtype).eps
    return u.clamp(eps, 1 - eps)


def gumbel(u: torch.Tensor) -> torch.Tensor:
    return -torch.log(-torch.log(u))


def one_hot_argmax(scores: torch.Tensor) -> torch.Tensor:
    """One-hot of ``argmax`` over the last axis (vmap-safe, unlike ``F.one_hot``)."""
    idx = scores.argmax(dim=-1, keepdim=True)
    classes = torch.arange(scores.shape[-1], device=scores.device)
    return (idx == classes).to(scores.dtype)


def log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``log p(x)`` of one-hot ``x (..., L, C)`` under independent categoricals: ``(...)``.

    The log-probability of each position's argmax symbol, as ``OneHotCategorical`` computes
    it, written out so that non-finite logits (a diverged generator) give NaN rather than a
    validation error: ``torch.distributions`` validates a ``Categorical`` built inside
    ``OneHotCategorical`` even when asked not to.
    """
    idx = x.max(-1)[1].unsqueeze(-1)  # ... x L x 1
    normalized = logits - logits.logsumexp(dim=-1, keepdim=True)
    idx, normalized = torch.broadcast_tensors(idx, normalized)
    return normalized.gather(-1, idx[..., :1]).squeeze(-1).sum(dim=-1)
