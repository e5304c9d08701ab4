"""PacGAN's 2D-ring: eight Gaussian modes evenly spaced on a circle.

Data: the uniform mixture of ``N(μ_k, std²·I)``, ``μ_k = radius·(cos 2πk/8, sin 2πk/8)``,
``k = 0..7``, with ``radius = 1`` and ``std = 0.01`` (Lin et al., 2018, "PacGAN: the power
of two samples in generative adversarial networks", §5.1; after Metz et al., 2017,
"Unrolled generative adversarial networks").

Metrics (see :mod:`gangrad.tasks._mixture` for the exact rule): ``modes`` with at least one
high-quality sample (at most 8), ``high_quality`` (fraction of samples within 3 std of
their nearest mode) and ``reverse_kl`` of the high-quality mode histogram against uniform,
as PacGAN and VEEGAN report them on 2,500 samples.

Defaults: ``z ~ N(0, I_2)``; generator MLP 2 → 3×128 ReLU → head; discriminator MLP
2 → 3×128 LeakyReLU(0.2) → 1. PacGAN's networks, packing and fixed data set are options:
``tasks.create("ring8", arch="pacgan", pack=2, dataset_size=100_000)`` holds PacGAN2's
networks and data (``batch_norm="pacgan"``: its code's batch norm;
:mod:`gangrad.tasks._mixture`; its training settings:
:mod:`gangrad.reproductions.pacgan_table1`).
Training: batch 256, Adam learning rates 5e-4 for G and D, 4000 steps, one D step per G
step; with plain backprop, Adam betas (0.5, 0.999) and the non-saturating loss, three seeds
covered all 8 modes with 86-93% high-quality samples (at 1e-3 and 2000 steps, two of four
runs lost modes).
"""

from __future__ import annotations

import math

import torch

from gangrad import _validate
from gangrad.tasks._mixture import DEPTH, HIDDEN, AbstractMixture2D

__all__ = ["Ring8"]


class Ring8(AbstractMixture2D):
    """Eight modes on a circle of ``radius``, each ``N(μ_k, std²·I)``."""

    name = "ring8"
    description = "PacGAN's 2D-ring: 8 Gaussian modes on a circle (radius 1, std 0.01)"
    training_defaults = {"batch_size": 256, "lr_g": 5e-4, "lr_d": 5e-4, "steps": 4000,
                         "d_steps": 1}

    def __init__(self, radius: float = 1.0, std: float = 0.01, latent_dim: int = 2,
                 hidden: int = HIDDEN, depth: int = DEPTH, arch: str = "mlp", pack: int = 1,
                 dataset_size: int | None = None, dataset_seed: int = 0,
                 batch_norm: str = "batch") -> None:
        owner = type(self).__name__
        _validate.positive(owner, "radius", radius)
        _validate.positive(owner, "std", std)
        self._configure(latent_dim, hidden, depth, arch, pack, dataset_size, dataset_seed,
                        batch_norm)
        self.radius = radius
        self.std = std
        angle = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
        self.centres = (float(radius) * torch.stack([angle.cos(), angle.sin()], 1)).float()
