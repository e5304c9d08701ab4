"""Statistics across seeds, shared by questions, reports and the runner: intervals of a
mean, paired comparisons that decide, the convergence rule, and the decisions a stored run
supports. (Statistics of replicate gradients: :mod:`gangrad.measure`.)

Comparisons are paired: two estimators trained from the same seed share their initial D
(and G where their heads agree), data and latents (:class:`gangrad.train.TrainState`), so
their per-seed difference removes what the seeds have in common. A comparison is
``better``/``worse`` (paired t-test, ``scipy.stats.ttest_1samp`` on the differences),
``equivalent`` within the practical margin the task declares beside the metric (two
one-sided tests), or ``undetermined`` with the seeds likely needed; comparisons against
the best are Holm-adjusted. A training-based outcome is stated only when its arms have
converged and it holds at both budgets ``T/2`` and ``T``; otherwise it is
``budget-dependent`` (:mod:`gangrad.stats._convergence` states the rule).
"""

from gangrad.stats._convergence import (
    BUDGET_DEPENDENT,
    Convergence,
    budget_outcome,
    convergence,
    convergence_sentence,
)
from gangrad.stats._paired import (
    Comparison,
    compare,
    compare_paired,
    compare_to_best,
    fmt_ci,
    holm,
    mean_ci,
    paired_difference,
)
from gangrad.stats._runs import TaskDecision, task_decisions, undetermined_tasks

__all__ = [
    "BUDGET_DEPENDENT",
    "Comparison",
    "Convergence",
    "TaskDecision",
    "budget_outcome",
    "compare",
    "compare_paired",
    "compare_to_best",
    "convergence",
    "convergence_sentence",
    "fmt_ci",
    "holm",
    "mean_ci",
    "paired_difference",
    "task_decisions",
    "undetermined_tasks",
]
