"""The question contract, stated once.

A question is a named empirical question with its experiment, its analysis and a verdict
computed from the data (never a fixed sentence), and its figure::

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
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["AbstractQuestion", "Answer", "Data", "Verdict"]

Data = pd.DataFrame | dict[str, pd.DataFrame]


@dataclass
class Verdict:
    """What the analysis concludes: the sentence, and the numbers behind it."""

    text: str
    numbers: dict[str, Any]
    #: the decision the verdict rests on: a comparison's outcome (``better``, ``worse``,
    #: ``equivalent``, ``undetermined``, from :mod:`gangrad.stats`) or, where the question
    #: checks theory rather than comparing two arms, ``agrees``/``disagrees`` with it
    outcome: str = "undetermined"


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


class AbstractQuestion(abc.ABC):
    """Base of every question; see the module docstring for what a subclass declares."""

    name: ClassVar[str]
    question: ClassVar[str]
    origin: ClassVar[str]
    quick: ClassVar[dict[str, Any]]
    full: ClassVar[dict[str, Any]]

    def answer(self, full: bool = False, seed: int = 0) -> Answer:
        """Run the experiment (``full``: the GPU-sized one), analyse it, draw it."""
        settings = dict(self.full if full else self.quick)
        start = time.perf_counter()
        data = self.experiment(settings, seed)
        verdict = self.analyse(data, settings)
        figure, caption = self.figure(data, settings)
        return Answer(self.name, self.question, verdict.text, verdict.numbers,
                      self.table(data), figure, caption,
                      {"full": full, "seed": seed, **settings}, self.origin, verdict.outcome,
                      time.perf_counter() - start)

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
