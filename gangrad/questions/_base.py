"""The question contract, stated once.

A question is a named empirical question with its experiment, its analysis and a verdict
computed from the data (never a fixed sentence), and its figure. What a reader gets,
in this order: one plain sentence that answers the question as asked (``answer``), the
numbers with their intervals (``text``), the convergence check behind every
training-based arm at both budgets (``convergence``), the figure, and what would change
the answer (``changes``)::

    class MyQuestion(AbstractQuestion):
        name = "my-question"                          # the key of ``gangrad ask``
        question = "Does X beat Y when ...?"          # asked in full
        origin = "Cross Validated 470753"             # the public question or paper section
        quick = {"seeds": 3, "steps": 300}            # sizes on 2 CPU cores, minutes
        full = {"seeds": 10, "steps": 4000}           # sizes for one GPU

        def experiment(self, settings, seed) -> Data: ...        # runs; returns the data
        def analyse(self, data, settings) -> Verdict: ...        # verdict text + numbers
        def figure(self, data, settings) -> tuple[Figure, str]:  # figure and caption

It registers in one place, ``_BUILTINS`` of :mod:`gangrad.questions` (or, from another
package, the entry-point group ``gangrad.questions``). :meth:`AbstractQuestion.answer`
runs the three in order and returns the :class:`Answer` that ``gangrad ask`` writes.
``Data`` is a DataFrame or a dict of them; :meth:`table` picks the one that is saved as
the answer's CSV. Statistics come from :mod:`gangrad.stats`, figures follow
:mod:`gangrad.plotting`, training goes through :mod:`gangrad.train`.

Training-based verdicts follow the convergence rule of :mod:`gangrad.stats` (every arm read
at ``T/2`` and ``T``; an outcome is stated only when every arm converged and it is the same
at both budgets, else it is ``budget-dependent`` and both results are shown);
:mod:`gangrad.questions._arms` trains arms over common seeds and applies it. Arms get the
same tuning budget, and D must be able to see what the comparison is about.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from gangrad._provenance import pinned_threads, result_threads

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["AbstractQuestion", "Answer", "Data", "Verdict"]

Data = pd.DataFrame | dict[str, pd.DataFrame]


@dataclass
class Verdict:
    """What the analysis concludes: the answer in one sentence, the numbers behind it, the
    convergence check of its training runs, and what would change it."""

    #: the numbers with their intervals (Markdown: short paragraphs or a bullet list)
    text: str
    numbers: dict[str, Any]
    #: the decision the verdict rests on: a comparison's outcome (``better``, ``worse``,
    #: ``equivalent``, ``undetermined``, from :mod:`gangrad.stats`), ``budget-dependent``
    #: where a training-based outcome does not hold at both budgets or an arm did not
    #: converge, or, where the question checks theory rather than comparing two arms,
    #: ``agrees``/``disagrees`` with it
    outcome: str = "undetermined"
    #: one plain sentence that answers the question as asked, before any number
    answer: str = ""
    #: the check behind every training-based arm at both budgets: ``{"rule": ...,
    #: "arms": [Convergence.numbers(), ...]}``; ``{"rule": "not training-based: ..."}``
    #: for a question that trains nothing
    convergence: dict[str, Any] = field(default_factory=dict)
    #: what would change the answer (a setting, a budget, a different D, ...)
    changes: str = ""


@dataclass
class Answer:
    """A question's result: the verdict computed from the data, its numbers and figure."""

    name: str
    question: str
    verdict: str
    numbers: dict[str, Any]
    table: pd.DataFrame
    figure: Any  # a matplotlib Figure
    caption: str
    settings: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    outcome: str = "undetermined"
    runtime_s: float = float("nan")
    answer: str = ""
    convergence: dict[str, Any] = field(default_factory=dict)
    changes: str = ""


def _first_sentence(text: str) -> str:
    """A verdict without its own answer sentence: the first sentence of its text."""
    head = text.strip().split("\n", 1)[0]
    cut = head.find(". ")
    return head if cut < 0 else head[:cut + 1]


class AbstractQuestion(abc.ABC):
    """Base of every question; see the module docstring for what a subclass declares."""

    name: ClassVar[str]
    question: ClassVar[str]
    origin: ClassVar[str]
    quick: ClassVar[dict[str, Any]]
    full: ClassVar[dict[str, Any]]

    def answer(self, full: bool = False, seed: int = 0) -> Answer:
        """Run the experiment (``full``: the GPU-sized one), analyse it, draw it, with
        torch's thread count pinned (:func:`gangrad._provenance.result_threads`) so that the
        numbers repeat from ``seed``."""
        settings = dict(self.full if full else self.quick)
        start = time.perf_counter()
        with pinned_threads(result_threads()):
            data = self.experiment(settings, seed)
            verdict = self.analyse(data, settings)
        figure, caption = self.figure(data, settings)
        return Answer(self.name, self.question, verdict.text, verdict.numbers,
                      self.table(data), figure, caption,
                      {"full": full, "seed": seed, **settings}, self.origin, verdict.outcome,
                      time.perf_counter() - start, verdict.answer or _first_sentence(
                          verdict.text), verdict.convergence, verdict.changes)

    def table(self, data: Data) -> pd.DataFrame:
        """The data saved beside the answer (``NAME.csv``): the frame, or the first one."""
        return data if isinstance(data, pd.DataFrame) else next(iter(data.values()))

    @abc.abstractmethod
    def experiment(self, settings: dict[str, Any], seed: int) -> Data:
        """Run the experiment at ``settings`` (``quick`` or ``full``) from ``seed``."""

    @abc.abstractmethod
    def analyse(self, data: Data, settings: dict[str, Any]) -> Verdict:
        """The verdict, computed from ``data``, and the numbers it rests on."""

    @abc.abstractmethod
    def figure(self, data: Data, settings: dict[str, Any]) -> tuple[Figure, str]:
        """The answer's figure and its caption (what to look at)."""
