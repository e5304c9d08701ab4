"""A single categorical variable: the smallest discrete GAN.

Data: one symbol out of ``K = classes`` with Zipf probabilities
``p_k = (1/(k+1)) / Σ_j 1/(j+1)``, ``k = 0..K-1`` (fixed, non-uniform, no randomness), as
a one-hot vector: space ``Discrete(1, K)``.

Generator: learned logits that do not depend on ``z`` (a constant, initialised to zeros,
i.e. uniform). All randomness is the categorical's own, so for any cost ``f`` the expected
loss ``Σ_k softmax(θ)_k f(e_k)`` is exact by enumeration over the ``K`` outcomes
(:func:`gangrad.exact.discrete_expectation`). ``latent_dim`` is 1 only to keep the contract.
Discriminator: an MLP ``K → 64 → 64 → 1`` with LeakyReLU(0.2) on the (possibly relaxed)
one-hot vector.

Metrics, from the empirical histogram ``q_k`` of the samples' symbols (argmax over the last
axis, so soft vectors count as their most likely symbol), exact by enumeration over ``K``:

- ``kl`` = ``KL(q ‖ p) = Σ_k q_k log(q_k / p_k)`` (``0 log 0 = 0``). The forward direction
  ``KL(p ‖ q)`` is infinite whenever a symbol is missing from the sample, so the reverse one
  is reported (it is what a mode-collapsed generator scores badly on: a point mass on ``k``
  gives ``-log p_k``).
- ``tv`` = total variation distance ``½ Σ_k |q_k - p_k|``.

Training: batch 64, Adam learning rates 1e-2 for G and D, 1000 steps, one D step
per G step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from gangrad import _validate
from gangrad.spaces import Discrete
from gangrad.tasks import _plots
from gangrad.tasks._base import AbstractTask, Metric, check_samples
from gangrad.tasks._nets import MLPDiscriminator, check_param_shape, leaky_relu

__all__ = ["Categorical", "ConstantGenerator"]


class ConstantGenerator(nn.Module):
    """``z (B, ·) -> θ (B, *param_shape)``: one learned tensor ``θ``, repeated over the batch."""

    def __init__(self, param_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.param_shape = check_param_shape(param_shape)
        self.theta = nn.Parameter(torch.zeros(self.param_shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.theta.expand(z.shape[0], *self.param_shape)

    def stacked_forward(self, z: torch.Tensor, stack) -> torch.Tensor:
        theta = stack.param("theta")  # S x param_shape
        return theta.unsqueeze(1).expand(theta.shape[0], z.shape[1], *self.param_shape)


class Categorical(AbstractTask):
    """One symbol with Zipf probabilities ``p_k ∝ 1/(k+1)``; see the module doc."""

    name = "categorical"
    description = "one symbol out of K with Zipf probabilities p_k ∝ 1/(k+1)"
    metrics = {"kl": Metric(False, margin=0.01, low=0.0),
               "tv": Metric(False, margin=0.01, low=0.0, high=1.0)}
    exact_reference = "enumeration over the K outcomes"
    training_defaults = {"batch_size": 64, "lr_g": 1e-2, "lr_d": 1e-2, "steps": 1000,
                         "d_steps": 1}

    def __init__(self, classes: int = 10) -> None:
        _validate.integer(type(self).__name__, "classes", classes, 2)
        self.classes = classes
        self.space = Discrete(1, classes)
        self.latent_dim = 1
        weights = 1.0 / torch.arange(1, classes + 1, dtype=torch.float64)
        self.probs = (weights / weights.sum()).float()  # K

    def sample_real(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        k = torch.multinomial(self.probs, n, replacement=True, generator=generator)
        return nn.functional.one_hot(k, self.classes).float()[:, None, :]  # n x 1 x K

    def make_generator(self, param_shape: tuple[int, ...]) -> nn.Module:
        return ConstantGenerator(param_shape)

    def make_discriminator(self) -> nn.Module:
        return MLPDiscriminator(self.space.shape, 64, 2, leaky_relu)

    def histogram(self, x: torch.Tensor) -> torch.Tensor:
        """Empirical symbol frequencies ``q (K,)`` of samples ``x (n, 1, K)``, float64."""
        symbols = check_samples(self.space, x)[:, 0].argmax(-1)
        return torch.bincount(symbols, minlength=self.classes).double() / symbols.numel()

    def evaluate(self, x: torch.Tensor) -> dict[str, float]:
        q = self.histogram(x)
        p = self.probs.double()
        return {
            "kl": float(torch.xlogy(q, q / p).sum()),
            "tv": float(0.5 * (q - p).abs().sum()),
        }

    def render(self, x: torch.Tensor, path: str | Path) -> Path:
        q = self.histogram(x).numpy()
        k = np.arange(self.classes)
        fig = _plots.new_figure(max(4.0, 0.4 * self.classes), 3.5, style="whitegrid")
        ax = fig.axes[0]
        ax.bar(k - 0.2, self.probs.numpy(), width=0.4, label="data $p$")
        ax.bar(k + 0.2, q, width=0.4, label="samples $q$")
        ax.set(xlabel="symbol", ylabel="probability", xticks=k if self.classes <= 30 else [])
        ax.legend()
        return _plots.save(fig, path)
