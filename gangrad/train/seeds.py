"""Many seeds of one configuration trained as one batched model (:func:`train_seeds`).

The S copies of G and of D are stacked (:class:`gangrad.train.stacked.Stack`), the
estimator sees the S batches concatenated, and one Adam steps all of them (Adam is
elementwise). Every seed keeps its own generators, drawn in :func:`gan_step`'s order, so
each seed gets the run :func:`gangrad.train.train` gives it (on the CPU bit for bit; see
``tests/test_train_seeds.py``) in a fraction of the time.

Networks with batch norm batch too: a seed's batch statistics are its own rows', and
running statistics are stacked buffers, each seed's its own (:mod:`gangrad.train.stacked`).
Dropout is refused: its masks come from torch's global generator, which a seed's lone run
would draw differently.

The CPU guarantee, precisely: bit for bit where every layer has a grouped call and each
seed's rows fill whole blocks of the vectorised elementwise kernels (a multiple of 64 rows
per seed covers them) and, for batch norm, torch runs on one thread (as the runner runs a
cell: with more, the reductions over the stacked seeds split differently); otherwise equal
per step to float32 rounding. The vectorised and
the scalar paths of a transcendental function (softplus in the losses, its derivative)
may round the same input 1 ulp apart, and a batch of, e.g., PacGAN's 100 packs leaves a
seed's last rows in the scalar path alone and in the vector path batched. Networks
without a grouped call (``nn.BatchNorm1d`` with running statistics) go through
``torch.func.vmap``, also equal to float32 rounding per step. Rounding differences then
grow as they do between any two runs of a chaotic training, so such runs agree in law,
not in their digits (``tests/test_train_seeds.py``, ``tests/test_pacgan.py``).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd
import torch
from torch import nn

from gangrad.estimators import AbstractEstimator, logit_kwargs
from gangrad.estimators._control_variate import AbstractLearnedControlVariate, SeedStack
from gangrad.losses import generator_loss as cost_through
from gangrad.tasks import AbstractTask
from gangrad.train.config import TrainConfig, prepare
from gangrad.train.loop import Run, finite, train
from gangrad.train.stacked import Stack
from gangrad.train.step import (
    Seeds,
    TrainState,
    fakes,
    gan_step,
    init_nets,
    real_batch,
    sample_latent,
)

__all__ = ["StackedSeeds", "per_seed_estimators", "seed_batching", "train_seeds"]

_RANDOM = (nn.modules.dropout._DropoutNd,)


def seed_batching(task: AbstractTask, estimator: AbstractEstimator) -> str | None:
    """``None`` when :func:`train_seeds` can train the seeds of ``(task, estimator)`` as
    one batched model; otherwise the reason it trains them one after another (networks
    with dropout)."""
    with torch.random.fork_rng(devices=[]):
        nets = init_nets(task, estimator, 0, torch.device("cpu"))
    for net, name in zip(nets, ("generator", "discriminator"), strict=True):
        if any(isinstance(m, _RANDOM) for m in net.modules()):
            return f"the {name} of task {task.name!r} has dropout"
    return None


def per_seed_estimators(estimator: AbstractEstimator) -> bool:
    """Whether each seed needs its own copy of ``estimator`` in a batch: it learns state
    during use (a control variate, an EMA baseline) or couples the rows of a batch (a
    batch-mean baseline), so its rows are computed seed by seed."""
    return estimator.learns or not estimator.rows_independent


class StackedSeeds(Seeds):
    """S seeds' states behind one stacked G and D and one pair of optimisers; tensors
    carry a leading seed dimension ``(S, N, ...)``.

    An estimator whose rows are independent and which keeps no state sees every seed's
    rows in one call; any other keeps a copy per seed (``TrainState.estimator``), so its
    state and its batch are the seed's own, as in the seed's lone run. The copies of a
    learned control variate (REBAR, RELAX) are stacked
    (:class:`~gangrad.estimators._control_variate.SeedStack`) and compute every seed's
    estimate and update in one call through the stacked D, and an estimator whose
    ``stacks_seeds`` holds (the score function's batch leave-one-out baseline) computes
    every seed's batch in one ``seeds_surrogate`` call; other copies are called seed by
    seed, each on its seed's rows through its seed's D.
    """

    def __init__(self, states: list[TrainState], task: AbstractTask, cfg: TrainConfig) -> None:
        self.states, self.task, self.cfg = states, task, cfg
        self.device = torch.device(cfg.device)
        self.G, self.D = Stack([st.G for st in states]), Stack([st.D for st in states])
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(list(self.G.params.values()), lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(list(self.D.params.values()), lr=cfg.lr_d, betas=betas)
        for st in states:
            st.opt_g, st.opt_d = self.opt_g, self.opt_d
        self._d_frozen = False
        self._costs: list = []
        self._kept: list | None = None  # each seed's noise kept by fakes(keep=True)
        self.control = self._stack_controls()
        est = states[0].estimator
        # a batch-coupled baseline that computes every seed's batch in one call
        self.seed_rows = (not self.shared and self.control is None and not est.learns
                          and getattr(est, "stacks_seeds", False))

    def _stack_controls(self) -> SeedStack | None:
        copies = self._copies()
        if not (isinstance(copies[0], AbstractLearnedControlVariate)
                and copies[0].stacks_seeds) or copies[0]._frozen:
            return None
        return SeedStack(copies)

    def _copies(self) -> list:
        return [st.estimator for st in self.states]

    @property
    def shared(self) -> bool:
        return not per_seed_estimators(self.states[0].estimator)

    def sync(self) -> None:
        """Each seed's estimator copy holds its full learned state (before it is read)."""
        if self.control is not None:
            self.control.sync(self._copies())

    def latents(self) -> torch.Tensor:
        return torch.stack([sample_latent(self.task, self.cfg.latent, self.cfg.batch_size,
                                          generator=st.rng, device=self.device)
                            for st in self.states])

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.G(z)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        return self.D(x, frozen=self._d_frozen)

    def real(self, fake: torch.Tensor) -> torch.Tensor:
        return torch.stack([real_batch(self.task, self.cfg, st, fake.shape[1])
                            for st in self.states]).to(self.device)

    def _noise(self, params: torch.Tensor) -> list[torch.Tensor | None]:
        return [st.estimator.noise(params[s], space=self.task.space, generator=st.noise_rng)
                for s, st in enumerate(self.states)]

    def fakes(self, params, keep=False):
        space, noise = self.task.space, self._noise(params)
        if keep:
            self._kept = noise
        # a control variate's and a seed-batched baseline's rows are independent up to
        # the first call of f, where the fakes are read, so their rows go in one call too
        if not self.shared and self.control is None and not self.seed_rows:
            return torch.stack([fakes(st.estimator, params[s], noise[s], space)
                                for s, st in enumerate(self.states)])
        flat = fakes(self.states[0].estimator, params.flatten(0, 1),
                     None if noise[0] is None else torch.cat(noise), space)
        return flat.reshape(len(self.states), -1, *flat.shape[1:])

    def generator_loss(self, params):
        kept, self._kept = self._kept, None
        space, S = self.task.space, len(self.states)
        noise = kept if kept is not None else self._noise(params.detach())
        if self.control is not None:
            # every seed's rows (S, N, ...) through its own frozen D: (S, N)
            self._costs = [cost_through(self.cfg.loss, lambda x: self.D(x, frozen=True))]
            return self.control.surrogate(self._copies(), params, self._costs[0],
                                          torch.stack(noise)).mean(1)
        if self.seed_rows:
            f = cost_through(self.cfg.loss, lambda x: self.D(x, frozen=True))
            return self.states[0].estimator.seeds_surrogate(params, f, torch.stack(noise),
                                                           space).mean(1)
        if not self.shared:
            self._costs = [cost_through(self.cfg.loss, st.D) for st in self.states]
            return torch.stack([st.estimator.surrogate(params[s], f, noise=noise[s],
                                                       space=space,
                                                       **logit_kwargs(st.estimator, st.D)
                                                       ).mean()
                                for s, (st, f) in enumerate(zip(self.states, self._costs,
                                                                strict=True))])

        def through_d(x: torch.Tensor) -> torch.Tensor:
            return self.D(x.reshape(S, x.shape[0] // S, *x.shape[1:]),
                          frozen=True).flatten(0, 1)

        f = cost_through(self.cfg.loss, through_d)
        est = self.states[0].estimator
        values = est.surrogate(
            params.flatten(0, 1), f, noise=None if noise[0] is None else torch.cat(noise),
            space=space, **logit_kwargs(est, through_d))
        return values.reshape(S, -1).mean(1)

    def learn(self, params):
        if self.control is not None:
            noise = torch.stack(self._noise(params))
            self.control.learn(self._copies(), params, self._costs[0], noise)
            return
        for s, st in enumerate(self.states):
            if st.estimator.learns:
                st.estimator.learn(params[s], self._costs[s], space=self.task.space,
                                   generator=st.noise_rng)

    @contextlib.contextmanager
    def frozen_discriminator(self) -> Iterator[None]:
        self._d_frozen = True
        own = ([st.D for st in self.states] if not self.shared and self.control is None
               and not self.seed_rows else [])
        for D in own:  # each seed's own D (views of the stack) carries its f
            D.requires_grad_(False)
        try:
            yield
        finally:
            self._d_frozen = False
            for D in own:
                D.requires_grad_(True)

    def advance(self) -> None:
        for st in self.states:
            st.step += 1


def _check_seeds(seeds: list[int], overrides: Mapping[str, Any]) -> None:
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"train_seeds: seeds must be non-negative integers, got {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"train_seeds: seeds must be distinct, got {seeds}")
    if "seed" in overrides:
        raise ValueError("train_seeds: pass the seeds as seeds=, not seed=")


def _one_by_one(task, estimator, cfg, seeds, progress, marks, on_checkpoint
                ) -> list[pd.DataFrame]:
    """The seeds trained one after another, each from the estimator's state as given."""
    return [train(task, copy.deepcopy(estimator), config=replace(cfg, seed=seed),
                  progress=None if progress is None else
                  (lambda row, seed=seed: progress({"seed": seed, **row})),
                  checkpoint_steps=marks,
                  on_checkpoint=None if on_checkpoint is None else
                  (lambda step, state, seed=seed: on_checkpoint(seed, step, state)))
            for seed in seeds]


def _seed_run(task: AbstractTask, estimator: AbstractEstimator, cfg: TrainConfig,
              progress: Callable[[dict[str, Any]], None] | None) -> Run:
    """One seed's networks, random streams, estimator and record; its optimisers are the
    batch's. A stateful estimator is copied, so each seed starts from it as given."""
    own = copy.deepcopy(estimator) if per_seed_estimators(estimator) else estimator
    state = TrainState.fresh(task, own, cfg.seed, torch.device(cfg.device))
    return Run(task, estimator, cfg, state, progress, tag_seed=True)


def train_seeds(task: AbstractTask | str, estimator: AbstractEstimator | str,
                seeds: Sequence[int], *, estimator_hyper: Mapping[str, Any] | None = None,
                config: TrainConfig | None = None,
                progress: Callable[[dict[str, Any]], None] | None = None,
                checkpoint_steps: Sequence[int] = (),
                on_checkpoint: Callable[[int, int, TrainState], None] | None = None,
                batched: bool | None = None, **overrides: Any) -> list[pd.DataFrame]:
    """:func:`~gangrad.train.train` for each of ``seeds``, trained together as one batched
    model.

    Returns one history per seed, in the order of ``seeds``, each what ``train`` with
    that seed returns (``history.attrs`` included; ``elapsed_s`` is the batch's clock).
    A seed that diverges stops being recorded; the others go on. ``progress`` rows carry
    a ``seed`` key; ``on_checkpoint(seed, step, state)`` gets the seed's live state (its G
    and D hold the seed's current parameters; the optimisers are the batch's).

    ``batched=None`` batches when :func:`seed_batching` allows it and trains the seeds one
    after another otherwise; ``True`` raises ``ValueError`` where it does not allow it;
    ``False`` always trains them one after another.
    """
    seeds = list(seeds)
    _check_seeds(seeds, overrides)
    task, estimator, cfg, marks = prepare(task, estimator, estimator_hyper, config,
                                          overrides, checkpoint_steps, on_checkpoint)
    reason = seed_batching(task, estimator) if batched is not False else "batched=False"
    if reason is not None and batched:
        raise ValueError(f"train_seeds: cannot batch the seeds: {reason}")
    if reason is not None:
        return _one_by_one(task, estimator, cfg, seeds, progress, marks, on_checkpoint)
    return _batched(task, estimator, cfg, seeds, marks, _Once(progress, on_checkpoint))


class _Once:
    """The caller's callbacks, each ``(seed, step)`` delivered once: a batch that is
    replayed without a diverged seed repeats, identically, what was already delivered."""

    def __init__(self, progress, on_checkpoint) -> None:
        self._progress, self._on_checkpoint = progress, on_checkpoint
        self._rows: set[tuple[int, int]] = set()
        self._checkpoints: set[tuple[int, int]] = set()

    def progress(self, row: dict[str, Any]) -> None:
        if self._progress is not None and (row["seed"], row["step"]) not in self._rows:
            self._rows.add((row["seed"], row["step"]))
            self._progress(row)

    def checkpoint(self, seed: int, step: int, state: TrainState) -> None:
        if (seed, step) not in self._checkpoints:
            self._checkpoints.add((seed, step))
            self._on_checkpoint(seed, step, state)


def _batched(task: AbstractTask, estimator: AbstractEstimator, cfg: TrainConfig,
             seeds: list[int], marks: list[int], calls: _Once) -> list[pd.DataFrame]:
    """The seeds as one batched model. A step that raises on a seed's non-finite networks
    (e.g. NaN logits) ends that seed as diverged and replays the others without it."""
    runs = [_seed_run(task, estimator, replace(cfg, seed=seed), calls.progress)
            for seed in seeds]
    batch = StackedSeeds([run.state for run in runs], task, cfg)
    start = time.perf_counter()

    def record(step: int) -> None:
        for run in runs:
            if run.ok:
                run.record(step, start)

    def checkpoint(step: int) -> None:
        batch.sync()
        for run in runs:
            if run.ok:
                calls.checkpoint(run.cfg.seed, step, run.state)

    record(0)
    if 0 in marks:
        checkpoint(0)
    step = 0
    while step < cfg.steps and any(run.ok for run in runs):
        if cfg.schedules:  # each seed's learned state carries over
            values = {k: s(step) for k, s in cfg.schedules.items()}
            current = estimator.replace(**values)
            for run in runs:
                run.state.estimator = (run.state.estimator.replace(**values)
                                       if per_seed_estimators(estimator) else current)
        try:
            losses = gan_step(batch)
        except Exception as exc:
            broken = [run for run in runs if not finite(run.state.G, run.state.D)]
            if not broken:
                raise
            for run in broken:
                if run.ok:
                    run.fail_step(step + 1, exc)
            healthy = [run.cfg.seed for run in runs if run.ok]
            replayed = iter(_batched(task, estimator, cfg, healthy, marks, calls)
                            if healthy else [])
            return [next(replayed) if run.ok else run.history() for run in runs]
        step += 1
        for i, run in enumerate(runs):  # a diverged seed trains on (on NaN) but is not read
            if run.ok:
                run.pending.append({name: value[i] for name, value in losses.items()})
        if step % cfg.eval_every == 0 or step == cfg.steps:
            record(step)
        if step in marks:
            for run in runs:  # the losses up to a checkpoint are checked before it
                if run.ok and run.last_step != step:
                    run.record(step, start)
            checkpoint(step)
    batch.sync()
    return [run.history() for run in runs]
