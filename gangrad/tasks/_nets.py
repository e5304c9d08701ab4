"""Network builders shared by the tasks.

Every generator ends in :class:`Head`, a ``Linear`` to ``prod(param_shape)`` followed by a
reshape, so one architecture serves every estimator whatever head shape it asks for
(``(dim,)`` for a mean, ``(2, dim)`` for a location and log-scale, ``(length, classes)`` for
logits). Discriminators flatten their input and never index it, so relaxed (soft) one-hot
vectors go through the same code as hard ones.

Parameters are initialised by torch's default initialisers, which draw from torch's global
generator: seed it (``torch.manual_seed``) to get identical networks.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = [
    "Generator",
    "Head",
    "MLPDiscriminator",
    "check_param_shape",
    "leaky_relu",
    "mlp",
    "mlp_generator",
    "resize_head",
]

Activation = Callable[[], nn.Module]


def check_param_shape(param_shape: Sequence[int]) -> tuple[int, ...]:
    """``param_shape`` as a tuple of positive ints; ``ValueError`` otherwise."""
    message = f"param_shape must be a tuple of positive ints, got {param_shape!r}"
    try:
        shape = tuple(param_shape)
    except TypeError:
        raise ValueError(message) from None
    if not shape or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in shape
    ):
        raise ValueError(message)
    return tuple(int(s) for s in shape)


def mlp(in_dim: int, hidden: int, depth: int, out_dim: int,
        activation: Activation = nn.ReLU) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden``, each ``Linear`` then ``activation()``,
    and a final ``Linear`` to ``out_dim`` (no output activation). ``depth=0`` is linear."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), activation()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class Head(nn.Module):
    """``Linear(in_dim, prod(param_shape))``, reshaped to ``(B, *param_shape)``."""

    def __init__(self, in_dim: int, param_shape: Sequence[int]) -> None:
        super().__init__()
        self.param_shape = check_param_shape(param_shape)
        self.linear = nn.Linear(in_dim, math.prod(self.param_shape))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h).reshape(h.shape[0], *self.param_shape)

    def stacked_forward(self, h: torch.Tensor, stack) -> torch.Tensor:
        """:meth:`forward` for ``(S, B, features)`` (see :mod:`gangrad.train.stacked`)."""
        return stack.child("linear")(h).reshape(*h.shape[:2], *self.param_shape)


class Generator(nn.Module):
    """``z (B, latent_dim) -> params (B, *param_shape)``: a body, then a :class:`Head`.

    ``body`` maps ``(B, latent_dim)`` to ``(B, features)``; ``nn.Identity`` with
    ``features=latent_dim`` gives a linear generator.
    """

    def __init__(self, body: nn.Module, features: int, param_shape: Sequence[int]) -> None:
        super().__init__()
        self.body = body
        self.head = Head(features, param_shape)

    @property
    def param_shape(self) -> tuple[int, ...]:
        return self.head.param_shape

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(z))

    def stacked_forward(self, z: torch.Tensor, stack) -> torch.Tensor:
        return stack.child("head")(stack.child("body")(z))


def mlp_generator(latent_dim: int, hidden: int, depth: int, param_shape: Sequence[int],
                  activation: Activation = nn.ReLU) -> Generator:
    """An MLP body of ``depth`` hidden layers of width ``hidden``, then a :class:`Head`."""
    if depth == 0:
        return Generator(nn.Identity(), latent_dim, param_shape)
    body = mlp(latent_dim, hidden, depth - 1, hidden, activation)
    return Generator(nn.Sequential(body, activation()), hidden, param_shape)


class MLPDiscriminator(nn.Module):
    """``x (B, *shape) -> logits (B,)``: flatten, then :func:`mlp` to one logit."""

    def __init__(self, in_shape: Sequence[int], hidden: int, depth: int,
                 activation: Activation = nn.ReLU) -> None:
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.net = mlp(math.prod(self.in_shape), hidden, depth, 1, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(-1)

    def stacked_forward(self, x: torch.Tensor, stack) -> torch.Tensor:
        return stack.child("net")(x.flatten(2)).squeeze(-1)


def leaky_relu() -> nn.Module:
    """``LeakyReLU(0.2)``, the usual GAN discriminator activation (Radford et al., 2016)."""
    return nn.LeakyReLU(0.2)


def resize_head(G: nn.Module, shape: Sequence[int], log_scale: float) -> nn.Module:
    """A copy of ``G`` whose :class:`Head` emits ``shape``, for a continuous ``(d,)`` head:
    ``(2, d)`` from ``(d,)`` (location rows copied, log-scale rows the constant
    ``log_scale``) or ``(d,)`` from ``(2, d)`` (the location rows). ``ValueError`` for a
    generator that does not end in a :class:`Head` of one of those shapes."""
    head = getattr(G, "head", None)
    shape = check_param_shape(shape)
    current = tuple(head.param_shape) if isinstance(head, Head) else None
    if current is None or {current, shape} != {(shape[-1],), (2, shape[-1])}:
        raise ValueError(f"cannot derive a generator with head {shape} from "
                         f"{type(G).__name__}; measure it on a task whose G ends in a Head")
    d = shape[-1]
    new = Head(head.linear.in_features, shape).to(head.linear.weight.device)
    with torch.no_grad():
        if shape == (d,):
            new.linear.weight.copy_(head.linear.weight[:d])
            new.linear.bias.copy_(head.linear.bias[:d])
        else:
            new.linear.weight.zero_()
            new.linear.weight[:d] = head.linear.weight
            new.linear.bias.fill_(log_scale)
            new.linear.bias[:d] = head.linear.bias
    resized = copy.deepcopy(G)
    resized.head = new
    return resized
