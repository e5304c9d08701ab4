"""Arms of a training experiment, trained over common seeds, and their paired verdicts
under the convergence rule.

An :class:`Arm` is one training configuration (task and its options, estimator and its
hyper-parameters, :class:`~gangrad.train.TrainConfig` overrides). :func:`train_budgets`
trains each arm on the same seeds with :func:`gangrad.train.train_seeds` (seeds batched)
and evaluates it at ``T/2`` and ``T``, so two arms run from one seed share their initial D
(and G where their heads agree), data and latent streams: their per-seed differences are
paired. :func:`decide` compares arms with a reference at both budgets (paired,
Holm-adjusted, at the practical margin the task declares for the metric), checks every
arm's convergence (:func:`gangrad.stats.convergence`) and gives each comparison the
outcome a verdict may state (:func:`gangrad.stats.budget_outcome`: the outcome, or
``budget-dependent``); :meth:`Decision.sentence` states it with its effect size.
:func:`tune` gives every arm the same tuning budget: a grid of settings tried on tuning
seeds that the verdict does not use. :func:`train_arms` and :func:`paired` are the
final-budget pieces alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from gangrad.stats import (
    BUDGET_DEPENDENT,
    Comparison,
    Convergence,
    budget_outcome,
    compare_to_best,
    convergence,
    convergence_sentence,
)

__all__ = ["CONVERGENCE_RULE", "Arm", "Decision", "comparison_numbers", "convergence_record",
           "decide", "paired", "per_seed", "sentence", "train_arms", "train_budgets", "tune"]

#: the convergence rule in words, for an answer's ``convergence`` record
CONVERGENCE_RULE = (
    "Every arm is evaluated at T/2 and T on the same runs. An arm has converged when the "
    "paired change of its metric from T/2 to T over the seeds lies within the task's "
    "practical margin by two one-sided tests at 0.05 (its 90% interval inside ±margin); a "
    "change that differs from 0 is 'moving', neither is 'unsettled'. An outcome is stated "
    "only when every arm of the comparison converged and the outcome is the same at T/2 "
    "and T; otherwise it is 'budget-dependent' and both results are given.")


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


def _train(arms: Sequence[Arm], seeds: Sequence[int], steps: int | None,
           eval_samples: int, checkpoints: int,
           on_checkpoint: Callable[[Arm, int, int, Any], None] | None,
           budgets: bool) -> pd.DataFrame:
    from gangrad.train import train_seeds

    seeds = list(seeds)
    rows = []
    for arm in arms:
        train = dict(arm.train)
        n = train.pop("steps", steps)
        if n is None:
            raise ValueError(f"train_arms: arm {arm.label!r} has no steps")
        if budgets and n % 2:
            raise ValueError(f"train_budgets: arm {arm.label!r} trains {n} steps; an even "
                             "number is needed to evaluate it at T/2")
        marks = (sorted({round(i * n / checkpoints) for i in range(checkpoints + 1)})
                 if checkpoints and on_checkpoint is not None else [])
        hook = None if not marks else (lambda seed, step, state, arm=arm:
                                       on_checkpoint(arm, seed, step, state))
        histories = train_seeds(arm.make_task(), arm.estimator, seeds,
                                estimator_hyper=arm.hyper, steps=n,
                                eval_every=n // 2 if budgets else n,
                                eval_samples=eval_samples, checkpoint_steps=marks,
                                on_checkpoint=hook, **train)
        wanted = ((n // 2, "T/2"), (n, "T")) if budgets else ((n, None),)
        for seed, h in zip(seeds, histories, strict=True):
            finished = h.attrs["status"] == "ok" and len(h) and h["step"].iloc[-1] == n
            for step, budget in wanted:
                at = h[h["step"] == step]
                last = (at if len(at) else h).iloc[-1].to_dict() if len(h) else {}
                row = {"arm": arm.label, "task": arm.task, "seed": seed, "steps": n}
                if budget is not None:
                    row.update(budget=budget, step=step)
                rows.append({**row, "status": h.attrs["status"],
                             "elapsed_s": (float(last["elapsed_s"]) if "elapsed_s" in last
                                           else float("nan")),
                             **{k: (v if finished else float("nan")) for k, v in last.items()
                                if k not in ("step", "elapsed_s")}})
    return pd.DataFrame(rows)


def train_budgets(arms: Sequence[Arm], seeds: Sequence[int], steps: int | None = None,
                  eval_samples: int = 2000, checkpoints: int = 0,
                  on_checkpoint: Callable[[Arm, int, int, Any], None] | None = None
                  ) -> pd.DataFrame:
    """:func:`train_arms` evaluated at both budgets: one row per (arm, seed, budget) with
    ``budget`` ``"T/2"`` or ``"T"`` and ``step`` ``T/2`` or ``T`` (each arm's ``T`` must
    be even). The metrics of a seed that diverged before the end are NaN at both."""
    return _train(arms, seeds, steps, eval_samples, checkpoints, on_checkpoint, True)


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
    return _train(arms, seeds, steps, eval_samples, checkpoints, on_checkpoint, False)


def at_budget(table: pd.DataFrame, budget: str) -> pd.DataFrame:
    """The rows of :func:`train_budgets`' ``table`` at ``budget`` (``"T/2"`` or ``"T"``)."""
    return table[table["budget"] == budget]


