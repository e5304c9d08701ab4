"""Shared GAN tasks.

Contract (public)::

    from gangrad import tasks
    task = tasks.create("ring8")          # registry key + hyper-parameters
    task.space; task.latent_dim
    task.sample_real(n, generator=None)   # (n, *space shape)
    G = task.make_generator(param_shape)  # z (B, latent_dim) -> params (B, *param_shape)
    D = task.make_discriminator()         # x (B, *space shape) -> logits (B,)
    task.evaluate(x) -> dict[str, float]  # sample-quality metrics

Outside packages add tasks through the entry-point group ``gangrad.tasks``.
"""

from __future__ import annotations

from typing import Any

from gangrad._registry import Registry
from gangrad.tasks._base import AbstractTask, Metric
from gangrad.tasks._nets import resize_head
from gangrad.tasks.binary_digits import BinaryDigits
from gangrad.tasks.categorical import Categorical
from gangrad.tasks.digits import Digits
from gangrad.tasks.gaussian1d import Gaussian1D
from gangrad.tasks.grid25 import Grid25
from gangrad.tasks.oracle_seq import OracleSeq
from gangrad.tasks.ring8 import Ring8

_BUILTINS: dict[str, type[AbstractTask]] = {
    cls.name: cls
    for cls in (Gaussian1D, Ring8, Grid25, Categorical, BinaryDigits, Digits, OracleSeq)
}

REGISTRY: Registry[AbstractTask] = Registry("task", _BUILTINS, "gangrad.tasks")


def available() -> list[str]:
    """Sorted registry keys of every task (built-in and plug-in)."""
    return REGISTRY.available()


def create(name: str, **hyper: Any) -> AbstractTask:
    """The task registered under ``name``, built with hyper-parameters ``hyper``."""
    return REGISTRY.create(name, **hyper)


register = REGISTRY.register


def headline_metric(name: str) -> tuple[str, bool]:
    """The task's headline metric (the first it declares) and whether higher is better."""
    cls = REGISTRY.get(name)
    metric = next(iter(cls.metrics))
    return metric, cls.metric(metric).higher_is_better

__all__ = [
    "REGISTRY",
    "AbstractTask",
    "BinaryDigits",
    "Categorical",
    "Digits",
    "Gaussian1D",
    "Grid25",
    "Metric",
    "OracleSeq",
    "Ring8",
    "available",
    "create",
    "headline_metric",
    "register",
    "resize_head",
]
