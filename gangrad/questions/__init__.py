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

from gangrad._provenance import git_commit
from gangrad._registry import Registry
from gangrad.questions._base import AbstractQuestion, Answer, Verdict
from gangrad.questions.differentiable_d import DifferentiableD
from gangrad.questions.discrete_outputs import DiscreteOutputs
from gangrad.questions.learned_variance import LearnedVariance
from gangrad.questions.linear_gan import LinearGAN
from gangrad.questions.saturating_loss import SaturatingLoss
from gangrad.questions.separate_batches import SeparateBatches
from gangrad.questions.smoothing_limit import SmoothingLimit
from gangrad.questions.update_schedule import UpdateSchedule
from gangrad.questions.z_prior import ZPrior

__all__ = ["REGISTRY", "AbstractQuestion", "Answer", "Verdict", "ask", "available", "create",
           "save"]

_BUILTINS: dict[str, type[AbstractQuestion]] = {
    cls.name: cls for cls in (SmoothingLimit, LearnedVariance, DifferentiableD,
                              DiscreteOutputs, SeparateBatches, SaturatingLoss, LinearGAN,
                              ZPrior, UpdateSchedule)
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


def save(answer: Answer, out_dir: str | Path = "reports/questions") -> dict[str, Path]:
    """Write ``NAME.png``, ``NAME.csv``, ``NAME.json`` and ``NAME.md`` under ``out_dir``."""
    from gangrad.plotting import png_bytes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"{answer.name}.{k}" for k in ("png", "csv", "json", "md")}
    paths["png"].write_bytes(png_bytes(answer.figure))
    answer.table.to_csv(paths["csv"], index=False)
    commit = git_commit()
    record = {"name": answer.name, "question": answer.question, "origin": answer.origin,
              "verdict": answer.verdict, "outcome": answer.outcome, "numbers": answer.numbers,
              "caption": answer.caption, "settings": answer.settings,
              "runtime_s": round(answer.runtime_s, 1), "commit": commit}
    paths["json"].write_text(json.dumps(record, indent=2, default=float) + "\n")
    paths["md"].write_text(
        f"# {answer.name}\n\n**Question.** {answer.question}\n\n*From:* {answer.origin}"
        f"\n\n**Verdict** ({answer.outcome}). {answer.verdict}"
        f"\n\n![{answer.name}]({answer.name}.png)\n\n"
        f"{answer.caption}\n\n*Computed by gangrad at commit {(commit or 'unknown')[:10]}.*\n")
    return paths
