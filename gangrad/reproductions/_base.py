r"""The reproduction contract, stated once.

A reproduction runs a published protocol and sets each published number beside gangrad's
measurement of it, with a 95% interval and a verdict::

    class MyReproduction(AbstractReproduction):
        name = "my-paper-table2"                       # the key of ``gangrad reproduce``
        title = "Table 2 of My Paper"
        source = "Author et al. (2020), Table 2; code github.com/author/repo"
        error_kind = "s.e. over 10 trials"             # how the source states its errors
        published_dof = 9                              # degrees of freedom of those errors
        margins = {"accuracy": Margin(0.5),            # declared before any run
                   "variance": Margin(0.02, relative=True)}
        quick = {"seeds": 3, "steps": 300}             # scaled: 2 CPU cores, <= 5 minutes
        full = {"seeds": 10, "steps": 4000}            # the published protocol, one GPU

        def measure(self, settings, seed, progress) -> tuple[list[Row], pd.DataFrame]: ...
        def summary(self, rows, settings) -> str: ...              # one line, from rows
        def figure(self, rows, data, settings) -> tuple[Figure, str]: ...

It registers in one place, ``_BUILTINS`` of :mod:`gangrad.reproductions` (or, from another
package, the entry-point group ``gangrad.reproductions``). A reproduction may offer more
protocols than ``quick`` and ``full`` in ``budgets`` (name -> settings; ``gangrad reproduce
NAME --budget NAME``). :meth:`AbstractReproduction.reproduce` runs ``measure``, settles
the rows' verdicts (:func:`settle`, with the class's ``margins``), then ``summary`` and
``figure``, and returns the :class:`Reproduction` that ``gangrad reproduce`` writes.

Rows
----
``measure`` returns one :class:`Row` per reference number::

    Row(quantity, setting, published, published_error, measured, lo, hi,
        note="...", kind="published", se=0.12, dof=9)                 # a verdict row
    Row(quantity, setting, published, published_error, measured, lo, hi,
        note="300 of 400,000 steps", se=0.12, dof=9, verdict="scaled")  # a cut-down run
    Row(quantity, setting, None, None, measured, lo, hi, note="...")  # a comparison row

- ``published``: the reference value; ``None`` for a comparison row (a measurement the
  source does not report). ``kind`` says where the reference comes from: ``"published"``,
  a number printed in the source (the default), or ``"derived"``, a closed form derived in
  the reproduction's module, whose row is a self-consistency check of gangrad's code, not
  a reproduction of a printed number. Comparison rows have kind ``"comparison"``.
- ``published_error``: the source's standard error of ``published`` (``None``: exact), with
  the class's ``published_dof`` degrees of freedom (``inf``: known, or normal).
- ``measured``, ``lo``, ``hi``: the measurement and its 95% interval, as shown.
- ``se``, ``dof``: the measurement's standard error and its degrees of freedom (``n − 1``
  for a mean over ``n`` seeds, ``inf`` for a normal approximation; ``se = 0``: a
  deterministic measurement; ``se = inf``: no information, e.g. fewer than two seeds).
  The verdict uses these, not ``lo``/``hi`` (which may be asymmetric or clipped to a
  metric's range). A verdict row without ``se`` is refused.
- ``verdict="scaled"``: the module says so when the run departs from the published
  protocol (fewer steps, seeds or data): such a row is compared only as a trend, never
  agrees, and takes no part in the tests below.
- ``agrees``, ``verdict`` (other than ``"scaled"``) and ``margin`` are filled by
  :func:`settle`; the saved fields are :data:`SAVED_FIELDS`.

The verdict rule
----------------
A row's quantity takes the margin ``δ`` of its entry in ``margins`` (the quantity itself,
or its name before ``" ("``: ``"modes (ring8)"`` takes ``"modes"``); a relative margin is
``δ = r·|published|`` (at least the margin's ``floor``). With ``m`` the measurement
(standard error ``s``, ``ν₁`` degrees of freedom) and ``P`` the published value (standard
error ``e``, ``ν₂ = published_dof``), both estimates of their protocol's true value, the
difference of the true values ``Δ`` is estimated by ``Δ̂ = m − P`` with standard error
``σ = √(s² + e²)`` (independent runs) and Welch–Satterthwaite degrees of freedom
``ν = σ⁴ / (s⁴/ν₁ + e⁴/ν₂)``; ``T`` is Student's t with ``ν``. The published error counts:
a reference printed with a standard error near the margin cannot be shown equivalent
however close the measurement, which is the honest outcome.

- **agrees**: equivalence within ``δ`` by two one-sided tests (Schuirmann, 1987) of
  ``H₀: Δ ≤ −δ`` and ``H₀: Δ ≥ δ``, ``p = max(P(T ≥ (Δ̂ + δ)/σ), P(T ≤ (Δ̂ − δ)/σ))``;
- **differs**: the 95% interval of ``Δ`` lies outside ``[−δ, δ]``, the two-sided test of
  ``H₀: |Δ| ≤ δ``, ``p = 2·min(P(T ≥ (Δ̂ − δ)/σ), P(T ≤ (Δ̂ + δ)/σ))``;
- **inconclusive**: neither.

Each family of p-values (equivalence; difference) is Holm-adjusted over the table's
verdict rows (:func:`gangrad.stats.holm`) and decided at ``α = 0.05``; the two cannot both
hold. An exact comparison (``σ = 0``) agrees when ``|Δ̂| ≤ δ`` and differs otherwise.
``agrees`` is ``True`` only for the verdict *agrees*, ``None`` for comparison rows.
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
import scipy.stats

from gangrad._provenance import pinned_threads, result_threads
from gangrad.stats import holm

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ALPHA", "KINDS", "SAVED_FIELDS", "VERDICTS", "AbstractReproduction", "Margin",
           "Reproduction", "Row", "margin_for", "p_values", "settle", "verdict_counts"]

ALPHA = 0.05
VERDICTS = ("agrees", "differs", "inconclusive", "scaled")
KINDS = ("published", "derived", "comparison")


@dataclass(frozen=True)
class Margin:
    """How far a measurement may lie from its reference and still agree: ``value``, or
    ``value·|published|`` when ``relative``, and never less than ``floor`` (e.g. the
    float64 rounding of a reference that is exactly 0)."""

    value: float
    relative: bool = False
    floor: float = 0.0

    def __post_init__(self) -> None:
        for name, low in (("value", 0.0), ("floor", None)):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, int | float) and math.isfinite(v)
                                           and (v > low if low is not None else v >= 0)):
                raise ValueError(f"Margin: {name} must be a finite number "
                                 f"{'> 0' if low is not None else '>= 0'}, got {v!r}")

    def of(self, published: float) -> float:
        """The absolute margin around ``published``."""
        delta = self.value * abs(published) if self.relative else float(self.value)
        return max(delta, float(self.floor))

    def __str__(self) -> str:
        return f"±{100 * self.value:g}%" if self.relative else f"±{self.value:g}"


@dataclass
class Row:
    """One reference number and its measurement (module docstring; saved fields:
    :data:`SAVED_FIELDS`)."""

    quantity: str                   # e.g. "modes (ring8)", "variance of the gradient"
    setting: str                    # e.g. "PacGAN2", "REINFORCE, t=0.45, phi=0"
    published: float | None         # the reference value; None: a comparison row
    published_error: float | None   # its standard error, as the source states it
    measured: float
    lo: float                       # 95% interval of the measurement
    hi: float
    agrees: bool | None = None      # filled by settle(): True only for verdict "agrees"
    verdict: str | None = field(default=None, kw_only=True)  # VERDICTS; None: comparison
    margin: float | None = field(default=None, kw_only=True)  # the absolute margin used
    note: str = ""                  # what was scaled in this mode, else ""
    kind: str = field(default="published", kw_only=True)  # KINDS
    se: float | None = field(default=None, kw_only=True)  # standard error of measured
    dof: float = field(default=math.inf, kw_only=True)  # its degrees of freedom

    def __post_init__(self) -> None:
        if self.published is None:
            self.kind = "comparison"
        elif self.kind not in KINDS[:2]:
            raise ValueError(f"Row {self.quantity!r}, {self.setting!r}: kind must be "
                             f"'published' or 'derived' for a row with a reference, got "
                             f"{self.kind!r}")
        if self.verdict not in (None, *VERDICTS):
            raise ValueError(f"Row {self.quantity!r}, {self.setting!r}: verdict must be one "
                             f"of {', '.join(VERDICTS)} or None, got {self.verdict!r}")


#: the fields of a row written to ``NAME.json`` (``se`` and ``dof`` stay in memory)
SAVED_FIELDS = ("quantity", "setting", "published", "published_error", "measured", "lo",
                "hi", "agrees", "verdict", "margin", "note", "kind")


def margin_for(row: Row, margins: Mapping[str, Margin]) -> Margin:
    """The margin declared for ``row.quantity`` (or for its name before ``" ("``)."""
    for key in (row.quantity, row.quantity.split(" (")[0]):
        if key in margins:
            return margins[key]
    raise ValueError(f"no margin declared for quantity {row.quantity!r} (declared: "
                     f"{', '.join(margins) or 'none'}); add it to the reproduction's "
                     f"margins")


def p_values(row: Row, delta: float, published_dof: float = math.inf) -> tuple[float, float]:
    """The unadjusted p-values ``(equivalence, difference)`` of one row against margin
    ``delta`` (module docstring)."""
    s, e = row.se, row.published_error or 0.0
    if s is None or not s >= 0:
        raise ValueError(f"row {row.quantity!r}, {row.setting!r}: se must be a number >= 0 "
                         f"(inf: no information, e.g. fewer than two seeds), got {s!r}")
    if not (e >= 0 and math.isfinite(e)):
        raise ValueError(f"row {row.quantity!r}, {row.setting!r}: published_error must be "
                         f"finite and >= 0, got {row.published_error!r}")
    if not row.dof > 0 or not published_dof > 0:
        raise ValueError(f"row {row.quantity!r}, {row.setting!r}: degrees of freedom must "
                         f"be > 0, got dof={row.dof!r}, published_dof={published_dof!r}")
    diff = row.measured - row.published
    if not (math.isfinite(diff) and math.isfinite(s)):
        return 1.0, 1.0
    sigma = math.hypot(s, e)
    if sigma == 0:  # both exact
        return (0.0, 1.0) if abs(diff) <= delta else (1.0, 0.0)
    parts = sum(v**4 / d for v, d in ((s, row.dof), (e, published_dof))
                if v > 0 and math.isfinite(d))
    nu = sigma**4 / parts if parts > 0 else math.inf
    t = scipy.stats.t(nu) if math.isfinite(nu) else scipy.stats.norm()
    p_equivalent = max(float(t.sf((diff + delta) / sigma)),
                       float(t.cdf((diff - delta) / sigma)))
    p_differs = min(1.0, 2 * min(float(t.sf((diff - delta) / sigma)),
                                 float(t.cdf((diff + delta) / sigma))))
    return p_equivalent, p_differs


def settle(rows: Iterable[Row], margins: Mapping[str, Margin],
           published_dof: float = math.inf, alpha: float = ALPHA) -> list[Row]:
    """The rows with ``agrees``, ``verdict`` and ``margin`` filled in by the verdict rule
    (module docstring), Holm-adjusted over the verdict rows of this table."""
    rows = list(rows)
    verdict_rows = [i for i, r in enumerate(rows) if r.published is not None
                    and r.verdict != "scaled"]
    deltas, p_eq, p_diff = {}, [], []
    for i in verdict_rows:
        deltas[i] = margin_for(rows[i], margins).of(rows[i].published)
        eq, diff = p_values(rows[i], deltas[i], published_dof)
        p_eq.append(eq)
        p_diff.append(diff)
    adjusted = dict(zip(verdict_rows, zip(holm(p_eq), holm(p_diff), strict=True),
                        strict=True))
    out = []
    for i, row in enumerate(rows):
        if row.published is None:
            out.append(replace(row, agrees=None, verdict=None, margin=None))
        elif i not in adjusted:  # scaled
            out.append(replace(row, agrees=False,
                               margin=margin_for(row, margins).of(row.published)))
        else:
            eq, diff = adjusted[i]
            verdict = ("agrees" if eq < alpha else "differs" if diff < alpha
                       else "inconclusive")
            out.append(replace(row, agrees=verdict == "agrees", verdict=verdict,
                               margin=deltas[i]))
    return out


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
    #: quantity -> margin within which a measurement agrees with its reference
    margins: ClassVar[dict[str, Margin]] = {}
    #: degrees of freedom of the source's standard errors (inf: exact or normal)
    published_dof: ClassVar[float] = math.inf
    quick: ClassVar[dict[str, Any]]
    full: ClassVar[dict[str, Any]]
    #: further protocols by name (``gangrad reproduce NAME --budget BUDGET``)
    budgets: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def protocols(cls) -> dict[str, dict[str, Any]]:
        """Every protocol by name: ``quick``, ``full`` and those of ``budgets``."""
        return {"quick": cls.quick, "full": cls.full, **cls.budgets}

    def reproduce(self, full: bool = False, seed: int = 0,
                  progress: Callable[[str], None] | None = None,
                  budget: str | None = None) -> Reproduction:
        """Measure at a protocol (``budget`` by name; else ``full`` or ``quick``) with
        torch's thread count pinned (:func:`gangrad._provenance.result_threads`), settle the
        verdicts, summarise, draw; timed."""
        protocols = self.protocols()
        if budget is None:
            budget = "full" if full else "quick"
        elif full and budget != "full":
            raise ValueError(f"{self.name}: give full=True or budget={budget!r}, not both")
        if budget not in protocols:
            raise ValueError(f"{self.name}: unknown budget {budget!r}; budgets: "
                             f"{', '.join(protocols)}")
        settings = dict(protocols[budget])
        say = progress if progress is not None else (lambda message: None)
        start = time.perf_counter()
        with pinned_threads(result_threads()):  # so that the numbers repeat from the seed
            rows, data = self.measure(settings, seed, say)
        wall = time.perf_counter() - start
        rows = settle(rows, self.margins, self.published_dof)
        summary = self.summary(rows, settings)
        figure, caption = self.figure(rows, data, settings)
        return Reproduction(self.name, self.title, self.source, self.error_kind, summary,
                            rows, data, figure, caption,
                            {"full": budget == "full", "budget": budget, "seed": seed,
                             **settings, "wall_seconds": round(wall, 2)})

    @abc.abstractmethod
    def measure(self, settings: dict[str, Any], seed: int,
                progress: Callable[[str], None]) -> tuple[list[Row], pd.DataFrame]:
        """Run the protocol at ``settings``; the rows and the raw data (per seed etc.)."""

    @abc.abstractmethod
    def summary(self, rows: list[Row], settings: dict[str, Any]) -> str:
        """One line computed from the settled ``rows`` (e.g. counts per verdict)."""

    @abc.abstractmethod
    def figure(self, rows: list[Row], data: pd.DataFrame,
               settings: dict[str, Any]) -> tuple[Figure, str]:
        """The figure and its caption."""


def verdict_counts(rows: Iterable[Row]) -> str:
    """``"3 agree, 1 differs, 2 inconclusive, 12 scaled"`` (zero counts left out)."""
    counts = {v: 0 for v in VERDICTS}
    for r in rows:
        if r.verdict is not None:
            counts[r.verdict] += 1
    words = {"agrees": "agree", "differs": "differ", "inconclusive": "inconclusive",
             "scaled": "scaled"}
    parts = [f"{n} {words[v] if n != 1 else v}" for v, n in counts.items() if n]
    return ", ".join(parts) or "no verdict rows"
