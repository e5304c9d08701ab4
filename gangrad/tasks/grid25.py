"""PacGAN's 2D-grid: twenty-five Gaussian modes on a 5×5 grid.

Data: the uniform mixture of ``N(μ, std²·I)`` over ``μ ∈ {-4, -2, 0, 2, 4}²`` with
``std = 0.05`` (Lin et al., 2018, "PacGAN: the power of two samples in generative
adversarial networks", §5.1; after Dumoulin et al., 2017, "Adversarially learned
inference").

Metrics (see :mod:`gangrad.tasks._mixture` for the exact rule): ``modes`` with at least one
high-quality sample (at most 25), ``high_quality`` (fraction of samples within 3 std of
their nearest mode) and ``reverse_kl`` of the high-quality mode histogram against uniform,
as PacGAN and VEEGAN report them on 2,500 samples.

Defaults: ``z ~ N(0, I_2)``; generator MLP 2 → 3×128 ReLU → head; discriminator MLP
2 → 3×128 LeakyReLU(0.2) → 1. PacGAN's networks, packing and fixed data set are options:
``tasks.create("grid25", arch="pacgan", pack=2, dataset_size=100_000)`` holds PacGAN2's
networks and data (``batch_norm="pacgan"``: its code's batch norm;
:mod:`gangrad.tasks._mixture`; its training settings:
:mod:`gangrad.reproductions.pacgan_table1`).
Training: batch 256, Adam learning rates 1e-3 for G and D, 10000 steps, one D step per G
step; with plain backprop, Adam betas (0.5, 0.999) and the non-saturating loss, three seeds
covered 22-25 modes with 72-92% high-quality samples (PacGAN's GAN baseline: 17.3 modes,
95% high quality); after 4000 steps most samples still lie between modes.
"""

from __future__ import annotations

import torch

from gangrad import _validate
from gangrad.tasks._mixture import DEPTH, HIDDEN, AbstractMixture2D

__all__ = ["Grid25"]


class Grid25(AbstractMixture2D):
    """Twenty-five modes on ``{-4, -2, 0, 2, 4}²``, each ``N(μ, std²·I)``."""

    name = "grid25"
    description = "PacGAN's 2D-grid: 25 Gaussian modes on {-4,-2,0,2,4}² (std 0.05)"
    training_defaults = {"batch_size": 256, "lr_g": 1e-3, "lr_d": 1e-3, "steps": 10000,
                         "d_steps": 1}

    def __init__(self, std: float = 0.05, latent_dim: int = 2, hidden: int = HIDDEN,
                 depth: int = DEPTH, arch: str = "mlp", pack: int = 1,
                 dataset_size: int | None = None, dataset_seed: int = 0,
                 batch_norm: str = "batch") -> None:
        _validate.positive(type(self).__name__, "std", std)
        self._configure(latent_dim, hidden, depth, arch, pack, dataset_size, dataset_seed,
                        batch_norm)
        self.std = std
        axis = torch.arange(-4.0, 5.0, 2.0)
        self.centres = torch.cartesian_prod(axis, axis)  # 25 x 2
