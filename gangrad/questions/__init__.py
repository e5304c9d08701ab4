"""Named empirical questions: each runs its experiment, analyses it, and computes a verdict
from the data (never a fixed sentence), with its figure.

::

    from gangrad.questions import ask
    answer = ask("smoothing-limit")          # quick; full=True for the GPU-sized version
    print(answer.verdict)
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display needed

from gangrad.questions import (
    differentiable_d,
    discrete_outputs,
    learned_variance,
    saturating_loss,
    separate_batches,
    smoothing_limit,
)
from gangrad.questions._common import Answer

__all__ = ["QUESTIONS", "Answer", "ask", "save"]

QUESTIONS = {m.NAME: m for m in (smoothing_limit, learned_variance, differentiable_d,
                                 discrete_outputs, separate_batches, saturating_loss)}

# the public questions each one answers (cited by their source, not by a local file)
ORIGINS = {
    "smoothing-limit": "Goodfellow et al. (2014), eq. 1: what does the σ→0 identity mean?",
    "learned-variance": "Goodfellow et al. (2014): learning the generator's conditional "
                        "variance with reparameterization (Kingma & Welling; Rezende et al.)",
    "differentiable-d": "Why must G and D be differentiable? (Cross Validated 470753)",
    "discrete-outputs": "Can a differentiable G produce a discrete distribution? "
                        "(Cross Validated 470753; Data Science SE 32082)",
    "separate-batches": "Is a D update on a real batch then a fake batch the same as one "
                        "mixed batch? (a common question on GAN training loops)",
    "saturating-loss": "How is the generator trained: min log(1 − D(G(z))) or "
                       "max log D(G(z))? (Goodfellow et al., 2014, section 3)",
}


def ask(name: str, full: bool = False, seed: int = 0) -> Answer:
    if name not in QUESTIONS:
        raise KeyError(f"unknown question {name!r}; available: {', '.join(QUESTIONS)}")
    return QUESTIONS[name].run(full=full, seed=seed)


def save(answer: Answer, out_dir: str | Path = "reports/questions") -> dict[str, Path]:
    """Write ``NAME.png``, ``NAME.csv``, ``NAME.json`` and ``NAME.md`` under ``out_dir``."""
    from gangrad.report.figures import png_bytes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"{answer.name}.{k}" for k in ("png", "csv", "json", "md")}
    paths["png"].write_bytes(png_bytes(answer.figure))
    answer.table.to_csv(paths["csv"], index=False)
    record = {"name": answer.name, "question": answer.question, "origin": ORIGINS[answer.name],
              "verdict": answer.verdict, "numbers": answer.numbers, "caption": answer.caption,
              "settings": answer.settings}
    paths["json"].write_text(json.dumps(record, indent=2, default=float) + "\n")
    paths["md"].write_text(
        f"# {answer.name}\n\n**Question.** {answer.question}\n\n*From:* {ORIGINS[answer.name]}"
        f"\n\n**Verdict.** {answer.verdict}\n\n![{answer.name}]({answer.name}.png)\n\n"
        f"{answer.caption}\n")
    return paths
