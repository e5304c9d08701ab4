"""Published tables, reproduced side by side: each reproduction runs a published protocol
(quick: scaled for 2 CPU cores; full: as published, one GPU) and sets every published number
beside gangrad's measurement, its 95% interval and whether they agree. The contract every
reproduction follows is stated once, in :mod:`gangrad.reproductions._base`; this module
registers them.

::

    from gangrad import reproductions
    rep = reproductions.reproduce("bernoulli-toy")     # quick; full=True for the GPU size
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

from gangrad._provenance import git_commit
from gangrad._registry import Registry
from gangrad.reproductions._base import AbstractReproduction, Reproduction, Row, agrees
from gangrad.reproductions.bernoulli_toy import BernoulliToy
from gangrad.reproductions.mc_gradients_gaussian import MCGradientsGaussian
from gangrad.reproductions.pacgan_table1 import PacGANTable1
from gangrad.reproductions.seqgan_oracle import SeqGANOracle

__all__ = ["REGISTRY", "AbstractReproduction", "Reproduction", "Row", "agrees", "available",
           "create", "reproduce", "rows_markdown", "save"]

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
              progress: Callable[[str], None] | None = None) -> Reproduction:
    """Run reproduction ``name`` (quick, or ``full``: the published protocol)."""
    return create(name).reproduce(full=full, seed=seed, progress=progress)


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"


def rows_markdown(rows: list[Row]) -> str:
    """The rows as a Markdown table (published ± error, measured [lo, hi], agrees)."""
    lines = ["| quantity | setting | published | measured | 95% interval | agrees |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        published = _number(r.published)
        if r.published is not None and r.published_error is not None:
            published += f" ± {_number(r.published_error)}"
        verdict = {True: "yes", False: "**no**", None: "comparison"}[r.agrees]
        lines.append(f"| {r.quantity} | {r.setting} | {published} | {_number(r.measured)} "
                     f"| [{_number(r.lo)}, {_number(r.hi)}] | {verdict} |")
    return "\n".join(lines)


def _record(rep: Reproduction, commit: str | None) -> dict:
    return {"name": rep.name, "title": rep.title, "source": rep.source,
            "error_kind": rep.error_kind, "summary": rep.summary, "settings": rep.settings,
            "commit": commit, "rows": [asdict(r) for r in rep.rows]}


def save(rep: Reproduction, out_dir: str | Path = "reports/reproductions") -> dict[str, Path]:
    """Write ``NAME.json``, ``NAME.md``, ``NAME.png`` and the raw ``NAME.csv`` under
    ``out_dir``; return their paths."""
    from gangrad.plotting import png_bytes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"{rep.name}.{k}" for k in ("json", "md", "png", "csv")}
    paths["png"].write_bytes(png_bytes(rep.figure))
    rep.data.to_csv(paths["csv"], index=False)
    commit = git_commit()
    paths["json"].write_text(json.dumps(_record(rep, commit), indent=2, default=float) + "\n")
    notes = sorted({r.note for r in rep.rows if r.note})
    scaled = ("\n\n**Scaled in this mode.**\n\n" + "\n".join(f"- {n}" for n in notes)
              if notes else "")
    mode = "full (the published protocol)" if rep.settings.get("full") else "quick (scaled)"
    paths["md"].write_text(
        f"# {rep.title}\n\n*Source:* {rep.source}\n\n*Errors in the source:* {rep.error_kind}"
        f"\n\n**Summary.** {rep.summary}\n\n*Mode:* {mode}, seed {rep.settings.get('seed')}, "
        f"wall time {rep.settings.get('wall_seconds')} s\n\n{rows_markdown(rep.rows)}"
        f"{scaled}\n\n![{rep.name}]({rep.name}.png)\n\n{rep.caption}\n\n"
        f"*Computed by gangrad at commit {(commit or 'unknown')[:10]}.*\n")
    return paths
