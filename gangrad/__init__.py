"""gangrad: a benchmark suite comparing gradient estimators for training GAN generators."""

from __future__ import annotations

from gangrad import estimators, spaces
from gangrad.spaces import Continuous, Discrete

__version__ = "0.1.0"

__all__ = ["Continuous", "Discrete", "__version__", "estimators", "spaces"]
