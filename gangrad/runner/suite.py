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

An estimator entry may anneal hyper-parameters over training with ``anneal``, a table of
schedules (:func:`gangrad.schedules.parse_schedule`: ``{start, end, kind, steps}``, kind
``"geometric"`` and steps the cell's training steps unless given, or the CLI's
``"START:END[:KIND]"``); a list of such tables is a grid axis like any other::

    { key = "gumbel_softmax", anneal = { temperature = { start = 1.0, end = 0.01 } } },
    # RelGAN's "lin" policy, inverse temperature 1 -> 100:
    { key = "gumbel_softmax", anneal = { temperature = "1:0.01:inverse_linear" } },

The annealed value replaces the hyper-parameter at every step, so it may not also be set;
the label shows the schedule (``gumbel_softmax(temperature=1->0.01 geometric)``).

The cell identity (:attr:`Cell.cell_id`) is a stable hash of its full configuration, so
a re-run of the same suite recognises the cells it has already finished.

Sequential allocation (optional): seeds are added to a task, in batches, while a
comparison against its best estimator is undetermined::

    [sequential]
    max_seeds = 32                     # at most this many seeds per task
    batch = 8                          # seeds added per look (default: len(seeds))

Each task is looked at after its first ``len(seeds)`` seeds and after each batch, at most
``K = 1 + ceil((max_seeds − len(seeds)) / batch)`` times, and the comparisons at every look
(and in the report) are decided at level ``α/K`` (Bonferroni over the looks, with α =
0.05): however many looks a task takes, the chance of any false decision stays below α.
The seeds added are the next unused non-negative integers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from gangrad import estimators, tasks
from gangrad.measure import GradStatsConfig
from gangrad.measure.config import SUITE_KEYS
from gangrad.runner.store import MAX_RUN_NAME
from gangrad.schedules import Schedule, parse_schedule
from gangrad.train import TrainConfig

__all__ = ["ALPHA", "BUILTIN_SUITES", "Cell", "Sequential", "Suite", "SuiteError",
           "annealed_label", "load_suite", "parse_suite", "schedules_of"]

BUILTIN_SUITES = ("quick", "frontier", "frontier-seq", "full")
TOP_KEYS = {"name", "description", "seeds", "train", "grad_stats", "tasks", "sequential"}
SEQUENTIAL_KEYS = {"max_seeds", "batch"}
ALPHA = 0.05  # the family-wise error of a suite's decisions, over all its looks
TASK_KEYS = {"key", "params", "train", "estimators", "grad_stats"}
TRAIN_KEYS = set(TrainConfig.__dataclass_fields__) - {"seed", "schedules", "device"}
GRAD_KEYS = {"at_steps", *SUITE_KEYS}
DEFAULT_AT_STEPS = [0, "end"]


class SuiteError(ValueError):
    """Every problem found in a suite file, one per line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n"
                         + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class Cell:
    """One training run of a suite; :meth:`config` is its whole spec (and identity)."""

    task: str
    task_params: dict[str, Any]
    estimator: str
    estimator_params: dict[str, Any]
    seed: int
    train: dict[str, Any]
    grad_stats: dict[str, Any]
    anneal: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> Schedule fields

    def config(self) -> dict[str, Any]:
        """The cell's spec; ``anneal`` only when set, so the identity of a cell without one
        is what it was before annealing could be declared."""
        out = {"task": self.task, "task_params": self.task_params,
               "estimator": self.estimator, "estimator_params": self.estimator_params,
               "seed": self.seed, "train": self.train, "grad_stats": self.grad_stats}
        return {**out, "anneal": self.anneal} if self.anneal else out

    @property
    def cell_id(self) -> str:
        canonical = json.dumps(self.config(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def estimator_label(self) -> str:
        """The estimator's label (:attr:`gangrad.estimators.AbstractEstimator.label`), with
        its schedules (:func:`annealed_label`)."""
        return annealed_label(estimators.create(self.estimator, **self.estimator_params),
                              schedules_of(self.anneal))

    @property
    def label(self) -> str:
        return f"{self.task}/{self.estimator_label}/seed{self.seed}"


@dataclass(frozen=True)
class Sequential:
    """A suite's sequential allocation (see the module doc): ``first`` seeds, then
    ``batch`` more at each look while undetermined, up to ``max_seeds``."""

    first: int
    max_seeds: int
    batch: int

    @property
    def looks(self) -> int:
        return 1 + -(-(self.max_seeds - self.first) // self.batch)

    @property
    def level(self) -> float:
        """The confidence level of each look's decisions: ``1 − α/K``."""
        return 1 - ALPHA / self.looks

    def seeds_at(self, look: int) -> int:
        """How many seeds a task has at ``look`` (0: the suite's own)."""
        return min(self.first + look * self.batch, self.max_seeds)


