"""What a generator emits per sample.

- ``Continuous(dim)``: a float vector, shape ``(dim,)``.
- ``Discrete(length, classes)``: a sequence of ``length`` one-hot vectors over ``classes``
  symbols, shape ``(length, classes)``.

Example::

    >>> Discrete(3, 2).shape, Discrete(3, 2).outcomes
    ((3, 2), 8)
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

__all__ = ["Continuous", "Discrete", "Space"]


def _positive_int(owner: str, name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value}")
    return int(value)


@dataclass(frozen=True)
class Continuous:
    """A ``dim``-dimensional real vector per sample."""

    dim: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "dim", _positive_int("Continuous", "dim", self.dim))

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def __str__(self) -> str:
        return f"Continuous({self.dim})"


@dataclass(frozen=True)
class Discrete:
    """``length`` independent symbols per sample, each one-hot over ``classes`` values."""

    length: int
    classes: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "length", _positive_int("Discrete", "length", self.length))
        object.__setattr__(
            self, "classes", _positive_int("Discrete", "classes", self.classes, minimum=2)
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.length, self.classes)

    @property
    def outcomes(self) -> int:
        """Number of distinct samples, ``classes ** length``."""
        return self.classes**self.length

    def __str__(self) -> str:
        return f"Discrete({self.length}, {self.classes})"


Space = Continuous | Discrete
