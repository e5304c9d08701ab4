"""Gradient-statistics settings: one dataclass, one set of defaults, one validation, used by
:func:`gangrad.measure.gradient_stats`, ``gangrad grad-stats`` and suites alike."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from gangrad._validate import known_fields
from gangrad.losses import LOSSES

__all__ = ["SUITE_KEYS", "GradStatsConfig"]


# the settings a suite's [grad_stats] table may set (besides ``at_steps``); a cell records
# them as part of its identity, ``loss`` only where the suite sets it (so the identities of
# cells from suites without it do not change)
SUITE_KEYS = ("replicates", "batch_size", "timing", "timing_repeats",
              "reference_replicates", "fresh_z", "loss")
_RECORDED_WHEN_SET = ("loss",)


@dataclass(frozen=True)
class GradStatsConfig:
    """How gradient statistics are measured (method: :mod:`gangrad.measure.engine`).

    - ``replicates``: gradient estimates per estimator (≥ 2);
    - ``batch_size``: rows of the z batch each estimate averages over (≥ 1);
    - ``seed``: the z batch and the estimators' noise;
    - ``fresh_z``: a new z batch per replicate (the total variance of a minibatch
      gradient) instead of one fixed batch (common random numbers);
    - ``loss``: the generator loss through D, ``nonsaturating`` or ``minimax``;
    - ``reference_replicates``: estimates averaged into a Monte Carlo reference, where
      no exact one exists (≥ 2);
    - ``timing``, ``timing_repeats``: measure the cost, from this many timed calls (≥ 1);
    - ``chunk_size``: replicates per ``vmap`` chunk (bounds memory; None: all at once);
    - ``reparam_log_scale``: the constant log-scale given to a head that has none.
    """

    replicates: int = 1000
    batch_size: int = 64
    seed: int = 0
    fresh_z: bool = False
    loss: str = "nonsaturating"
    reference_replicates: int = 2000
    timing: bool = True
    timing_repeats: int = 20
    chunk_size: int | None = None
    reparam_log_scale: float = math.log(0.1)

    def problems(self) -> list[tuple[str, str]]:
        """Every invalid setting, as ``(name, message)``; empty when all are valid."""
        out = []
        for name, minimum in (("replicates", 2), ("batch_size", 1), ("seed", 0),
                              ("reference_replicates", 2),
                              ("timing_repeats", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                out.append((name, f"{name} must be an integer >= {minimum}, got {value!r}"))
        for name in ("fresh_z", "timing"):
            if not isinstance(getattr(self, name), bool):
                out.append((name, f"{name} must be true or false, got {getattr(self, name)!r}"))
        if self.loss not in LOSSES:
            out.append(("loss", f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}"))
        chunk = self.chunk_size
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int)
                                  or chunk < 1):
            out.append(("chunk_size", f"chunk_size must be an integer >= 1, got {chunk!r}"))
        scale = self.reparam_log_scale
        if isinstance(scale, bool) or not isinstance(scale, int | float) \
                or not math.isfinite(scale):
            out.append(("reparam_log_scale",
                        f"reparam_log_scale must be a finite number, got {scale!r}"))
        return out

    def validated(self) -> GradStatsConfig:
        """Itself, or ``ValueError`` naming every invalid setting."""
        problems = self.problems()
        if problems:
            raise ValueError("gradient_stats: " + "; ".join(m for _, m in problems))
        return self

    def updated(self, **changes: Any) -> GradStatsConfig:
        """A copy with ``changes``; an unknown name is refused with the accepted ones."""
        known_fields("gradient_stats", (f.name for f in fields(self)), changes, "setting")
        return replace(self, **changes)

    def suite_values(self) -> dict[str, Any]:
        """The settings a suite cell records (part of its identity), by name."""
        values, default = asdict(self), GradStatsConfig()
        return {k: values[k] for k in SUITE_KEYS
                if k not in _RECORDED_WHEN_SET or values[k] != getattr(default, k)}