def decide(table: pd.DataFrame, labels: Sequence[str], reference: str, metric: str,
           higher_is_better: bool, margin: float) -> Decision:
    """Each arm of ``labels`` against ``reference`` on ``metric`` at ``T/2`` and at ``T``
    (:func:`paired` at each budget), every arm's convergence check, and the outcome each
    comparison may state (:func:`gangrad.stats.budget_outcome`). ``table`` comes from
    :func:`train_budgets`."""
    half = paired(at_budget(table, "T/2"), labels, reference, metric, higher_is_better,
                  margin)
    end = paired(at_budget(table, "T"), labels, reference, metric, higher_is_better, margin)
    checks = {label: arm_convergence(table, label, metric, margin)
              for label in [*labels, reference]}
    outcomes = {label: budget_outcome(half[label], end[label],
                                      [checks[label], checks[reference]])
                for label in labels}
    return Decision(metric, reference, half, end, checks, outcomes)


def arm_convergence(table: pd.DataFrame, label: str, metric: str,
                    margin: float) -> Convergence:
    """The convergence check of arm ``label`` on ``metric`` (:func:`train_budgets` rows)."""
    rows = table[table["arm"] == label]
    steps = rows.groupby("budget")["step"].max()
    return convergence(label, metric, per_seed(at_budget(rows, "T/2"), label, metric),
                       per_seed(at_budget(rows, "T"), label, metric), margin,
                       int(steps.get("T/2", 0)), int(steps.get("T", 0)))


@dataclass
class Decision:
    """Comparisons with ``reference`` at both budgets, each arm's convergence check, and
    the outcome each comparison may state (the outcome, or ``budget-dependent``)."""

    metric: str
    reference: str
    half: dict[str, Comparison]
    end: dict[str, Comparison]
    convergence: dict[str, Convergence]
    outcomes: dict[str, str]

    def sentence(self, label: str, digits: int = 3) -> str:
        """The comparison at ``T`` in words; for a budget-dependent one, also at ``T/2``
        and which arm did not converge."""
        c = self.end[label]
        if self.outcomes[label] != BUDGET_DEPENDENT:
            return sentence(c, self.metric, digits)
        # more seeds cannot decide what a longer run has yet to settle: no seed count
        text = sentence(c, self.metric, digits, seeds_needed=False)
        h = self.half[label]
        why = [f"{a} not converged ({self.convergence[a].status})"
               for a in (label, self.reference) if not self.convergence[a].converged]
        if h.outcome != c.outcome:
            why.append(f"{h.outcome} at T/2 against {c.outcome} at T")
        return (f"budget-dependent ({'; '.join(why)}): at T, {text}; at T/2 "
                f"(step {self.convergence[label].half_step}), difference "
                f"{h.difference:.{digits}g} [95% CI {h.lo:.{digits}g}, {h.hi:.{digits}g}], "
                f"{h.outcome}")

    def numbers(self, label: str) -> dict[str, Any]:
        """One comparison as plain numbers: the outcome it states, both budgets, checks."""
        return {"outcome": self.outcomes[label],
                "at_T": comparison_numbers(self.end[label]),
                "at_half_T": comparison_numbers(self.half[label]),
                "converged": {a: self.convergence[a].status
                              for a in (label, self.reference)}}

    def checks(self) -> list[Convergence]:
        return list(self.convergence.values())


