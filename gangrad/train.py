"""Training a GAN whose generator step uses a gradient estimator.

Each iteration makes ``d_steps`` discriminator updates, then one generator update whose
loss is ``estimator.surrogate(G(z), f).mean()`` with ``f(x)`` the generator loss through
the current D:

- non-saturating (default): ``f(x) = softplus(−D(x)) = −log σ(D(x))``;
- minimax: ``f(x) = −softplus(D(x)) = log(1 − σ(D(x)))`` (Goodfellow et al., 2014).

The fakes D trains on are exactly what ``f`` sees: they are recorded from the estimator's
own path (e.g. the relaxed vectors for Gumbel-softmax, ``B·S`` draws for a score function
with ``S`` samples per row). D minimises the usual binary cross-entropy. Optimiser: Adam
with β = (0.5, 0.999) by default.

The state of a run is explicit (:class:`TrainState`) and one iteration is the function
:func:`train_step`, so that runs can be resumed, inspected or vectorized over seeds.
For a given seed a run on the CPU is deterministic.

Many seeds at once. :func:`train_seeds` trains S seeds of one configuration as one batched
model: the S copies of G and of D are stacked (``torch.func.stack_module_state``) and
called through ``torch.func.vmap``, the estimator sees the S batches concatenated, and one
Adam steps all of them (Adam is elementwise). Every seed keeps its own generators, drawn
in the same order as :func:`train`, so each seed gets the run :func:`train` gives it (on
the CPU bit for bit; see ``tests/test_train_seeds.py``) in a fraction of the time.

Python::

    from gangrad.train import train, train_seeds
    history = train("ring8", "pathwise", steps=2000, seed=0)   # pandas DataFrame
    histories = train_seeds("ring8", "pathwise", seeds=range(16), steps=2000)  # one per seed
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from gangrad import estimators as estimators_mod
from gangrad import tasks as tasks_mod
from gangrad._stacked import Stack
from gangrad._validate import choice, integer, positive
from gangrad.estimators import AbstractEstimator
from gangrad.schedules import Schedule
from gangrad.spaces import Discrete
from gangrad.tasks import AbstractTask

__all__ = ["Diverged", "TrainConfig", "TrainState", "checkpoints", "generator_loss",
           "init_state", "param_kind", "seed_batching", "train", "train_seeds", "train_step"]

LOSSES = ("nonsaturating", "minimax")
SAMPLES_KEPT = 256  # generated samples of the last evaluation kept in history.attrs


@dataclass
class TrainConfig:
    """Training hyper-parameters; ``None`` takes the task's ``training_defaults``."""

    steps: int | None = None
    batch_size: int | None = None
    lr_g: float | None = None
    lr_d: float | None = None
    d_steps: int | None = None
    beta1: float = 0.5
    beta2: float = 0.999
    loss: str = "nonsaturating"
    eval_every: int | None = None
    eval_samples: int = 2500
    seed: int = 0
    device: str | None = None
    schedules: dict[str, Schedule] = field(default_factory=dict)

    def resolved(self, task: AbstractTask) -> TrainConfig:
        """A copy with every ``None`` filled from the task's defaults, validated."""
        defaults = {"steps": 2000, "batch_size": 128, "lr_g": 2e-4, "lr_d": 2e-4, "d_steps": 1,
                    **task.training_defaults}
        values = asdict(self)
        values["schedules"] = dict(self.schedules)
        for key in ("steps", "batch_size", "lr_g", "lr_d", "d_steps"):
            if values[key] is None:
                values[key] = defaults[key]
        if values["eval_every"] is None:
            values["eval_every"] = max(1, values["steps"] // 20)
        if values["device"] is None:
            values["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        cfg = TrainConfig(**values)
        integer("train", "steps", cfg.steps, minimum=1)
        integer("train", "batch_size", cfg.batch_size, minimum=2)
        integer("train", "d_steps", cfg.d_steps, minimum=0)
        integer("train", "eval_every", cfg.eval_every, minimum=1)
        integer("train", "eval_samples", cfg.eval_samples, minimum=2)
        integer("train", "seed", cfg.seed, minimum=0)
        positive("train", "lr_g", cfg.lr_g)
        positive("train", "lr_d", cfg.lr_d)
        for name in ("beta1", "beta2"):
            value = getattr(cfg, name)
            if not 0 <= value < 1:
                raise ValueError(f"train: {name} must be in [0, 1), got {value}")
        choice("train", "loss", cfg.loss, LOSSES)
        if cfg.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"train: device {cfg.device!r} requested but CUDA is not available")
        return cfg


@dataclass
class TrainState:
    """Everything a run carries from one iteration to the next."""

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    estimator: AbstractEstimator
    rng: torch.Generator  # latent and estimator noise, on the run's device
    data_rng: torch.Generator  # real samples (tasks draw them on the CPU)
    step: int = 0


class Diverged(RuntimeError):
    """A loss or a parameter became NaN/Inf."""

    def __init__(self, step: int, what: str) -> None:
        super().__init__(f"diverged at step {step}: {what} is not finite")
        self.step = step


def generator_loss(kind: str, D: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-sample cost ``f`` of the generator step, through discriminator ``D``."""
    if kind == "nonsaturating":
        return lambda x: nn.functional.softplus(-D(x))
    return lambda x: -nn.functional.softplus(D(x))


def param_kind(estimator: AbstractEstimator, task: AbstractTask) -> str:
    """What G's head emits for this estimator: ``logits``, ``mean`` or ``loc_scale``."""
    if isinstance(task.space, Discrete):
        return "logits"
    return "loc_scale" if estimator.param_shape(task.space) != task.space.shape else "mean"


def _fakes(state: TrainState, z: torch.Tensor, space) -> torch.Tensor:
    """What ``f`` would see for latents ``z``: the fakes D trains on, without gradient."""
    seen: list[torch.Tensor] = []

    def record(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach())
        return x.new_zeros(x.shape[0])

    with torch.no_grad():
        state.estimator.surrogate(state.G(z), record, space=space, generator=state.rng)
    return seen[0]


def train_step(state: TrainState, task: AbstractTask,
               cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """One iteration: ``d_steps`` D updates, then one G update; an estimator that
    ``learns`` (e.g. REBAR's control variate) then updates its own state once
    (:meth:`~gangrad.estimators.AbstractEstimator.learn`) on the same G output and D.

    Returns the losses as 0-d tensors on the run's device (reading them would synchronize
    a GPU every step; :func:`train` checks them at each evaluation).
    """
    device = torch.device(cfg.device)
    space = task.space
    d_losses = []
    for _ in range(cfg.d_steps):
        z = task.sample_latent(cfg.batch_size, generator=state.rng, device=device)
        fake = _fakes(state, z, space)
        real = task.sample_real(fake.shape[0], generator=state.data_rng).to(device)
        logits_real, logits_fake = state.D(real), state.D(fake)
        d_loss = (nn.functional.softplus(-logits_real).mean()
                  + nn.functional.softplus(logits_fake).mean())
        state.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        state.opt_d.step()
        d_losses.append(d_loss.detach())

    state.D.requires_grad_(False)
    try:
        z = task.sample_latent(cfg.batch_size, generator=state.rng, device=device)
        f = generator_loss(cfg.loss, state.D)
        params = state.G(z)
        g_loss = state.estimator.surrogate(params, f, space=space, generator=state.rng).mean()
        state.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        state.opt_g.step()
        if state.estimator.learns:  # e.g. a control variate, on the same params and D
            state.estimator.learn(params.detach(), f, space=space, generator=state.rng)
    finally:
        state.D.requires_grad_(True)
    state.step += 1
    losses = {"g_loss": g_loss.detach()}
    if d_losses:
        losses["d_loss"] = torch.stack(d_losses).mean()
    return losses


def init_state(task: AbstractTask, estimator: AbstractEstimator,
               cfg: TrainConfig) -> TrainState:
    """Fresh G, D and optimisers for a resolved config; seeded by ``cfg.seed``."""
    device = torch.device(cfg.device)
    G, D = _init_nets(task, estimator, cfg.seed, device)
    return TrainState(
        G=G, D=D,
        opt_g=torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2)),
        opt_d=torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2)),
        estimator=estimator,
        rng=torch.Generator(device).manual_seed(cfg.seed),
        data_rng=torch.Generator().manual_seed(cfg.seed + 1_000_003),
    )


