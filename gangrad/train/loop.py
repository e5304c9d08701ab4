"""One seed's training loop (:func:`train`) and the record every run keeps (:class:`Run`):
evaluations, losses, divergence, the history.

Divergence. A run diverges at the first step at which

1. a loss (each step's, read at the next evaluation), a parameter of G or a generated
   sample is NaN or ±Inf, or a step raises on non-finite networks; or
2. a loss is finite but its magnitude passes :data:`LOSS_BOUND` (``1e6``). Both GAN losses
   are ``softplus`` of D's logit (:mod:`gangrad.losses`), so ``|loss| ≈ |logit|`` once D
   saturates, and a logit of ``1e6`` claims odds of ``e^{1e6}``: sound runs stay within
   ``|loss| < 20`` (every estimator on ``gaussian1d``, ``categorical`` and ``ring8`` at
   their training defaults), while a learning-rate blow-up passes ``1e6`` within a few
   steps; or
3. a generated sample lies further from 0 than :data:`OUTPUT_BOUND` (``1e3``) times the
   largest magnitude of as many real samples (continuous spaces): a generator whose
   samples sit a thousand data-widths away has left the data, not merely fitted it
   badly.

The run stops there; its history keeps the evaluations before that step, and
``history.attrs`` says ``status = "diverged"`` and ``diverged_at``. Rules 2 and 3 catch
the finite blow-ups that rule 1 alone would store as sound runs (``gaussian1d`` at a
learning rate of ``1e9`` ends with ``w1`` near ``1e9`` and losses near ``1e18``, every
value finite).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from gangrad.estimators import AbstractEstimator
from gangrad.spaces import Discrete
from gangrad.tasks import AbstractTask
from gangrad.train.config import TrainConfig, config_dict, prepare
from gangrad.train.step import Diverged, TrainState, sample_latent, train_step

__all__ = ["LOSS_BOUND", "OUTPUT_BOUND", "SAMPLES_KEPT", "Run", "data_bound",
           "evaluation_mode", "finite", "init_state", "loss_diverged", "param_kind", "train",
           "unsound"]

SAMPLES_KEPT = 256  # generated samples of the last evaluation kept in history.attrs
#: a loss whose magnitude passes this has diverged (rule 2 of the module doc)
LOSS_BOUND = 1e6
#: a generated sample further from 0 than this times the data's largest magnitude has
#: diverged (rule 3 of the module doc)
OUTPUT_BOUND = 1e3


def init_state(task: AbstractTask, estimator: AbstractEstimator,
               cfg: TrainConfig) -> TrainState:
    """Fresh G, D, optimisers and random streams for a resolved config, from ``cfg.seed``."""
    state = TrainState.fresh(task, estimator, cfg.seed, torch.device(cfg.device))
    betas = (cfg.beta1, cfg.beta2)
    state.opt_g = torch.optim.Adam(state.G.parameters(), lr=cfg.lr_g, betas=betas)
    state.opt_d = torch.optim.Adam(state.D.parameters(), lr=cfg.lr_d, betas=betas)
    return state


@contextlib.contextmanager
def evaluation_mode(module: nn.Module) -> Iterator[None]:
    """``module`` in evaluation mode (batch norm's running statistics, no dropout) within,
    its mode restored after: every evaluation of G runs in it."""
    was = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was)


def finite(*modules: nn.Module) -> bool:
    """Whether every parameter of ``modules`` is finite."""
    return all(bool(torch.isfinite(p).all()) for m in modules for p in m.parameters())


def unsound(values: torch.Tensor) -> torch.Tensor:
    """Which of ``values`` (losses) break the divergence rule: not finite, or a magnitude
    beyond :data:`LOSS_BOUND`."""
    return ~torch.isfinite(values) | (values.abs() > LOSS_BOUND)


def loss_diverged(step: int, name: str, value: float) -> Diverged:
    """The :class:`Diverged` of loss ``name`` at ``step`` (an :func:`unsound` ``value``)."""
    if not math.isfinite(value):
        return Diverged(step, name)
    return Diverged(step, name, f"is {value:.3g}, beyond ±{LOSS_BOUND:g}")


def data_bound(task: AbstractTask, n: int) -> float | None:
    """The largest magnitude a generated sample of ``task`` may have (rule 3 of the module
    doc): :data:`OUTPUT_BOUND` times that of ``n`` real samples (drawn from their own
    generator, so no run's streams move); None for a discrete space."""
    if isinstance(task.space, Discrete):
        return None
    real = task.sample_real(n, generator=torch.Generator().manual_seed(0))
    peak = float(real.abs().max())
    return OUTPUT_BOUND * peak if peak > 0 else None


def param_kind(estimator: AbstractEstimator, task: AbstractTask) -> str:
    """What G's head emits for this estimator: ``logits``, ``mean`` or ``loc_scale``."""
    if isinstance(task.space, Discrete):
        return "logits"
    return "loc_scale" if estimator.param_shape(task.space) != task.space.shape else "mean"


class Run:
    """One seed's run: its state, evaluation latents and history rows (:func:`train`,
    and each seed of :func:`gangrad.train.train_seeds`)."""

    def __init__(self, task: AbstractTask, estimator: AbstractEstimator, cfg: TrainConfig,
                 state: TrainState, progress: Callable[[dict[str, Any]], None] | None,
                 tag_seed: bool = False) -> None:
        self.task, self.estimator, self.cfg, self.state = task, estimator, cfg, state
        self.kind = param_kind(estimator, task)
        self.z_eval = sample_latent(
            task, cfg.latent, cfg.eval_samples,
            generator=torch.Generator().manual_seed(cfg.seed + 7)
        ).to(torch.device(cfg.device))
        self.progress = progress
        self.tag = {"seed": cfg.seed} if tag_seed else {}
        self.rows: list[dict[str, Any]] = []
        self.pending: list[dict[str, torch.Tensor]] = []  # losses since the last evaluation
        self.samples: torch.Tensor | None = None  # the latest evaluation's generated samples
        self.status, self.diverged_at = "ok", None
        self.bound = data_bound(task, cfg.eval_samples)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def last_step(self) -> int | None:
        return self.rows[-1]["step"] if self.rows else None

    def record(self, step: int, start: float) -> None:
        """An evaluation row: the pending losses' means (checked finite) and the task's
        metrics. A divergence ends the run: ``status`` becomes ``"diverged"``."""
        row: dict[str, Any] = {"step": step, "elapsed_s": time.perf_counter() - start}
        try:
            if self.pending:
                means = self._pending_means(step)
                self.pending.clear()
                row.update(means)
            metrics, x = self._evaluate()
        except Diverged as exc:
            self._diverge(exc)
            return
        row.update(metrics)
        self.samples = x[:SAMPLES_KEPT]
        self.rows.append(row)
        if self.progress is not None:
            self.progress({**self.tag, **row})

    def _pending_means(self, step: int) -> dict[str, float]:
        """Each pending loss's mean; :class:`Diverged` at the first :func:`unsound` one
        (the pending losses are those of steps ``step - len(pending) + 1 .. step``)."""
        first = step - len(self.pending) + 1
        means, bad = {}, []
        for name in self.pending[0]:
            values = torch.stack([p[name] for p in self.pending]).float().cpu()
            where = unsound(values).nonzero()
            if len(where):
                at = int(where[0])
                bad.append((first + at, name, float(values[at])))
            means[name] = float(values.mean())
        if bad:
            raise loss_diverged(*min(bad))
        return means

    def fail_step(self, step: int, error: BaseException) -> None:
        """A step that raised on non-finite networks (e.g. NaN logits): the run diverged,
        at its first non-finite pending loss if one came earlier, else at ``step``."""
        try:
            if self.pending:
                self._pending_means(step - 1)
            raise Diverged(step, f"the networks ({type(error).__name__})")
        except Diverged as exc:
            self._diverge(exc)

    def _diverge(self, exc: Diverged) -> None:
        self.status, self.diverged_at = "diverged", exc.step
        if self.progress is not None:
            self.progress({**self.tag, "step": exc.step, "status": "diverged",
                           "message": str(exc)})

    def _evaluate(self) -> tuple[dict[str, float], torch.Tensor]:
        state, seed = self.state, self.cfg.seed + 11
        if not finite(state.G):
            raise Diverged(state.step, "a generator parameter")
        with torch.no_grad(), evaluation_mode(state.G):
            x = state.estimator.sample(state.G(self.z_eval), space=self.task.space,
                                       generator=torch.Generator(self.z_eval.device)
                                       .manual_seed(seed))
        if not torch.isfinite(x).all():
            raise Diverged(state.step, "the generator's output")
        peak = float(x.abs().max()) if self.bound is not None else 0.0
        if self.bound is not None and peak > self.bound:
            raise Diverged(state.step, f"the generator's output (|x| up to {peak:.3g})",
                           f"is beyond {OUTPUT_BOUND:g} × the data's largest magnitude "
                           f"({self.bound / OUTPUT_BOUND:.3g})")
        x = x.cpu()
        metrics = self.task.evaluate(x)
        # its own generator: a seed's metrics must not depend on what else ran in the process
        with evaluation_mode(state.G):
            metrics.update(self.task.evaluate_generator(
                state.G, self.kind, generator=torch.Generator().manual_seed(seed + 1)))
        return metrics, x

    def history(self) -> pd.DataFrame:
        history = pd.DataFrame(self.rows)
        est = self.estimator
        history.attrs.update({"status": self.status, "diverged_at": self.diverged_at,
                              "task": self.task.name, "estimator": est.key,
                              "estimator_hyper": est.hyperparameters(),
                              "samples": self.samples, "config": config_dict(self.cfg)})
        return history

    def write(self, out: Path, history: pd.DataFrame) -> None:
        """``history.csv``, ``config.json`` and a picture of final samples under ``out``."""
        history.to_csv(out / "history.csv", index=False)
        attrs = {k: v for k, v in history.attrs.items() if k != "samples"}
        (out / "config.json").write_text(json.dumps(attrs, indent=2, default=str) + "\n")
        with torch.no_grad(), evaluation_mode(self.state.G):
            x = self.state.estimator.sample(
                self.state.G(self.z_eval), space=self.task.space,
                generator=torch.Generator(self.z_eval.device).manual_seed(0))
        if torch.isfinite(x).all():
            self.task.render(x.cpu(), out / "samples.png")


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
    the first update) while the run is sound; the state is live, so copy what you keep.
    Bad arguments raise ``ValueError`` before any work starts.
    """
    task, estimator, cfg, marks = prepare(task, estimator, estimator_hyper, config,
                                          overrides, checkpoint_steps, on_checkpoint)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    state = init_state(task, estimator, cfg)
    run = Run(task, estimator, cfg, state, progress)
    start = time.perf_counter()
    run.record(0, start)
    if run.ok and 0 in marks:
        on_checkpoint(0, state)
    while run.ok and state.step < cfg.steps:
        if cfg.schedules:  # the current estimator's learned state carries over
            state.estimator = state.estimator.replace(
                **{k: s(state.step) for k, s in cfg.schedules.items()})
        try:
            run.pending.append(train_step(state, task, cfg))
        except Exception as exc:
            if finite(state.G, state.D):
                raise
            run.fail_step(state.step + 1, exc)
            break
        if state.step % cfg.eval_every == 0 or state.step == cfg.steps:
            run.record(state.step, start)
        if run.ok and state.step in marks:
            if run.last_step != state.step:
                run.record(state.step, start)  # checks the pending losses first
            if run.ok:
                on_checkpoint(state.step, state)
    history = run.history()
    if out is not None:
        run.write(out, history)
    return history
