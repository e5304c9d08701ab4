"""Schedules for annealing a hyper-parameter over training (σ → 0, temperature → 0).

``Schedule(start, end, steps, kind)`` is a callable ``step -> value``: it moves from
``start`` at step 0 to ``end`` at step ``steps`` and stays at ``end`` afterwards.

- ``"constant"``: always ``start``.
- ``"linear"``:  ``start + (end − start)·t``, ``t = min(step/steps, 1)``.
- ``"geometric"``: ``start·(end/start)^t`` (log-linear; the natural choice for σ → 0).
- ``"cosine"``: ``end + (start − end)(1 + cos πt)/2``.
- ``"inverse_linear"``, ``"inverse_quad"``, ``"inverse_sqrt"``, ``"inverse_log"``,
  ``"inverse_sigmoid"``: the *reciprocal* moves from ``1/start`` to ``1/end`` along
  ``h``, ``value = 1/(1/start + (1/end − 1/start)·h)``, with ``h = t``, ``t²``, ``√t``,
  ``log(1 + step)/log(1 + steps)`` and ``1/(1 + e^{10 − 20t})`` (``h(0) ≈ 4.5·10⁻⁵``, not
  0, and likewise at the end).

The ``inverse_*`` kinds and ``geometric`` are RelGAN's temperature policies (Nie et al.,
2019, "RelGAN: Relational Generative Adversarial Networks for Text Generation"; released
code ``get_fixed_temperature`` in ``oracle/oracle_gan/oracle_train.py`` of
github.com/weilinie/RelGAN): RelGAN raises the *inverse* temperature ``β = 1/τ`` of its
Gumbel-softmax from 1 to ``β_max`` over ``N`` steps, ``β = 1 + (β_max − 1)h`` for its
``lin``, ``quad``, ``sqrt``, ``log`` and ``sigmoid`` policies and ``β = β_max^{i/N}`` for
``exp``. A Gumbel-softmax ``temperature`` annealed with ``Schedule(1, 1/β_max, N, kind)``
follows them: ``exp`` is ``geometric`` (a geometric ``τ`` is a geometric ``β``), the others
are ``inverse_<policy>``, with ``N = steps`` (RelGAN's ``lin``, ``quad`` and ``sqrt`` reach
``β_max`` at ``N − 1``, its ``log`` at ``N − 1`` with ``log N``; here every kind reaches
``end`` at ``steps``).

Example::

    >>> sched = Schedule(1.0, 0.01, steps=100, kind="geometric")
    >>> round(sched(50), 6)
    0.1
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gangrad._validate import choice, integer, positive

__all__ = ["KINDS", "Schedule", "parse_schedule"]

INVERSE = {"inverse_linear": lambda t, step, steps: t,
           "inverse_quad": lambda t, step, steps: t * t,
           "inverse_sqrt": lambda t, step, steps: math.sqrt(t),
           "inverse_log": lambda t, step, steps: math.log1p(min(step, steps)) / math.log1p(steps),
           "inverse_sigmoid": lambda t, step, steps: 1 / (1 + math.exp(10 - 20 * t))}
KINDS = ("constant", "linear", "geometric", "cosine", *INVERSE)


@dataclass(frozen=True)
class Schedule:
    start: float
    end: float
    steps: int
    kind: str = "geometric"

    def __post_init__(self) -> None:
        choice("Schedule", "kind", self.kind, KINDS)
        integer("Schedule", "steps", self.steps, minimum=1)
        if self.kind == "geometric" or self.kind in INVERSE:
            positive("Schedule", "start", self.start)
            positive("Schedule", "end", self.end)
        for name in ("start", "end"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"Schedule: {name} must be finite, got {value}")

    @property
    def label(self) -> str:
        """``start->end kind``, floats to 4 significant digits (a name in tables)."""
        return f"{self.start:.4g}->{self.end:.4g} {self.kind}"

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
        if self.kind in INVERSE:
            h = INVERSE[self.kind](t, step, self.steps)
            return 1 / (1 / self.start + (1 / self.end - 1 / self.start) * h)
        return self.end + (self.start - self.end) * (1 + math.cos(math.pi * t)) / 2


def parse_schedule(spec: Any, steps: int) -> Schedule:
    """A schedule from a table ``{start, end, kind = "geometric", steps = steps}`` or a string
    ``"START:END[:KIND]"`` (the CLI's ``--anneal``), over ``steps`` unless the table sets its
    own; ``ValueError`` naming the problem otherwise."""
    if isinstance(spec, str):
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"a schedule string is START:END[:KIND], got {spec!r}")
        try:
            start, end = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"schedule {spec!r}: START and END must be numbers") from None
        return Schedule(start, end, steps, parts[2] if len(parts) == 3 else "geometric")
    if not isinstance(spec, Mapping):
        raise ValueError(f"a schedule is a table {{start, end, kind, steps}} or a string "
                         f"START:END[:KIND], got {spec!r}")
    unknown = sorted(set(spec) - {"start", "end", "kind", "steps"})
    missing = sorted({"start", "end"} - set(spec))
    if unknown or missing:
        raise ValueError(f"schedule {dict(spec)!r}: " + "; ".join(
            ([f"unknown key(s) {', '.join(unknown)}"] if unknown else [])
            + ([f"missing {', '.join(missing)}"] if missing else []))
            + " (keys: start, end, kind, steps)")
    for name in ("start", "end"):
        value = spec[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"schedule: {name} must be a number, got {value!r}")
    return Schedule(float(spec["start"]), float(spec["end"]), spec.get("steps", steps),
                    spec.get("kind", "geometric"))