def _init_nets(task: AbstractTask, estimator: AbstractEstimator, seed: int,
               device: torch.device) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    G = task.make_generator(estimator.param_shape(task.space)).to(device)
    D = task.make_discriminator().to(device)
    return G, D


def checkpoints(task: AbstractTask | str, estimator: AbstractEstimator | str,
                at_steps: list[int], *, estimator_hyper: Mapping[str, Any] | None = None,
                config: TrainConfig | None = None,
                **overrides: Any) -> Iterator[tuple[int, TrainState]]:
    """Train and yield ``(step, state)`` at each of ``at_steps`` (sorted, ≥ 0).

    The state is live: copy G and D if you change them. Raises :class:`Diverged` if the
    run blows up before the last checkpoint.
    """
    task, estimator = _resolve(task, estimator, estimator_hyper)
    steps = sorted(set(int(s) for s in at_steps))
    if not steps or steps[0] < 0:
        raise ValueError(f"at_steps must be non-negative integers, got {at_steps}")
    base = config or TrainConfig()
    cfg = TrainConfig(**{**asdict(base), "schedules": dict(base.schedules), **overrides,
                         "steps": max(steps[-1], 1)}).resolved(task)
    state = init_state(task, estimator, cfg)
    for target in steps:
        while state.step < target:
            losses = train_step(state, task, cfg)
            if not all(torch.isfinite(v) for v in losses.values()):
                raise Diverged(state.step, "a loss")
        yield state.step, state


