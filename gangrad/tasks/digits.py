"""scikit-learn's 8×8 digits as continuous images.

Data: the 1,797 images of ``sklearn.datasets.load_digits``, each a vector of 64 pixel
intensities ``value/16 ∈ [0, 1]``; ``sample_real`` draws images uniformly with
replacement. Space ``Continuous(64)``. The generator's output is not squashed into
``[0, 1]`` (continuous estimators add noise to, or learn a scale around, the raw head
output); the discriminator learns what range real pixels take.

Metrics (see :mod:`gangrad.tasks._digits`): ``fd``, the Fréchet distance between Gaussian
fits of a digits classifier's 128-d penultimate features on the samples and on all real
images (an FID with a digits classifier; Heusel et al., 2017); ``class_kl``, the KL
divergence from uniform of the predicted-class histogram; ``confidence``, the mean maximum
class probability. The classifier is trained at first use on the ``[0, 1]`` images and
cached.

Defaults: ``z ~ N(0, I_16)``; generator MLP 16 → 2×256 ReLU → head; discriminator MLP
64 → 2×256 LeakyReLU(0.2) → 1. Training: batch 64, Adam learning rates 1e-3 for G and D,
5000 steps, one D step per G step (plain backprop, non-saturating loss: ``fd`` ≈ 2 on
1,000 samples, from ≈ 80 at initialisation; at 2e-4 it is still ≈ 7).
"""

from __future__ import annotations

import torch

from gangrad.spaces import Continuous
from gangrad.tasks._digits import AbstractDigits, images

__all__ = ["Digits"]


class Digits(AbstractDigits):
    """8×8 digit images with intensities in ``[0, 1]``; see the module doc."""

    name = "digits"
    description = "scikit-learn's 8x8 digits, pixel intensities in [0, 1]"
    representation = "continuous"
    space = Continuous(64)

    def sample_real(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        pixels = images(self.representation)[0]
        return pixels[torch.randint(pixels.shape[0], (n,), generator=generator)]

    def intensities(self, x: torch.Tensor) -> torch.Tensor:
        return x