@dataclass
class Suite:
    name: str
    description: str
    text: str
    cells: list[Cell] = field(default_factory=list)
    sequential: Sequential | None = None

    @property
    def seeds(self) -> list[int]:
        """The seeds of the suite's cells, in the order declared."""
        return list(dict.fromkeys(c.seed for c in self.cells))

    @property
    def level(self) -> float:
        """The confidence level the suite's comparisons are decided at."""
        return self.sequential.level if self.sequential else 1 - ALPHA

    def seed_list(self, n: int) -> list[int]:
        """The first ``n`` seeds: the suite's own, then the smallest unused ones."""
        own = self.seeds
        extra = (s for s in itertools.count() if s not in set(own))
        return own[:n] + list(itertools.islice(extra, max(n - len(own), 0)))

    def task_cells(self, task: str, n: int) -> list[Cell]:
        """The cells of every ``task`` entry on its first ``n`` seeds (:meth:`seed_list`)."""
        first = self.seeds[0]
        return [replace(c, seed=seed) for c in self.cells if c.task == task and c.seed == first
                for seed in self.seed_list(n)]

    def possible_cells(self) -> list[Cell]:
        """Every cell the suite may run: its own and, if sequential, every task's cells on
        up to ``max_seeds`` seeds."""
        if self.sequential is None:
            return list(self.cells)
        tasks_ = dict.fromkeys(c.task for c in self.cells)
        return [c for t in tasks_ for c in self.task_cells(t, self.sequential.max_seeds)]

    def with_sequential(self, max_seeds: int, batch: int | None = None) -> Suite:
        """The suite with sequential allocation up to ``max_seeds`` seeds per task, in
        batches of ``batch`` (default: as many as the suite has), replacing any it
        declares; its text says so."""
        first = len(self.seeds)
        if isinstance(max_seeds, bool) or not isinstance(max_seeds, int) or max_seeds <= first:
            raise ValueError(f"max_seeds must be an integer above the {first} seeds the suite "
                             f"starts with, got {max_seeds!r}")
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int)
                                  or batch < 1):
            raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
        lines = [f"max_seeds = {max_seeds!r}"] + ([f"batch = {batch!r}"] if batch is not None
                                                 else [])
        kept, skipping = [], False
        for line in self.text.splitlines():
            header = re.match(r"^\s*\[", line)
            if header:
                skipping = re.match(r"^\s*\[\s*sequential\s*\]", line) is not None
            if not skipping:
                kept.append(line)
        text = "\n".join(kept).rstrip("\n") + "\n\n[sequential]\n" + "\n".join(lines) + "\n"
        return parse_suite(text, self.name)

    def with_seeds(self, n: int) -> Suite:
        """The suite on ``n`` seeds: its own first, then the smallest unused ones (``n``
        fewer than declared keeps the first ``n``). Its text says so, so a run stored
        from it reports its missing cells against these seeds."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"seeds: the number of seeds must be an integer >= 1, got {n!r}")
        line = f"seeds = {self.seed_list(n)}"
        pattern = re.compile(r"^seeds\s*=\s*\[[^\]]*\]", re.MULTILINE)
        head = re.split(r"^\s*\[", self.text, maxsplit=1, flags=re.MULTILINE)[0]
        if pattern.search(head):
            text = pattern.sub(line, self.text, count=1)
        else:  # no seeds declared (seed 0): the line goes before the first table
            match = re.search(r"^\s*\[", self.text, flags=re.MULTILINE)
            at = match.start() if match else len(self.text)
            text = self.text[:at] + line + "\n" + self.text[at:]
        return parse_suite(text, self.name)


def schedules_of(anneal: Mapping[str, Mapping[str, Any]]) -> dict[str, Schedule]:
    """A cell's ``anneal`` (stored fields) as :class:`~gangrad.schedules.Schedule` objects,
    for :attr:`gangrad.train.TrainConfig.schedules`."""
    return {name: Schedule(**fields) for name, fields in anneal.items()}


def annealed_label(est: estimators.AbstractEstimator, schedules: Mapping[str, Schedule]) -> str:
    """``est.label`` with each annealed hyper-parameter as ``name=start->end kind``."""
    label = est.label
    if not schedules:
        return label
    extra = ", ".join(f"{name}={s.label}" for name, s in sorted(schedules.items()))
    return f"{label[:-1]}, {extra})" if label.endswith(")") else f"{label}({extra})"


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
    """A built-in suite by name (``quick``, ``frontier``, ``frontier-seq``, ``full``) or a
    TOML file; validated."""
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
        if path.is_dir():
            raise SuiteError(name, ["is a folder; give a suite file (.toml)"])
        text, source, stem = path.read_text(), str(path), path.stem
    return parse_suite(text, stem, source)


def parse_suite(text: str, stem: str, source: str | None = None) -> Suite:
    """A suite from its TOML ``text`` (``stem``: its name if the text sets none); validated."""
    source = source or f"<suite {stem}>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(source, [f"not valid TOML: {exc}"]) from None
    return _Validator(data, text, source).suite(stem)


class _Validator:
    """Checks a parsed suite and collects every problem, each with the line it is on."""

    def __init__(self, data: dict[str, Any], text: str, source: str) -> None:
        self.data, self.text, self.source = data, text, source
        self.problems: list[str] = []

    def bad(self, msg: str, needle: str | None = None, after: int = 0) -> None:
        where = _where(self.source, self.text, needle, after) if needle else self.source
        problem = f"{where}: {msg}"
        if problem not in self.problems:  # a shared setting is checked once per task
            self.problems.append(problem)

    def section(self, section: Any, where: str, allowed: set[str], kind: str,
                after: int = 0) -> dict[str, Any]:
        if not isinstance(section, dict):
            self.bad(f"{where} must be a table", where, after)
            return {}
        for key in sorted(set(section) - allowed):
            self.bad(f"unknown {kind} setting {key!r} in {where} (allowed: "
                     f"{', '.join(sorted(allowed))})", key, after)
        return {k: v for k, v in section.items() if k in allowed}

    def seeds(self) -> list[int]:
        seeds = self.data.get("seeds", [0])
        if not (isinstance(seeds, list) and seeds and all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
            self.bad(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}",
                     "seeds")
            return []
        if len(set(seeds)) != len(seeds):
            self.bad(f"seeds repeat: {seeds}", "seeds")
            return sorted(set(seeds))
        return seeds

    def suite(self, stem: str) -> Suite:
        data = self.data
        for key in sorted(set(data) - TOP_KEYS):
            self.bad(f"unknown key {key!r} (allowed: {', '.join(sorted(TOP_KEYS))})", key)
        seeds = self.seeds()
        train_all = self.section(data.get("train", {}), "[train]", TRAIN_KEYS, "training")
        grad_all = self.section(data.get("grad_stats", {}), "[grad_stats]", GRAD_KEYS,
                                "gradient-statistics")
        task_list = data.get("tasks", [])
        if not isinstance(task_list, list) or not task_list:
            self.bad("a suite needs at least one [[tasks]] entry", "tasks")
            task_list = []
        cells: list[Cell] = []
        cursor = 0
        for entry in task_list:
            if not isinstance(entry, dict):
                self.bad(f"[[tasks]] entries must be tables, got {entry!r}")
                continue
            key = entry.get("key")
            after = (_line(self.text, f'"{key}"', cursor) or cursor + 1) - 1 if key else cursor
            cursor = after + 1
            cells += self.task(entry, after, seeds, train_all, grad_all)
        name = data.get("name", stem)
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            self.bad(f"name must be letters, digits, '.', '_' or '-', got {name!r}", "name")
        elif "name" in data and len(name) > MAX_RUN_NAME:
            self.bad(f"name is {len(name)} characters; at most {MAX_RUN_NAME} (a run takes "
                     "the suite's name, and run names become file names)", "name")
        ids = [c.cell_id for c in cells]
        if len(set(ids)) != len(ids):
            self.bad("the suite declares the same cell more than once")
        sequential = self.sequential(len(seeds))
        if self.problems:
            raise SuiteError(self.source, self.problems)
        return Suite(name=name, description=str(data.get("description", "")), text=self.text,
                     cells=cells, sequential=sequential)

    def sequential(self, first: int) -> Sequential | None:
        """The ``[sequential]`` table, checked against the suite's ``first`` seeds."""
        if "sequential" not in self.data:
            return None
        table = self.data["sequential"]
        if not isinstance(table, dict):
            self.bad("[sequential] must be a table", "sequential")
            return None
        for key in sorted(set(table) - SEQUENTIAL_KEYS):
            self.bad(f"unknown key {key!r} in [sequential] (allowed: "
                     f"{', '.join(sorted(SEQUENTIAL_KEYS))})", key)
        top, batch = table.get("max_seeds"), table.get("batch", first)

        def count(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= 1

        if "max_seeds" not in table:
            self.bad("[sequential] needs max_seeds, the most seeds a task may take",
                     "sequential")
        elif not count(top) or top <= first:
            self.bad(f"sequential.max_seeds must be an integer above the {first} seeds the "
                     f"suite starts with, got {top!r}", "max_seeds")
        if not count(batch):
            self.bad(f"sequential.batch must be an integer >= 1, got {batch!r}", "batch")
        if self.problems or not count(top) or not count(batch) or top <= first:
            return None
        return Sequential(first=first, max_seeds=top, batch=batch)

    def task(self, entry: dict[str, Any], after: int, seeds: list[int],
             train_all: dict[str, Any], grad_all: dict[str, Any]) -> list[Cell]:
        """The cells of one ``[[tasks]]`` entry (at line ``after + 1``)."""
        key = entry.get("key")
        for extra in sorted(set(entry) - TASK_KEYS):
            self.bad(f"unknown key {extra!r} in task {key!r} (allowed: "
                     f"{', '.join(sorted(TASK_KEYS))})", extra, after)
        task_keys = tasks.available()
        if key not in task_keys:
            self.bad(f"unknown task {key!r}; available: {', '.join(task_keys)}", "key", after)
            return []
        params = entry.get("params", {})
        try:
            task = tasks.create(key, **params)
        except (TypeError, ValueError) as exc:
            self.bad(f"task {key!r}: {exc}", "params", after)
            return []
        train = {**train_all, **self.section(entry.get("train", {}), f"train of {key}",
                                             TRAIN_KEYS, "training", after)}
        grad = {"at_steps": DEFAULT_AT_STEPS, **grad_all,
                **self.section(entry.get("grad_stats", {}), f"grad_stats of {key}", GRAD_KEYS,
                               "gradient-statistics", after)}
        config = TrainConfig(**train, device="cpu")
        problems = config.problems(task)
        for name, message in problems:  # training's own checks, each where it is set
            self.bad(f"training setting {message}", name, after if name in entry.get(
                "train", {}) else (_line(self.text, "[train]") or 1) - 1)
        steps = None if problems else config.resolved(task).steps
        grad = self.grad_stats(grad, steps, key, after)
        specs = entry.get("estimators", [])
        if not isinstance(specs, list) or not specs:
            self.bad(f"task {key!r} lists no estimators", "estimators", after)
            return []
        grid = self.estimators(specs, task, after, steps)
        if grad is None or steps is None:
            return []
        return [Cell(key, dict(params), est_key, hyper, seed, dict(train), dict(grad), anneal)
                for est_key, hyper, anneal in grid for seed in seeds]

    def grad_stats(self, grad: dict[str, Any], steps: int | None, key: str,
                   after: int) -> dict[str, Any] | None:
        """A cell's gradient-statistics settings, checked by the engine's own rules
        (``at_steps`` against ``steps`` once the training settings are valid)."""
        section = _line(self.text, "grad_stats") or 1
        at = grad["at_steps"]
        top = steps if steps is not None else float("inf")
        ok = isinstance(at, list) and all(
            (isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= top) or s == "end"
            for s in at)
        if not ok:
            self.bad(f"grad_stats.at_steps for {key!r} must list steps in "
                     f"[0, {steps if steps is not None else 'steps'}] or \"end\", got {at!r}",
                     "at_steps", section - 1)
        settings = GradStatsConfig().updated(**{k: v for k, v in grad.items()
                                                  if k != "at_steps"})
        for name, message in settings.problems():
            self.bad(f"grad_stats.{message}", name, section - 1)
        if not ok or settings.problems() or steps is None:
            return None
        return {"at_steps": sorted({steps if s == "end" else s for s in at}),
                **settings.suite_values()}

    def estimators(self, specs: list[Any], task: tasks.AbstractTask, after: int,
                   steps: int | None) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """``(key, hyper-parameters, anneal)`` of every grid point of a task's estimator
        entries (``anneal``: each annealed name's schedule fields, over ``steps``)."""
        est_keys = estimators.available()
        out = []
        for spec in specs:
            spec_d = {"key": spec} if isinstance(spec, str) else spec
            if not isinstance(spec_d, dict) or "key" not in spec_d:
                self.bad(f"estimator entries are a key or a table with 'key', got {spec!r}",
                         str(spec), after)
                continue
            est_key = spec_d["key"]
            if est_key not in est_keys:
                self.bad(f"unknown estimator {est_key!r} for task {task.name!r}; available: "
                         f"{', '.join(est_keys)}", f'"{est_key}"', after)
                continue
            axes = {k: v for k, v in spec_d.items() if k != "key"}
            for axis in [k for k, v in axes.items() if v == []]:
                self.bad(f"estimator {est_key!r}: the grid axis {axis!r} is empty",
                         f'"{est_key}"', after)
            for hyper in _grid(axes):
                table = hyper.pop("anneal", {})
                try:
                    est = estimators.create(est_key, **hyper)
                except (TypeError, ValueError) as exc:
                    self.bad(str(exc), f'"{est_key}"', after)
                    continue
                if not est.supports(task.space):
                    self.bad(f"estimator {est_key!r} does not support task {task.name!r} "
                             f"({task.space})", f'"{est_key}"', after)
                    continue
                anneal = self.anneal(est, table, hyper, steps, after)
                if anneal is not None:
                    out.append((est_key, hyper, anneal))
        return out

    def anneal(self, est: estimators.AbstractEstimator, table: Any, hyper: dict[str, Any],
               steps: int | None, after: int) -> dict[str, dict[str, Any]] | None:
        """An entry's ``anneal`` table checked against ``est``: each name one of its
        hyper-parameters not also set, each schedule valid over ``steps`` and its values at
        both ends accepted by the estimator; None after a problem."""
        where = f'"{est.key}"'
        if not isinstance(table, dict):
            self.bad(f"estimator {est.key!r}: anneal must be a table of schedules "
                     f"(name = {{ start, end, kind }}), got {table!r}", where, after)
            return None
        out, names = {}, est.hyperparameters()
        for name, spec in table.items():
            if name not in names:
                self.bad(f"estimator {est.key!r} cannot anneal {name!r}: its hyper-parameters "
                         f"are {', '.join(names) or 'none'}", where, after)
                continue
            if name in hyper:
                self.bad(f"estimator {est.key!r}: {name!r} is both set and annealed", where,
                         after)
                continue
            if steps is None:  # the training settings are reported already
                continue
            try:
                sched = parse_schedule(spec, steps)
                for value in (sched(0), sched(sched.steps)):
                    est.replace(**{name: value})
            except (TypeError, ValueError) as exc:
                self.bad(f"estimator {est.key!r}: anneal {name}: {exc}", where, after)
                continue
            out[name] = asdict(sched)
        return None if len(out) < len(table) and steps is not None else out
