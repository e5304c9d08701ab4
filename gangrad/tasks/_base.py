"""The task contract (see the package docstring of :mod:`gangrad.tasks`)."""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from gangrad.spaces import Continuous, Discrete

__all__ = ["AbstractTask", "Metric", "check_samples"]


@dataclass(frozen=True)
class Metric:
    """How a task metric reads: its direction, the range of its values, and the practical
    margin: two estimators whose values differ by less are equivalent for the task."""

    higher_is_better: bool
    margin: float = math.nan
    low: float = -math.inf
    high: float = math.inf


class AbstractTask(abc.ABC):
    """Data, default G/D architectures and sample-quality metrics for one GAN problem.

    Constructor arguments are the task's hyper-parameters and are stored unchanged.
    Class attributes describe the task for listings and for the runner:

    - ``metrics``: the keys ``evaluate`` returns, each with its :class:`Metric` (direction,
      range and the practical margin within which two values are equivalent; a plain
      ``bool`` is read as the direction alone). The first is the task's headline metric.
    - ``generator_metrics``: the same for the keys ``evaluate_generator`` returns.
    - ``exact_reference``: how an exact reference gradient is computed, or ``None``.
    - ``training_defaults``: batch size, learning rates and steps that train this task well.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    metrics: ClassVar[dict[str, Metric | bool]]
    generator_metrics: ClassVar[dict[str, Metric | bool]] = {}
    exact_reference: ClassVar[str | None] = None
    training_defaults: ClassVar[dict[str, Any]] = {}

    space: Continuous | Discrete
    latent_dim: int

    @classmethod
    def metric(cls, name: str) -> Metric:
        """The :class:`Metric` declared for ``name``."""
        spec = {**cls.metrics, **cls.generator_metrics}[name]
        return spec if isinstance(spec, Metric) else Metric(bool(spec))

    @abc.abstractmethod
    def sample_real(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples of the data distribution, shape ``(n, *space.shape)``."""

    @abc.abstractmethod
    def make_generator(self, param_shape: tuple[int, ...]) -> nn.Module:
        """A fresh generator: ``z (B, latent_dim) -> params (B, *param_shape)``."""

    @abc.abstractmethod
    def make_discriminator(self) -> nn.Module:
        """A fresh discriminator: ``x (B, *space.shape) -> logits (B,)``."""

    @abc.abstractmethod
    def evaluate(self, x: torch.Tensor) -> dict[str, float]:
        """Sample-quality metrics of generated samples ``x (n, *space.shape)``."""

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
        """``z ~ N(0, I)``, shape ``(n, latent_dim)``."""
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    def evaluate_generator(self, G: nn.Module, param_kind: str,
                           generator: torch.Generator | None = None) -> dict[str, float]:
        """Metrics that need the generator itself, not only its samples (default: none).

        ``param_kind`` says what G's head emits: ``"logits"`` for discrete estimators,
        ``"mean"`` or ``"loc_scale"`` for continuous ones.
        """
        return {}

    def render(self, x: torch.Tensor, path: str | Path) -> Path:
        """Draw generated samples ``x`` for a person to look at; returns the file written."""
        raise NotImplementedError(f"task {self.name!r} has no picture of its samples")

    def __repr__(self) -> str:
        from gangrad._registry import hyperparameters

        args = ", ".join(f"{h.name}={getattr(self, h.name)!r}" for h in hyperparameters(type(self)))
        return f"{type(self).__name__}({args})"


def check_samples(space: Continuous | Discrete, x: torch.Tensor) -> torch.Tensor:
    """``x`` detached, on the CPU, as floats; ``ValueError`` unless shaped ``(n, *space.shape)``."""
    if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != space.shape or x.shape[0] < 1:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        want = ", ".join(map(str, space.shape))
        raise ValueError(f"samples of {space} must have shape (n, {want}) with n >= 1, got {got}")
    x = x.detach().cpu()
    return x if x.is_floating_point() else x.float()
