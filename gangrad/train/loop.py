"""One seed's training loop (:func:`train`) and the record every run keeps (:class:`Run`):
evaluations, losses, divergence, the history."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
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

__all__ = ["SAMPLES_KEPT", "Run", "finite", "init_state", "param_kind", "train"]

SAMPLES_KEPT = 256  # generated samples of the last evaluation kept in history.attrs


def init_state(task: AbstractTask, estimator: AbstractEstimator,
               cfg: TrainConfig) -> TrainState:
    """Fresh G, D, optimisers and random streams for a resolved config, from ``cfg.seed``."""
    state = TrainState.fresh(task, estimator, cfg.seed, torch.device(cfg.device))
    betas = (cfg.beta1, cfg.beta2)
    state.opt_g = torch.optim.Adam(state.G.parameters(), lr=cfg.lr_g, betas=betas)
    state.opt_d = torch.optim.Adam(state.D.parameters(), lr=cfg.lr_d, betas=betas)
    return state


def finite(*modules: nn.Module) -> bool:
    """Whether every parameter of ``modules`` is finite."""
    return all(bool(torch.isfinite(p).all()) for m in modules for p in m.parameters())


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
        """Each pending loss's mean; :class:`Diverged` at the first non-finite one (the
        pending losses are those of steps ``step - len(pending) + 1 .. step``)."""
        first = step - len(self.pending) + 1
        means, bad = {}, []
        for name in self.pending[0]:
            values = torch.stack([p[name] for p in self.pending]).float().cpu()
            where = (~torch.isfinite(values)).nonzero()
            if len(where):
                bad.append((first + int(where[0]), name))
            means[name] = float(values.mean())
        if bad:
            raise Diverged(*min(bad))
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
        with torch.no_grad():
            x = state.estimator.sample(state.G(self.z_eval), space=self.task.space,
                                       generator=torch.Generator(self.z_eval.device)
                                       .manual_seed(seed))
        if not torch.isfinite(x).all():
            raise Diverged(state.step, "the generator's output")
        x = x.cpu()
        metrics = self.task.evaluate(x)
        # its own generator: a seed's metrics must not depend on what else ran in the process
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
        with torch.no_grad():
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