def _evaluate(state: TrainState, task: AbstractTask, z_eval: torch.Tensor,
              kind: str, eval_rng_seed: int) -> tuple[dict[str, float], torch.Tensor]:
    with torch.no_grad():
        params = state.G(z_eval)
        x = state.estimator.sample(params, space=task.space,
                                   generator=torch.Generator(z_eval.device).manual_seed(
                                       eval_rng_seed))
    if not torch.isfinite(x).all():
        raise Diverged(state.step, "the generator's output")
    x = x.cpu()
    metrics = task.evaluate(x)
    # its own generator: a seed's metrics must not depend on what else ran in the process
    metrics.update(task.evaluate_generator(
        state.G, kind, generator=torch.Generator().manual_seed(eval_rng_seed + 1)))
    return metrics, x


def _resolve(task: AbstractTask | str, estimator: AbstractEstimator | str,
             hyper: Mapping[str, Any] | None) -> tuple[AbstractTask, AbstractEstimator]:
    task = tasks_mod.create(task) if isinstance(task, str) else task
    estimator = (estimators_mod.create(estimator, **(hyper or {}))
                 if isinstance(estimator, str) else estimator)
    if not estimator.supports(task.space):
        raise ValueError(
            f"estimator {estimator.key!r} does not support task {task.name!r} "
            f"({task.space}); estimators that do: "
            f"{', '.join(estimators_mod.supporting(task.space))}"
        )
    return task, estimator


def _prepare(task: AbstractTask | str, estimator: AbstractEstimator | str,
             hyper: Mapping[str, Any] | None, config: TrainConfig | None,
             overrides: Mapping[str, Any], checkpoint_steps: Sequence[int],
             on_checkpoint: Callable[..., None] | None
             ) -> tuple[AbstractTask, AbstractEstimator, TrainConfig, list[int]]:
    """Resolve and validate everything :func:`train` and :func:`train_seeds` take."""
    task, estimator = _resolve(task, estimator, hyper)
    base = config or TrainConfig()
    unknown = sorted(set(overrides) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"train: unknown option(s) {', '.join(unknown)}; accepted: "
                         f"{', '.join(TrainConfig.__dataclass_fields__)}")
    cfg = TrainConfig(**{**asdict(base), "schedules": dict(base.schedules), **overrides})
    cfg = cfg.resolved(task)
    names = estimator.hyperparameters()
    for name in cfg.schedules:
        if name not in names:
            raise ValueError(f"train: cannot anneal {name!r}: estimator {estimator.key!r} has "
                             f"hyper-parameters {', '.join(names) or 'none'}")
    marks = sorted({int(s) for s in checkpoint_steps})
    if marks and (marks[0] < 0 or marks[-1] > cfg.steps):
        raise ValueError(f"train: checkpoint_steps must lie in [0, {cfg.steps}], got {marks}")
    if marks and on_checkpoint is None:
        raise ValueError("train: checkpoint_steps given without on_checkpoint")
    for name, sched in cfg.schedules.items():  # validates every scheduled value up front
        estimator.replace(**{name: sched(0)})
        estimator.replace(**{name: sched(cfg.steps)})

    return task, estimator, cfg, marks


