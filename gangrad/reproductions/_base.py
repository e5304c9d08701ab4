"""The reproduction contract, stated once.

A reproduction runs a published protocol and sets each published number beside gangrad's
measurement of it, with a 95% interval and whether the two agree::

    class MyReproduction(AbstractReproduction):
        name = "my-paper-table2"                       # the key of ``gangrad reproduce``
        title = "Table 2 of My Paper"
        source = "Author et al. (2020), Table 2; code github.com/author/repo"
        error_kind = "s.e. over 10 trials"             # how the source states its errors
        quick = {"seeds": 3, "steps": 300}             # scaled: 2 CPU cores, <= 5 minutes
        full = {"seeds": 10, "steps": 4000}            # the published protocol, one GPU

        def measure(self, settings, seed, progress) -> tuple[list[Row], pd.DataFrame]: ...
        def summary(self, rows, settings) -> str: ...              # one line, from rows
        def figure(self, rows, data, settings) -> tuple[Figure, str]: ...

It registers in one place, ``_BUILTINS`` of :mod:`gangrad.reproductions` (or, from another
package, the entry-point group ``gangrad.reproductions``).
:meth:`AbstractReproduction.reproduce` runs the three in order and returns the
:class:`Reproduction` that ``gangrad reproduce`` writes.

A :class:`Row` is one published number and its measurement. ``agrees`` is computed by
:func:`agrees`: the published value lies in the measured 95% interval ``[lo, hi]``, or, when
the source gives a standard error ``e``, the published interval ``published ± 1.96 e`` meets
``[lo, hi]``. Rows shown only for comparison (gangrad's own default, a quantity the source
does not print) have ``published=None`` and ``agrees=None``.
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["AbstractReproduction", "Reproduction", "Row", "agrees"]

Z95 = 1.959963984540054


def agrees(published: float | None, published_error: float | None, lo: float,
           hi: float) -> bool | None:
    """Whether a published number agrees with a measured 95% interval ``[lo, hi]``.

    True when ``published`` lies in ``[lo, hi]``; when the source gives a standard error
    ``published_error``, also when ``[published - 1.96 e, published + 1.96 e]`` meets
    ``[lo, hi]``. ``None`` for a comparison row (``published is None``).
    """
    if published is None:
        return None
    if not lo <= hi:
        raise ValueError(f"interval lo={lo} must not exceed hi={hi}")
    if published_error is not None and not (published_error >= 0 and
                                            math.isfinite(published_error)):
        raise ValueError(f"published_error must be finite and >= 0, got {published_error}")
    if lo <= published <= hi:
        return True
    if published_error is None:
        return False
    half = Z95 * published_error
    return published - half <= hi and lo <= published + half


@dataclass
class Row:
    """One published number and its measurement (fields as in ``NAME.json``'s ``rows``)."""

    quantity: str                   # e.g. "modes (ring8)", "variance of the gradient"
    setting: str                    # e.g. "PacGAN2", "REINFORCE, t=0.45, phi=0"
    published: float | None         # None: a comparison row, not a published number
    published_error: float | None   # as the source states it (see ``error_kind``)
    measured: float
    lo: float                       # 95% interval of the measurement
    hi: float
    agrees: bool | None             # :func:`agrees`; None for comparison rows
    note: str = ""                  # what was scaled in this mode, else ""


@dataclass
class Reproduction:
    """A reproduction's result: rows, raw data, summary line and figure."""

    name: str
    title: str
    source: str
    error_kind: str
    summary: str
    rows: list[Row]
    data: pd.DataFrame
    figure: Any  # a matplotlib Figure
    caption: str
    settings: dict[str, Any] = field(default_factory=dict)


class AbstractReproduction(abc.ABC):
    """Base of every reproduction; see the module docstring for what a subclass declares."""

    name: ClassVar[str]
    title: ClassVar[str]
    source: ClassVar[str]
    error_kind: ClassVar[str]
    quick: ClassVar[dict[str, Any]]
    full: ClassVar[dict[str, Any]]

    def reproduce(self, full: bool = False, seed: int = 0,
                  progress: Callable[[str], None] | None = None) -> Reproduction:
        """Measure (``full``: the published protocol), summarise, draw; timed."""
        settings = dict(self.full if full else self.quick)
        say = progress if progress is not None else (lambda message: None)
        start = time.perf_counter()
        rows, data = self.measure(settings, seed, say)
        wall = time.perf_counter() - start
        summary = self.summary(rows, settings)
        figure, caption = self.figure(rows, data, settings)
        return Reproduction(self.name, self.title, self.source, self.error_kind, summary,
                            rows, data, figure, caption,
                            {"full": full, "seed": seed, **settings,
                             "wall_seconds": round(wall, 2)})

    @abc.abstractmethod
    def measure(self, settings: dict[str, Any], seed: int,
                progress: Callable[[str], None]) -> tuple[list[Row], pd.DataFrame]:
        """Run the protocol at ``settings``; the rows and the raw data (per seed etc.)."""

    @abc.abstractmethod
    def summary(self, rows: list[Row], settings: dict[str, Any]) -> str:
        """One line computed from ``rows`` (e.g. how many agree, the largest gap)."""

    @abc.abstractmethod
    def figure(self, rows: list[Row], data: pd.DataFrame,
               settings: dict[str, Any]) -> tuple[Figure, str]:
        """The figure and its caption."""
