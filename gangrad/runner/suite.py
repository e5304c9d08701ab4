"""Suites: a TOML file declaring a grid of cells.

A cell is one training run: (task + its hyper-parameters, estimator + its
hyper-parameters, seed, training settings, gradient-statistics settings). A suite names
the grid; :func:`load_suite` validates the whole file before anything runs and reports
every problem at once, with the line it was found on where the text allows::

    name = "mine"                      # default: the file's stem
    description = "smoothing vs score function on the 1-D Gaussian"
    seeds = [0, 1, 2]

    [train]                            # gangrad.train.TrainConfig fields, for every task
    steps = 500
    eval_every = 100

    [grad_stats]                       # measured on each cell's own run
    at_steps = [0, "end"]              # training steps; "end" = the last one
    replicates = 200
    batch_size = 64

    [[tasks]]
    key = "gaussian1d"
    params = {}                        # task hyper-parameters
    train = { steps = 300 }            # per-task overrides of [train]
    estimators = [
        "pathwise",
        { key = "smoothing", sigma = [0.1, 0.5] },    # a list is a grid axis
        { key = "score_function", baseline = "mean" },
    ]

The cell identity (:attr:`Cell.cell_id`) is a stable hash of its full configuration, so
a re-run of the same suite recognises the cells it has already finished.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from gangrad import estimators, tasks
from gangrad.train import TrainConfig

__all__ = ["BUILTIN_SUITES", "Cell", "Suite", "SuiteError", "load_suite"]

BUILTIN_SUITES = ("quick", "full")
TOP_KEYS = {"name", "description", "seeds", "train", "grad_stats", "tasks"}
TASK_KEYS = {"key", "params", "train", "estimators", "grad_stats"}
TRAIN_KEYS = set(TrainConfig.__dataclass_fields__) - {"seed", "schedules", "device"}
GRAD_KEYS = {"at_steps", "replicates", "batch_size", "bootstrap", "timing", "timing_repeats",
             "reference_replicates", "fresh_z", "loss"}
GRAD_DEFAULTS = {"at_steps": [0, "end"], "replicates": 200, "batch_size": 64,
                 "bootstrap": 100, "timing": True, "timing_repeats": 10,
                 "reference_replicates": 1000, "fresh_z": False}


class SuiteError(ValueError):
    """Every problem found in a suite file, one per line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n"
                         + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class Cell:
    task: str
    task_params: dict[str, Any]
    estimator: str
    estimator_params: dict[str, Any]
    seed: int
    train: dict[str, Any]
    grad_stats: dict[str, Any]

    def config(self) -> dict[str, Any]:
        return {"task": self.task, "task_params": self.task_params,
                "estimator": self.estimator, "estimator_params": self.estimator_params,
                "seed": self.seed, "train": self.train, "grad_stats": self.grad_stats}

    @property
    def cell_id(self) -> str:
        canonical = json.dumps(self.config(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        hyper = ", ".join(f"{k}={v}" for k, v in self.estimator_params.items())
        return f"{self.task}/{self.estimator}" + (f"({hyper})" if hyper else "") + \
            f"/seed{self.seed}"


@dataclass
class Suite:
    name: str
    description: str
    source: str
    text: str
    cells: list[Cell] = field(default_factory=list)


def _line(text: str, needle: str, after: int = 0) -> int | None:
    """1-based line of the first occurrence of ``needle`` at or after line ``after``."""
    for number, line in enumerate(text.splitlines()[after:], start=after + 1):
        if needle in line:
            return number
    return None


def _where(source: str, text: str, needle: str, after: int = 0) -> str:
    line = _line(text, needle, after)
    return f"{source}:{line}" if line else source


def _grid(spec: dict[str, Any]) -> list[dict[str, Any]]:
    axes = {k: (v if isinstance(v, list) else [v]) for k, v in spec.items()}
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def load_suite(name_or_path: str | Path) -> Suite:
    """A built-in suite by name (``quick``, ``full``) or a TOML file; validated."""
    name = str(name_or_path)
    if name in BUILTIN_SUITES:
        text = resources.files("gangrad.suites").joinpath(f"{name}.toml").read_text()
        source = f"<built-in suite {name}>"
        stem = name
    else:
        path = Path(name)
        if not path.exists():
            raise SuiteError(name, [f"no such file, and not a built-in suite "
                                    f"({', '.join(BUILTIN_SUITES)})"])
        text, source, stem = path.read_text(), str(path), path.stem
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(source, [f"not valid TOML: {exc}"]) from None
    return _validate(data, text, source, stem)


def _validate(data: dict[str, Any], text: str, source: str, stem: str) -> Suite:
    problems: list[str] = []

    def bad(msg: str, needle: str | None = None, after: int = 0) -> None:
        where = _where(source, text, needle, after) if needle else source
        problems.append(f"{where}: {msg}")

    for key in sorted(set(data) - TOP_KEYS):
        bad(f"unknown key {key!r} (allowed: {', '.join(sorted(TOP_KEYS))})", key)
    seeds = data.get("seeds", [0])
    if not (isinstance(seeds, list) and seeds and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        bad(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}", "seeds")
        seeds = []
    elif len(set(seeds)) != len(seeds):
        bad(f"seeds repeat: {seeds}", "seeds")
        seeds = sorted(set(seeds))

    def check_section(section: Any, where: str, allowed: set[str], kind: str,
                      after: int = 0) -> dict[str, Any]:
        if not isinstance(section, dict):
            bad(f"{where} must be a table", where, after)
            return {}
        for key in sorted(set(section) - allowed):
            bad(f"unknown {kind} setting {key!r} in {where} (allowed: "
                f"{', '.join(sorted(allowed))})", key, after)
        return {k: v for k, v in section.items() if k in allowed}

    def check_train(section: Any, where: str, after: int = 0) -> dict[str, Any]:
        return check_section(section, where, TRAIN_KEYS, "training", after)

    def check_grad(section: Any, where: str, after: int = 0) -> dict[str, Any]:
        return check_section(section, where, GRAD_KEYS, "gradient-statistics", after)

    train_all = check_train(data.get("train", {}), "[train]")
    grad_all = check_grad(data.get("grad_stats", {}), "[grad_stats]")
    task_list = data.get("tasks", [])
    if not isinstance(task_list, list) or not task_list:
        bad("a suite needs at least one [[tasks]] entry", "tasks")
        task_list = []

    cells: list[Cell] = []
    task_keys = tasks.available()
    est_keys = estimators.available()
    cursor = 0
    for entry in task_list:
        if not isinstance(entry, dict):
            bad(f"[[tasks]] entries must be tables, got {entry!r}")
            continue
        key = entry.get("key")
        after = (_line(text, f'"{key}"', cursor) or cursor + 1) - 1 if key else cursor
        cursor = after + 1
        for extra in sorted(set(entry) - TASK_KEYS):
            bad(f"unknown key {extra!r} in task {key!r} (allowed: {', '.join(sorted(TASK_KEYS))})",
                extra, after)
        if key not in task_keys:
            bad(f"unknown task {key!r}; available: {', '.join(task_keys)}", "key", after)
            continue
        params = entry.get("params", {})
        try:
            task = tasks.create(key, **params)
        except (TypeError, ValueError) as exc:
            bad(f"task {key!r}: {exc}", "params", after)
            continue
        train = {**train_all, **check_train(entry.get("train", {}), f"train of {key}", after)}
        grad = {**GRAD_DEFAULTS, **grad_all,
                **check_grad(entry.get("grad_stats", {}), f"grad_stats of {key}", after)}
        try:
            resolved = TrainConfig(**train, device="cpu").resolved(task)
        except (TypeError, ValueError) as exc:
            bad(f"training settings for {key!r}: {exc}", key, after)
            continue
        steps = resolved.steps
        at = grad.get("at_steps", [])
        if not isinstance(at, list) or not all(
                (isinstance(s, int) and 0 <= s <= steps) or s == "end" for s in at):
            bad(f"grad_stats.at_steps for {key!r} must list steps in [0, {steps}] or \"end\", "
                f"got {at!r}", "at_steps")
            continue
        grad["at_steps"] = sorted({steps if s == "end" else s for s in at})
        for name in ("replicates", "batch_size", "bootstrap", "timing_repeats",
                     "reference_replicates"):
            value = grad.get(name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 2):
                bad(f"grad_stats.{name} must be an integer >= 2, got {value!r}", name)
        specs = entry.get("estimators", [])
        if not isinstance(specs, list) or not specs:
            bad(f"task {key!r} lists no estimators", "estimators", after)
            continue
        for spec in specs:
            spec_d = {"key": spec} if isinstance(spec, str) else spec
            if not isinstance(spec_d, dict) or "key" not in spec_d:
                bad(f"estimator entries are a key or a table with 'key', got {spec!r}",
                    str(spec), after)
                continue
            est_key = spec_d["key"]
            if est_key not in est_keys:
                bad(f"unknown estimator {est_key!r} for task {key!r}; available: "
                    f"{', '.join(est_keys)}", f'"{est_key}"', after)
                continue
            for hyper in _grid({k: v for k, v in spec_d.items() if k != "key"}):
                try:
                    est = estimators.create(est_key, **hyper)
                except (TypeError, ValueError) as exc:
                    bad(str(exc), f'"{est_key}"', after)
                    continue
                if not est.supports(task.space):
                    bad(f"estimator {est_key!r} does not support task {key!r} ({task.space})",
                        f'"{est_key}"', after)
                    continue
                for seed in seeds:
                    cells.append(Cell(key, dict(params), est_key, hyper, seed, dict(train),
                                      dict(grad)))
    name = data.get("name", stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        bad(f"name must be letters, digits, '.', '_' or '-', got {name!r}", "name")
    ids = [c.cell_id for c in cells]
    if len(set(ids)) != len(ids):
        bad("the suite declares the same cell more than once")
    if problems:
        raise SuiteError(source, problems)
    return Suite(name=name, description=str(data.get("description", "")), source=source,
                 text=text, cells=cells)