def convergence_record(*checks: Convergence | Decision | Sequence[Convergence],
                       rule: str = CONVERGENCE_RULE) -> dict[str, Any]:
    """An answer's ``convergence`` entry: the rule, and every arm's check once."""
    seen: dict[str, Convergence] = {}
    for item in checks:
        group = (item.checks() if isinstance(item, Decision)
                 else [item] if isinstance(item, Convergence) else list(item))
        for c in group:
            seen.setdefault(f"{c.arm}|{c.metric}", c)
    return {"rule": rule, "arms": [c.numbers() for c in seen.values()],
            "all_converged": all(c.converged for c in seen.values()),
            "summary": [convergence_sentence(c) for c in seen.values()]}


def tune(arm: Arm, grid: dict[str, Sequence[Any]], seeds: Sequence[int], metric: str,
         higher_is_better: bool, steps: int | None = None, eval_samples: int = 2000,
         where: str = "train") -> tuple[Arm, pd.DataFrame]:
    """``arm`` with the best setting of ``grid`` (names of ``arm.train`` options, or of
    ``arm.hyper`` with ``where="hyper"``, each with its values), chosen by the mean of
    ``metric`` at the end over ``seeds`` — tuning seeds the verdict does not use, so that
    every arm gets the same tuning budget. Returns the tuned arm and the grid's table."""
    import itertools

    names = list(grid)
    variants = []
    for values in itertools.product(*(grid[n] for n in names)):
        change = dict(zip(names, values, strict=True))
        label = f"{arm.label} [{', '.join(f'{k}={v}' for k, v in change.items())}]"
        fields = ({"train": {**arm.train, **change}} if where == "train"
                  else {"hyper": {**arm.hyper, **change}})
        variants.append(replace(arm, label=label, **fields))
    table = train_arms(variants, seeds, steps, eval_samples)
    means = table.groupby("arm")[metric].mean().dropna()
    if means.empty:
        raise RuntimeError(f"tune: every setting of {arm.label!r} diverged")
    best = means.idxmax() if higher_is_better else means.idxmin()
    chosen = next(v for v in variants if v.label == best)
    return replace(chosen, label=arm.label), table


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


def sentence(c: Comparison, metric: str, digits: int = 3, seeds_needed: bool = True) -> str:
    """``A is better than B on metric: difference d [95% CI lo, hi] over n seeds`` (and,
    with ``seeds_needed``, the seeds likely needed when undetermined)."""
    word = {"better": "better than", "worse": "worse than",
            "equivalent": "equivalent to", "undetermined": "not distinguishable from"}
    a, b, setting = c.estimator, c.reference, ""
    if ": " in a and a.split(": ", 1)[0] == b.split(": ", 1)[0]:  # one setting, two arms
        setting = a.split(": ", 1)[0] + ": "
        a, b = a.split(": ", 1)[1], b.split(": ", 1)[1]
    text = (f"{setting}{a} is {word[c.outcome]} {b} on {metric}: difference "
            f"{c.difference:.{digits}g} [95% CI {c.lo:.{digits}g}, {c.hi:.{digits}g}] over "
            f"{c.seeds} paired seeds")
    if c.outcome == "undetermined" and seeds_needed:
        more = ("an unknown number of" if c.seeds_needed is None else f"about {c.seeds_needed}")
        text += f" (undetermined: {more} more seeds would likely decide it)"
    return text


def comparison_numbers(c: Comparison) -> dict[str, Any]:
    """A comparison as plain numbers for an answer's JSON."""
    return {"outcome": c.outcome, "difference": c.difference, "lo": c.lo, "hi": c.hi,
            "seeds": c.seeds, "p_difference": c.p_difference,
            "p_equivalence": c.p_equivalence, "seeds_needed": c.seeds_needed}
