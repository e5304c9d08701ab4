"""Schedules for annealing a hyper-parameter over training (σ → 0, temperature → 0).

``Schedule(start, end, steps, kind)`` is a callable ``step -> value``: it moves from
``start`` at step 0 to ``end`` at step ``steps`` and stays at ``end`` afterwards.

- ``"constant"``: always ``start``.
- ``"linear"``:  ``start + (end − start)·t``, ``t = min(step/steps, 1)``.
- ``"geometric"``: ``start·(end/start)^t`` (log-linear; the natural choice for σ → 0).
- ``"cosine"``: ``end + (start − end)(1 + cos πt)/2``.

Example::

    >>> sched = Schedule(1.0, 0.01, steps=100, kind="geometric")
    >>> round(sched(50), 6)
    0.1
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gangrad._validate import choice, integer, positive

__all__ = ["KINDS", "Schedule"]

KINDS = ("constant", "linear", "geometric", "cosine")


@dataclass(frozen=True)
class Schedule:
    start: float
    end: float
    steps: int
    kind: str = "geometric"

    def __post_init__(self) -> None:
        choice("Schedule", "kind", self.kind, KINDS)
        integer("Schedule", "steps", self.steps, minimum=1)
        if self.kind == "geometric":
            positive("Schedule", "start", self.start)
            positive("Schedule", "end", self.end)
        for name in ("start", "end"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"Schedule: {name} must be finite, got {value}")

    def __call__(self, step: int) -> float:
        if step < 0:
            raise ValueError(f"Schedule: step must be >= 0, got {step}")
        t = min(step / self.steps, 1.0)
        if self.kind == "constant":
            return float(self.start)
        if self.kind == "linear":
            return self.start + (self.end - self.start) * t
        if self.kind == "geometric":
            return self.start * (self.end / self.start) ** t
        return self.end + (self.start - self.end) * (1 + math.cos(math.pi * t)) / 2