def train(task: AbstractTask | str, estimator: AbstractEstimator | str, *,
          estimator_hyper: Mapping[str, Any] | None = None,
          config: TrainConfig | None = None, out_dir: str | Path | None = None,
          progress: Callable[[dict[str, Any]], None] | None = None,
          checkpoint_steps: Sequence[int] = (),
          on_checkpoint: Callable[[int, TrainState], None] | None = None,
          **overrides: Any) -> pd.DataFrame:
    """Train a GAN on ``task`` with ``estimator`` for the generator step.

    Returns the metric history, one row per evaluation (``step``, ``elapsed_s``, the
    losses averaged since the previous row, the task's metrics). ``history.attrs`` holds
    ``status`` (``"ok"`` or ``"diverged"``), ``diverged_at``, the resolved config and
    ``samples``: the last evaluation's first 256 generated samples (CPU tensor).
    ``overrides`` are :class:`TrainConfig` fields (``steps=500, seed=1``). With
    ``out_dir``, writes ``history.csv``, ``config.json`` and a picture of final samples.
    ``on_checkpoint(step, state)`` is called at each of ``checkpoint_steps`` (0 = before
    the first update); the state is live, so copy what you keep.
    Bad arguments raise ``ValueError`` before any work starts.
    """
    task, estimator, cfg, marks = _prepare(task, estimator, estimator_hyper, config,
                                           overrides, checkpoint_steps, on_checkpoint)
    state = init_state(task, estimator, cfg)
    device = torch.device(cfg.device)
    kind = param_kind(estimator, task)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    run = _Run(task, estimator, cfg, state, device, progress)
    start = time.perf_counter()
    run.record(0, start, kind)
    if run.ok and 0 in marks:
        on_checkpoint(0, state)
    while run.ok and state.step < cfg.steps:
        if cfg.schedules:
            state.estimator = estimator.replace(
                **{k: s(state.step) for k, s in cfg.schedules.items()})
        run.pending.append(train_step(state, task, cfg))
        if state.step % cfg.eval_every == 0 or state.step == cfg.steps:
            run.record(state.step, start, kind)
        if run.ok and state.step in marks:
            if run.rows[-1]["step"] != state.step:
                run.record(state.step, start, kind)  # checks the pending losses first
            if run.ok:
                on_checkpoint(state.step, state)
    history = run.history()
    if out is not None:
        _write_outputs(out, history, state, task, run.z_eval)
    return history


def _config_dict(cfg: TrainConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["schedules"] = {k: asdict(v) for k, v in cfg.schedules.items()}
    return d


def _write_outputs(out: Path, history: pd.DataFrame, state: TrainState, task: AbstractTask,
                   z_eval: torch.Tensor) -> None:
    history.to_csv(out / "history.csv", index=False)
    attrs = {k: v for k, v in history.attrs.items() if k != "samples"}
    (out / "config.json").write_text(json.dumps(attrs, indent=2, default=str) + "\n")
    with torch.no_grad():
        x = state.estimator.sample(state.G(z_eval), space=task.space,
                                   generator=torch.Generator(z_eval.device).manual_seed(0))
    if torch.isfinite(x).all():
        task.render(x.cpu(), out / "samples.png")


# -- many seeds as one batched model ----------------------------------------------------------

_STATEFUL = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._NormBase)


def seed_batching(task: AbstractTask, estimator: AbstractEstimator) -> str | None:
    """``None`` when :func:`train_seeds` can train the seeds of ``(task, estimator)`` as
    one batched model; otherwise the reason it trains them one after another."""
    if estimator.learns:
        return f"estimator {estimator.key!r} learns state during use"
    if not estimator.rows_independent:
        return f"estimator {estimator!r} couples the rows of a batch"
    with torch.random.fork_rng(devices=[]):
        nets = _init_nets(task, estimator, 0, torch.device("cpu"))
    for net, name in zip(nets, ("generator", "discriminator"), strict=True):
        if any(True for _ in net.buffers()) or any(isinstance(m, _STATEFUL)
                                                  for m in net.modules()):
            return f"the {name} of task {task.name!r} has buffers, dropout or batch norm"
    return None


