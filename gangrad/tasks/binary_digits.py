"""scikit-learn's 8×8 digits, binarised: 64 binary symbols per image.

Data: the 1,797 images of ``sklearn.datasets.load_digits`` with pixel ``value > 8`` as
"on" (values run 0..16), each pixel one-hot over ``{off, on}``: space ``Discrete(64, 2)``;
``sample_real`` draws images uniformly with replacement.

Metrics (see :mod:`gangrad.tasks._digits`): ``fd``, the Fréchet distance between Gaussian
fits of a digits classifier's 128-d penultimate features on the samples and on all real
images; ``class_kl``, the KL divergence from uniform of the predicted-class histogram;
``confidence``, the mean maximum class probability. The classifier is trained at first use
on the binarised images and cached. It reads ``x[..., 1]`` as the pixel intensity: the
pixel itself for one-hot samples and, for relaxed or probability vectors (e.g. what a
pathwise generator emits), the probability that the pixel is on.

Defaults: ``z ~ N(0, I_16)``; generator MLP 16 → 2×256 ReLU → head (logits ``(64, 2)``
for discrete estimators); discriminator MLP 128 → 2×256 LeakyReLU(0.2) → 1 on the flattened
(soft) one-hot vectors; ``hidden`` sets both nets' width (256 by default). Training: batch
64, Adam learning rates 1e-3 for G and D, 5000 steps, one D step per G step
(straight-through Gumbel-softmax at temperature 1 reaches ``fd`` ≈ 3 on 1,000 samples, from
≈ 33 at initialisation). With ``hidden=64`` and learning rates 1e-2, straight-through
reaches its plateau (``fd`` ≈ 7-9) after about 1,400 steps, at about a third of the
CPU-seconds per step, 27 against 65 ms for 8 batched seeds (the quick suite's setting).
"""

from __future__ import annotations

import torch
from torch import nn

from gangrad.spaces import Discrete
from gangrad.tasks._digits import AbstractDigits, images

__all__ = ["BinaryDigits"]


class BinaryDigits(AbstractDigits):
    """8×8 digit images with binary pixels, one-hot over ``{off, on}``; see the module doc."""

    name = "binary_digits"
    description = "scikit-learn's 8x8 digits binarised (pixel > 8), 64 binary symbols"
    representation = "binary"
    space = Discrete(64, 2)

    def sample_real(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        pixels = images(self.representation)[0]
        on = pixels[torch.randint(pixels.shape[0], (n,), generator=generator)].long()
        return nn.functional.one_hot(on, 2).float()  # n x 64 x 2

    def intensities(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., 1]
