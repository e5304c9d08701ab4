"""Named empirical questions: each runs its experiment, analyses it, and computes a verdict
from the data (never a fixed sentence), with its figure. The contract every question
follows is stated once, in :mod:`gangrad.questions._base`; this module registers them.

::

    from gangrad import questions
    answer = questions.ask("smoothing-limit")          # quick; full=True for the GPU size
    print(answer.verdict)
    questions.save(answer)                             # reports/questions/NAME.*

Outside packages add questions through the entry-point group ``gangrad.questions``.
"""

from __future__ import annotations

import json
from pathlib import Path

from gangrad._provenance import provenance, result_threads
from gangrad._registry import Registry
from gangrad.questions._base import AbstractQuestion, Answer, Verdict
from gangrad.questions.differentiable_d import DifferentiableD
from gangrad.questions.discrete_outputs import DiscreteOutputs
from gangrad.questions.frozen_d import FrozenD
from gangrad.questions.gan_discrete import GANDiscrete
from gangrad.questions.learned_variance import LearnedVariance
from gangrad.questions.linear_gan import LinearGAN
from gangrad.questions.saturating_loss import SaturatingLoss
from gangrad.questions.separate_batches import SeparateBatches
from gangrad.questions.smoothing_limit import SmoothingLimit
from gangrad.questions.update_schedule import UpdateSchedule
from gangrad.questions.z_prior import ZPrior

__all__ = ["REGISTRY", "AbstractQuestion", "Answer", "Verdict", "ask", "available", "create",
           "markdown", "record", "save"]

_BUILTINS: dict[str, type[AbstractQuestion]] = {
    cls.name: cls for cls in (SmoothingLimit, LearnedVariance, DifferentiableD,
                              DiscreteOutputs, SeparateBatches, SaturatingLoss, LinearGAN,
                              ZPrior, UpdateSchedule, FrozenD, GANDiscrete)
}

REGISTRY: Registry[AbstractQuestion] = Registry("question", _BUILTINS, "gangrad.questions")


def available() -> list[str]:
    """Question names, built-ins first in their order, then plug-ins sorted."""
    return [*_BUILTINS, *sorted(set(REGISTRY.available()) - set(_BUILTINS))]


def create(name: str) -> AbstractQuestion:
    """The question registered under ``name``."""
    return REGISTRY.create(name)


def ask(name: str, full: bool = False, seed: int = 0) -> Answer:
    """Run question ``name``'s experiment (quick, or ``full``) and return its answer."""
    return create(name).answer(full=full, seed=seed)


def record(answer: Answer) -> dict:
    """The answer as the JSON ``gangrad ask`` writes (``NAME.json``): ``name``,
    ``question``, ``origin``, ``answer`` (one plain sentence), ``verdict`` (the numbers
    behind it), ``outcome``, ``numbers``, ``convergence``, ``changes``, ``caption``,
    ``settings``, ``runtime_s`` and the ``provenance`` (commit, torch, threads, CPU)."""
    return json.loads(json.dumps(
        {"name": answer.name, "question": answer.question, "origin": answer.origin,
         "answer": answer.answer, "verdict": answer.verdict, "outcome": answer.outcome,
         "numbers": answer.numbers, "convergence": answer.convergence,
         "changes": answer.changes, "caption": answer.caption, "settings": answer.settings,
         "runtime_s": round(answer.runtime_s, 1),
         "provenance": provenance(result_threads())}, default=float))


def markdown(rec: dict) -> str:
    """An answer's page: the question, the one-sentence answer, the numbers, the
    convergence check, the figure, and what would change the answer."""
    lines = [f"# {rec['name']}", "", f"**Question.** {rec['question']}", "",
             f"*From:* {rec['origin']}", "",
             f"**Answer.** {rec['answer']}", "", f"*Outcome:* {rec['outcome']}.", "",
             "## The numbers", "", rec["verdict"], ""]
    conv = rec.get("convergence") or {}
    if conv:
        lines += ["## Convergence", "", conv.get("rule", ""), ""]
        arms = conv.get("arms", [])
        if arms:
            lines += ["| arm | metric | step T/2 → T | mean at T/2 | mean at T | change "
                      "[95% CI] | margin | seeds | status |", "|---" * 9 + "|"]
            lines += [f"| {a['arm']} | {a['metric']} | {a['half_step']} → {a['end_step']} | "
                      f"{a['half']:.4g} | {a['end']:.4g} | {a['change']:+.3g} "
                      f"[{a['lo']:+.3g}, {a['hi']:+.3g}] | ±{a['margin']:g} | {a['seeds']} | "
                      f"{a['status']} |" for a in arms]
            lines += [""]
    lines += [f"![{rec['name']}]({rec['name']}.png)", "", rec["caption"], ""]
    if rec.get("changes"):
        lines += ["## What would change the answer", "", rec["changes"], ""]
    prov = rec.get("provenance", {})
    lines += [f"*Computed by gangrad at commit {(prov.get('commit') or 'unknown')[:10]} "
              f"({prov.get('torch')}, {prov.get('threads')} threads, "
              f"{prov.get('cpu_capability')}) in {rec['runtime_s']} s.*", ""]
    return "\n".join(lines)


def save(answer: Answer, out_dir: str | Path = "reports/questions") -> dict[str, Path]:
    """Write ``NAME.png``, ``NAME.csv``, ``NAME.json`` and ``NAME.md`` under ``out_dir``."""
    from gangrad.plotting import png_bytes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"{answer.name}.{k}" for k in ("png", "csv", "json", "md")}
    paths["png"].write_bytes(png_bytes(answer.figure))
    answer.table.to_csv(paths["csv"], index=False)
    rec = record(answer)
    paths["json"].write_text(json.dumps(rec, indent=2) + "\n")
    paths["md"].write_text(markdown(rec))
    return paths