def _stacked_step(states: list[TrainState], G: Stack, D: Stack, opt_g: torch.optim.Optimizer,
                  opt_d: torch.optim.Optimizer, task: AbstractTask,
                  cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """:func:`train_step` for S seeds at once; losses of shape ``(S,)``. Each seed draws
    from its own generators in :func:`train_step`'s order."""
    device = torch.device(cfg.device)
    space, est, S = task.space, states[0].estimator, len(states)

    def latents() -> torch.Tensor:
        return torch.stack([task.sample_latent(cfg.batch_size, generator=st.rng, device=device)
                            for st in states])

    def noise(params: torch.Tensor) -> torch.Tensor | None:
        draws = [est.noise(params[s], space=space, generator=st.rng)
                 for s, st in enumerate(states)]
        return None if draws[0] is None else torch.cat(draws)

    def per_seed(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(S, x.shape[0] // S, *x.shape[1:])

    seen: list[torch.Tensor] = []

    def record(x: torch.Tensor) -> torch.Tensor:  # the fakes are what f sees
        seen.append(x)
        return x.new_zeros(x.shape[0])

    d_losses = []
    for _ in range(cfg.d_steps):
        z = latents()
        with torch.no_grad():
            params = G(z, frozen=True)
            est.surrogate(params.flatten(0, 1), record, noise=noise(params), space=space)
        fake = per_seed(seen.pop())
        real = torch.stack([task.sample_real(fake.shape[1], generator=st.data_rng)
                            for st in states]).to(device)
        logits_real, logits_fake = D(real), D(fake)
        d_loss = (nn.functional.softplus(-logits_real).mean(1)
                  + nn.functional.softplus(logits_fake).mean(1))
        opt_d.zero_grad(set_to_none=True)
        d_loss.sum().backward()
        opt_d.step()
        d_losses.append(d_loss.detach())

    z = latents()
    params = G(z)
    f = generator_loss(cfg.loss, lambda x: D(per_seed(x), frozen=True).flatten())
    g_loss = est.surrogate(params.flatten(0, 1), f, noise=noise(params.detach()), space=space)
    g_loss = g_loss.reshape(S, -1).mean(1)
    opt_g.zero_grad(set_to_none=True)
    g_loss.sum().backward()
    opt_g.step()
    for st in states:
        st.step += 1
    losses = {"g_loss": g_loss.detach()}
    if d_losses:
        losses["d_loss"] = torch.stack(d_losses).mean(0)
    return losses


def train_seeds(task: AbstractTask | str, estimator: AbstractEstimator | str,
                seeds: Sequence[int], *, estimator_hyper: Mapping[str, Any] | None = None,
                config: TrainConfig | None = None,
                progress: Callable[[dict[str, Any]], None] | None = None,
                checkpoint_steps: Sequence[int] = (),
                on_checkpoint: Callable[[int, int, TrainState], None] | None = None,
                batched: bool | None = None, **overrides: Any) -> list[pd.DataFrame]:
    """:func:`train` for each of ``seeds``, trained together as one batched model.

    Returns one history per seed, in the order of ``seeds``, each what :func:`train` with
    that seed returns (``history.attrs`` included; ``elapsed_s`` is the batch's clock).
    A seed that diverges stops being recorded; the others go on. ``progress`` rows carry
    a ``seed`` key; ``on_checkpoint(seed, step, state)`` gets the seed's live state (its G
    and D hold the seed's current parameters; the optimisers are the batch's).

    ``batched=None`` batches when :func:`seed_batching` allows it and trains the seeds one
    after another otherwise; ``True`` raises ``ValueError`` where it does not allow it;
    ``False`` always trains them one after another.
    """
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"train_seeds: seeds must be non-negative integers, got {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"train_seeds: seeds must be distinct, got {seeds}")
    if "seed" in overrides:
        raise ValueError("train_seeds: pass the seeds as seeds=, not seed=")
    task, estimator, cfg, marks = _prepare(task, estimator, estimator_hyper, config,
                                           overrides, checkpoint_steps, on_checkpoint)
    reason = seed_batching(task, estimator) if batched is not False else "batched=False"
    if reason is not None and batched:
        raise ValueError(f"train_seeds: cannot batch the seeds: {reason}")
    if reason is not None:  # each seed starts from the estimator's state as given
        return [train(task, copy.deepcopy(estimator), config=replace(cfg, seed=seed),
                      progress=None if progress is None else
                      (lambda row, seed=seed: progress({"seed": seed, **row})),
                      checkpoint_steps=marks,
                      on_checkpoint=None if on_checkpoint is None else
                      (lambda step, state, seed=seed: on_checkpoint(seed, step, state)))
                for seed in seeds]

    device = torch.device(cfg.device)
    kind = param_kind(estimator, task)
    runs = []
    for seed in seeds:
        G, D = _init_nets(task, estimator, seed, device)
        state = TrainState(G=G, D=D, opt_g=None, opt_d=None,  # type: ignore[arg-type]
                           estimator=estimator,
                           rng=torch.Generator(device).manual_seed(seed),
                           data_rng=torch.Generator().manual_seed(seed + 1_000_003))
        runs.append(_Run(task, estimator, replace(cfg, seed=seed), state, device, progress,
                         tag_seed=True))
    states = [run.state for run in runs]
    G, D = Stack([st.G for st in states]), Stack([st.D for st in states])
    betas = (cfg.beta1, cfg.beta2)
    opt_g = torch.optim.Adam(list(G.params.values()), lr=cfg.lr_g, betas=betas)
    opt_d = torch.optim.Adam(list(D.params.values()), lr=cfg.lr_d, betas=betas)
    for st in states:
        st.opt_g, st.opt_d = opt_g, opt_d
    start = time.perf_counter()

    def record(step: int) -> None:
        for run in runs:
            if run.ok:
                run.record(step, start, kind)

    record(0)
    if 0 in marks:
        for run in runs:
            if run.ok:
                on_checkpoint(run.cfg.seed, 0, run.state)
    step = 0
    while step < cfg.steps and any(run.ok for run in runs):
        if cfg.schedules:
            current = estimator.replace(**{k: s(step) for k, s in cfg.schedules.items()})
            for st in states:
                st.estimator = current
        losses = _stacked_step(states, G, D, opt_g, opt_d, task, cfg)
        step += 1
        for i, run in enumerate(runs):  # a diverged seed trains on (on NaN) but is not read
            if run.ok:
                run.pending.append({name: value[i] for name, value in losses.items()})
        if step % cfg.eval_every == 0 or step == cfg.steps:
            record(step)
        if step in marks:
            if any(run.rows and run.rows[-1]["step"] != step for run in runs):
                record(step)
            for run in runs:
                if run.ok:
                    on_checkpoint(run.cfg.seed, step, run.state)
    return [run.history() for run in runs]


class _Run:
    """One seed's run: its state, evaluation latents and history rows (:func:`train`,
    and each seed of :func:`train_seeds`)."""

    def __init__(self, task: AbstractTask, estimator: AbstractEstimator, cfg: TrainConfig,
                 state: TrainState, device: torch.device,
                 progress: Callable[[dict[str, Any]], None] | None,
                 tag_seed: bool = False) -> None:
        self.task, self.estimator, self.cfg, self.state = task, estimator, cfg, state
        self.z_eval = task.sample_latent(
            cfg.eval_samples, generator=torch.Generator().manual_seed(cfg.seed + 7)).to(device)
        self.progress = progress
        self.tag = {"seed": cfg.seed} if tag_seed else {}
        self.rows: list[dict[str, Any]] = []
        self.pending: list[dict[str, torch.Tensor]] = []  # losses since the last evaluation
        self.samples: torch.Tensor | None = None  # the latest evaluation's generated samples
        self.status, self.diverged_at = "ok", None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def record(self, step: int, start: float, kind: str) -> None:
        """An evaluation row: the pending losses' means (checked finite) and the task's
        metrics. A divergence ends the run: ``status`` becomes ``"diverged"``."""
        row: dict[str, Any] = {"step": step, "elapsed_s": time.perf_counter() - start}
        try:
            if self.pending:
                first = step - len(self.pending) + 1
                for name in self.pending[0]:
                    values = torch.stack([p[name] for p in self.pending]).float().cpu()
                    bad = (~torch.isfinite(values)).nonzero()
                    if len(bad):
                        raise Diverged(first + int(bad[0]), name)
                    row[name] = float(values.mean())
                self.pending.clear()
            metrics, x = _evaluate(self.state, self.task, self.z_eval, kind, self.cfg.seed + 11)
        except Diverged as exc:
            self.status, self.diverged_at = "diverged", exc.step
            if self.progress is not None:
                self.progress({**self.tag, "step": exc.step, "status": "diverged",
                               "message": str(exc)})
            return
        row.update(metrics)
        self.samples = x[:SAMPLES_KEPT]
        self.rows.append(row)
        if self.progress is not None:
            self.progress({**self.tag, **row})

    def history(self) -> pd.DataFrame:
        history = pd.DataFrame(self.rows)
        est = self.estimator
        history.attrs.update({"status": self.status, "diverged_at": self.diverged_at,
                              "task": self.task.name, "estimator": est.key,
                              "estimator_hyper": est.hyperparameters(),
                              "samples": self.samples, "config": _config_dict(self.cfg)})
        return history
