"""Arms of a training experiment, trained over common seeds, and their paired verdicts.

An :class:`Arm` is one training configuration (task and its options, estimator and its
hyper-parameters, :class:`~gangrad.train.TrainConfig` overrides). :func:`train_arms`
trains each arm on the same seeds with :func:`gangrad.train.train_seeds` (seeds batched),
so two arms run from one seed share their initial D (and G where their heads agree), data
and latent streams: their per-seed differences are paired. :func:`paired` decides one arm
against another with :func:`gangrad.stats.compare_paired` (or several against one, Holm
adjusted) at the practical margin the task declares for the metric, and :func:`sentence`
states the outcome with its effect size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gangrad.stats import Comparison, compare_to_best

__all__ = ["Arm", "comparison_numbers", "paired", "per_seed", "sentence", "train_arms"]


@dataclass(frozen=True)
class Arm:
    """One training configuration of an experiment, named by ``label``."""

    label: str
    task: str
    task_params: dict[str, Any] = field(default_factory=dict)
    estimator: str = "pathwise"
    hyper: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def make_task(self):
        from gangrad import tasks

        return tasks.create(self.task, **self.task_params)


def train_arms(arms: Sequence[Arm], seeds: Sequence[int], steps: int | None = None,
               eval_samples: int = 2000,
               checkpoints: int = 0,
               on_checkpoint: Callable[[Arm, int, int, Any], None] | None = None
               ) -> pd.DataFrame:
    """The final evaluation of every (arm, seed): one row with ``arm``, ``seed``,
    ``status``, ``elapsed_s`` (the arm's batch clock) and the task's metrics (NaN for a
    seed that diverged). Each arm trains ``arm.train["steps"]`` steps if it says, else
    ``steps``. ``on_checkpoint(arm, seed, step, state)`` is called at ``checkpoints + 1``
    evenly spaced steps (0 and the last included) when given."""
    from gangrad.train import train_seeds

    seeds = list(seeds)
    rows = []
    for arm in arms:
        train = dict(arm.train)
        n = train.pop("steps", steps)
        if n is None:
            raise ValueError(f"train_arms: arm {arm.label!r} has no steps")
        marks = (sorted({round(i * n / checkpoints) for i in range(checkpoints + 1)})
                 if checkpoints and on_checkpoint is not None else [])
        hook = None if not marks else (lambda seed, step, state, arm=arm:
                                       on_checkpoint(arm, seed, step, state))
        histories = train_seeds(arm.make_task(), arm.estimator, seeds,
                                estimator_hyper=arm.hyper, steps=n, eval_every=n,
                                eval_samples=eval_samples, checkpoint_steps=marks,
                                on_checkpoint=hook, **train)
        for seed, h in zip(seeds, histories, strict=True):
            last = h.iloc[-1].to_dict() if len(h) else {}
            ok = h.attrs["status"] == "ok" and last.get("step") == n
            rows.append({"arm": arm.label, "task": arm.task, "seed": seed, "steps": n,
                         "status": h.attrs["status"],
                         "elapsed_s": float(h["elapsed_s"].iloc[-1]) if len(h) else float("nan"),
                         **{k: (v if ok else float("nan")) for k, v in last.items()
                            if k not in ("step", "elapsed_s")}})
    return pd.DataFrame(rows)


def per_seed(table: pd.DataFrame, label: str, metric: str) -> dict[int, float]:
    """``{seed: value}`` of ``metric`` for arm ``label`` (finite values only)."""
    rows = table[(table["arm"] == label) & table[metric].notna()]
    return {int(s): float(v) for s, v in zip(rows["seed"], rows[metric], strict=True)}


def paired(table: pd.DataFrame, labels: Sequence[str], reference: str, metric: str,
           higher_is_better: bool, margin: float) -> dict[str, Comparison]:
    """Each arm of ``labels`` against ``reference`` on ``metric``: paired comparisons over
    their common seeds, Holm-adjusted together (:func:`gangrad.stats.compare_to_best`)."""
    values = {label: per_seed(table, label, metric) for label in [*labels, reference]}
    return {c.estimator: c for c in compare_to_best(values, reference, higher_is_better,
                                                    margin)}


def sentence(c: Comparison, metric: str, digits: int = 3) -> str:
    """``A is better than B on metric: difference d [95% CI lo, hi] over n seeds`` (and
    the seeds likely needed when undetermined)."""
    word = {"better": "better than", "worse": "worse than",
            "equivalent": "equivalent to", "undetermined": "not distinguishable from"}
    a, b, setting = c.estimator, c.reference, ""
    if ": " in a and a.split(": ", 1)[0] == b.split(": ", 1)[0]:  # one setting, two arms
        setting = a.split(": ", 1)[0] + ": "
        a, b = a.split(": ", 1)[1], b.split(": ", 1)[1]
    text = (f"{setting}{a} is {word[c.outcome]} {b} on {metric}: difference "
            f"{c.difference:.{digits}g} [95% CI {c.lo:.{digits}g}, {c.hi:.{digits}g}] over "
            f"{c.seeds} paired seeds")
    if c.outcome == "undetermined":
        more = ("an unknown number of" if c.seeds_needed is None else f"about {c.seeds_needed}")
        text += f" (undetermined: {more} more seeds would likely decide it)"
    return text


def comparison_numbers(c: Comparison) -> dict[str, Any]:
    """A comparison as plain numbers for an answer's JSON."""
    return {"outcome": c.outcome, "difference": c.difference, "lo": c.lo, "hi": c.hi,
            "seeds": c.seeds, "p_difference": c.p_difference,
            "p_equivalence": c.p_equivalence, "seeds_needed": c.seeds_needed}
