"""The GAN losses (Goodfellow et al., 2014), shared by training, measurement and questions.

- generator, non-saturating (default): ``f(x) = softplus(−D(x)) = −log σ(D(x))``;
- generator, minimax: ``f(x) = −softplus(D(x)) = log(1 − σ(D(x)))``;
- generator, probability: ``f(x) = −σ(D(x))``, D's probability that ``x`` is real as a
  reward to maximise: SeqGAN's reward ``D_φ(Y)`` (Yu et al., 2017, Eq. 4);
- discriminator: binary cross-entropy, ``softplus(−D(real)) + softplus(D(fake))``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["LOSSES", "discriminator_loss", "generator_loss"]

LOSSES = ("nonsaturating", "minimax", "probability")


def generator_loss(kind: str, D: Callable[[torch.Tensor], torch.Tensor]
                   ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-sample cost ``f`` of the generator step, through discriminator ``D``."""
    if kind == "nonsaturating":
        return lambda x: nn.functional.softplus(-D(x))
    if kind == "minimax":
        return lambda x: -nn.functional.softplus(D(x))
    if kind == "probability":
        return lambda x: -torch.sigmoid(D(x))
    raise ValueError(f"generator loss must be one of {', '.join(LOSSES)}, got {kind!r}")


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """D's binary cross-entropy, averaged over the last (batch) dimension."""
    return (nn.functional.softplus(-logits_real).mean(-1)
            + nn.functional.softplus(logits_fake).mean(-1))
