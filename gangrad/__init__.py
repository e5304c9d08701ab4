"""gangrad: a benchmark suite comparing gradient estimators for training GAN generators."""

from __future__ import annotations

from gangrad import estimators, spaces
from gangrad.spaces import Continuous, Discrete

__version__ = "0.1.0"

__all__ = ["Continuous", "Discrete", "__version__", "estimators", "load", "spaces"]


def load(run: str, store=None):
    """A stored run's metrics as a tidy pandas DataFrame (see :mod:`gangrad.runner`)."""
    from gangrad.runner import load as _load

    return _load(run, store)
