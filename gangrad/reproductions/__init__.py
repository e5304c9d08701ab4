"""Published tables, reproduced side by side: each reproduction runs a published protocol
(quick: scaled for 2 CPU cores; full: as published, one GPU; some offer further budgets)
and sets every published number beside gangrad's measurement, its 95% interval and a
verdict: agrees (equivalent within a margin declared in the module, two one-sided tests),
differs, inconclusive, or scaled (a cut-down protocol, compared only as a trend). The
contract every reproduction follows, the verdict rule included, is stated once, in
:mod:`gangrad.reproductions._base`; this module registers them.

::

    from gangrad import reproductions
    rep = reproductions.reproduce("bernoulli-toy")     # quick; full=True for the GPU size
    rep = reproductions.reproduce("pacgan-table1", budget="cpu")  # a named budget
    print(rep.summary)
    reproductions.save(rep)                            # reports/reproductions/NAME.*

Outside packages add reproductions through the entry-point group ``gangrad.reproductions``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from gangrad._provenance import provenance, result_threads
from gangrad._registry import Registry
from gangrad.reproductions._base import (
    SAVED_FIELDS,
    AbstractReproduction,
    Margin,
    Reproduction,
    Row,
    settle,
    verdict_counts,
)
from gangrad.reproductions.bernoulli_toy import BernoulliToy
from gangrad.reproductions.mc_gradients_gaussian import MCGradientsGaussian
from gangrad.reproductions.pacgan_table1 import PacGANTable1
from gangrad.reproductions.seqgan_oracle import SeqGANOracle

__all__ = ["REGISTRY", "AbstractReproduction", "Margin", "Reproduction", "Row", "available",
           "create", "record", "reproduce", "rows_markdown", "save", "settle",
           "verdict_counts"]

_BUILTINS: dict[str, type[AbstractReproduction]] = {
    BernoulliToy.name: BernoulliToy,
    MCGradientsGaussian.name: MCGradientsGaussian,
    PacGANTable1.name: PacGANTable1,
    SeqGANOracle.name: SeqGANOracle,
}

REGISTRY: Registry[AbstractReproduction] = Registry("reproduction", _BUILTINS,
                                                    "gangrad.reproductions")


def available() -> list[str]:
    """Reproduction names, built-ins first in their order, then plug-ins sorted."""
    return [*_BUILTINS, *sorted(set(REGISTRY.available()) - set(_BUILTINS))]


def create(name: str) -> AbstractReproduction:
    """The reproduction registered under ``name``."""
    return REGISTRY.create(name)


def reproduce(name: str, full: bool = False, seed: int = 0,
              progress: Callable[[str], None] | None = None,
              budget: str | None = None) -> Reproduction:
    """Run reproduction ``name`` (quick; ``full``: the published protocol; or a named
    ``budget`` of the reproduction's ``protocols()``)."""
    return create(name).reproduce(full=full, seed=seed, progress=progress, budget=budget)


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"


VERDICT_CELLS = {"agrees": "agrees", "differs": "**differs**", "inconclusive": "inconclusive",
                 "scaled": "scaled (trend)", None: "comparison"}


def rows_markdown(rows: list[Row]) -> str:
    """The rows as a Markdown table: reference (its kind, ± its error), measured [95%
    interval], margin and verdict."""
    lines = ["| quantity | setting | reference | kind | measured | 95% interval | margin "
             "| verdict |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        published = _number(r.published)
        if r.published is not None and r.published_error is not None:
            published += f" ± {_number(r.published_error)}"
        margin = "—" if r.margin is None else f"±{_number(r.margin)}"
        lines.append(f"| {r.quantity} | {r.setting} | {published} | {r.kind} "
                     f"| {_number(r.measured)} | [{_number(r.lo)}, {_number(r.hi)}] "
                     f"| {margin} | {VERDICT_CELLS[r.verdict]} |")
    return "\n".join(lines)


VERDICT_NOTE = ("A row agrees when it is equivalent to its reference within the margin "
                "declared in the reproduction's module (two one-sided tests, the "
                "reference's own standard error included), differs when the 95% interval "
                "of the difference lies outside the margin, and is inconclusive otherwise; "
                "both families of tests are Holm-adjusted over the table's rows. A scaled "
                "row comes from a cut-down protocol and is compared only as a trend. Kind: "
                "published, a number printed in the source; derived, a closed form derived "
                "in the module (a self-consistency check); comparison, no reference.")


def record(rep: Reproduction) -> dict:
    """The reproduction as the JSON ``gangrad reproduce`` writes (``NAME.json``): ``name``,
    ``title``, ``source``, ``error_kind``, ``summary``, ``settings`` (the protocol, its
    ``budget``, ``seed`` and wall time), ``counts`` (rows per verdict), ``rows`` (the
    fields of :data:`~gangrad.reproductions._base.SAVED_FIELDS`), ``commit`` and the
    ``provenance`` (commit, torch, threads, CPU)."""
    prov = provenance(result_threads())
    return json.loads(json.dumps(
        {"name": rep.name, "title": rep.title, "source": rep.source,
         "error_kind": rep.error_kind, "summary": rep.summary, "settings": rep.settings,
         "commit": prov["commit"], "counts": verdict_counts(rep.rows),
         "rows": [{k: v for k, v in asdict(r).items() if k in SAVED_FIELDS}
                  for r in rep.rows], "provenance": prov}, default=float))


def save(rep: Reproduction, out_dir: str | Path = "reports/reproductions") -> dict[str, Path]:
    """Write ``NAME.json``, ``NAME.md``, ``NAME.png`` and the raw ``NAME.csv`` under
    ``out_dir``; return their paths."""
    from gangrad.plotting import png_bytes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"{rep.name}.{k}" for k in ("json", "md", "png", "csv")}
    paths["png"].write_bytes(png_bytes(rep.figure))
    rep.data.to_csv(paths["csv"], index=False)
    rec = record(rep)
    commit = rec["commit"]
    paths["json"].write_text(json.dumps(rec, indent=2) + "\n")
    notes = sorted({r.note for r in rep.rows if r.note})
    scaled = ("\n\n**Scaled in this mode.**\n\n" + "\n".join(f"- {n}" for n in notes)
              if notes else "")
    budget = rep.settings.get("budget", "full" if rep.settings.get("full") else "quick")
    mode = {"full": "full (the published protocol)", "quick": "quick (scaled)"}.get(
        budget, f"budget {budget}")
    paths["md"].write_text(
        f"# {rep.title}\n\n*Source:* {rep.source}\n\n*Errors in the source:* {rep.error_kind}"
        f"\n\n**Summary.** {rep.summary}\n\n*Mode:* {mode}, seed {rep.settings.get('seed')}, "
        f"wall time {rep.settings.get('wall_seconds')} s\n\n*Verdicts:* "
        f"{verdict_counts(rep.rows)}. {VERDICT_NOTE}\n\n{rows_markdown(rep.rows)}"
        f"{scaled}\n\n![{rep.name}]({rep.name}.png)\n\n{rep.caption}\n\n"
        f"*Computed by gangrad at commit {(commit or 'unknown')[:10]}.*\n")
    return paths
