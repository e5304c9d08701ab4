"""Training settings: :class:`TrainConfig`, and resolving a run's arguments before work."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from gangrad import estimators as estimators_mod
from gangrad import tasks as tasks_mod
from gangrad._validate import choice, device, integer, known_fields, positive
from gangrad.estimators import AbstractEstimator
from gangrad.losses import LOSSES
from gangrad.schedules import Schedule
from gangrad.tasks import AbstractTask

__all__ = ["DATA_ORDERS", "FAKES", "LATENTS", "LOSSES", "UPDATE_ORDERS", "TrainConfig",
           "config_dict", "prepare", "resolve"]

#: G's input: the task's ``N(0, I)``, a uniform law of the same mean and covariance, or
#: none (zeros: a generator without noise); see :func:`gangrad.train.step.sample_latent`
LATENTS = ("normal", "uniform", "none")
#: how one iteration orders its updates: D's then G's through the updated D
#: (``alternating``), or D's last update and G's both from the iteration's starting state
#: (``simultaneous``); see :func:`gangrad.train.step.gan_step`
UPDATE_ORDERS = ("alternating", "simultaneous")
#: G's step on fresh latents (``fresh``), or on the latents, noise and so the very fakes of
#: D's last step (``shared``: one batch of fakes for both losses, as one computation graph
#: gives them in ALI's and PacGAN's code); see :func:`gangrad.train.step.gan_step`
FAKES = ("fresh", "shared")
#: real data: the task's ``sample_real`` (``draws``: fresh samples, or uniform draws with
#: replacement from a fixed data set), or shuffled epochs over the task's fixed ``dataset``
#: (``epochs``; :class:`gangrad.train.step.Epochs`)
DATA_ORDERS = ("draws", "epochs")


@dataclass
class TrainConfig:
    """Training hyper-parameters; ``None`` takes the task's ``training_defaults``.

    ``latent`` is the law of G's input (:data:`LATENTS`), ``update_order`` how an
    iteration orders D's and G's updates (:data:`UPDATE_ORDERS`), ``fakes`` whether G's
    step reuses D's batch of fakes (:data:`FAKES`), ``data_order`` how real data is drawn
    (:data:`DATA_ORDERS`); their defaults are the usual GAN training.
    """

    steps: int | None = None
    batch_size: int | None = None
    lr_g: float | None = None
    lr_d: float | None = None
    d_steps: int | None = None
    beta1: float = 0.5
    beta2: float = 0.999
    loss: str = "nonsaturating"
    latent: str = "normal"
    update_order: str = "alternating"
    fakes: str = "fresh"
    data_order: str = "draws"
    eval_every: int | None = None
    eval_samples: int = 2500
    seed: int = 0
    device: str | None = None
    schedules: dict[str, Schedule] = field(default_factory=dict)

    def updated(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` (TrainConfig fields; others are refused by name)."""
        known_fields("train", (f.name for f in fields(self)), changes, "option")
        return TrainConfig(**{**asdict(self), "schedules": dict(self.schedules), **changes})

    def resolved(self, task: AbstractTask) -> TrainConfig:
        """A copy with every ``None`` filled from the task's defaults, validated:
        ``ValueError`` naming every invalid setting."""
        cfg = self._filled(task)
        problems = cfg._problems(task)
        if problems:
            raise ValueError("train: " + "; ".join(message for _, message in problems))
        return cfg

    def problems(self, task: AbstractTask) -> list[tuple[str, str]]:
        """Every invalid setting once the task's defaults are filled in, as
        ``(name, message)``; empty when all are valid."""
        return self._filled(task)._problems(task)

    def _filled(self, task: AbstractTask) -> TrainConfig:
        defaults = {"steps": 2000, "batch_size": 128, "lr_g": 2e-4, "lr_d": 2e-4, "d_steps": 1,
                    **task.training_defaults}
        values = asdict(self)
        values["schedules"] = dict(self.schedules)
        for key in ("steps", "batch_size", "lr_g", "lr_d", "d_steps"):
            if values[key] is None:
                values[key] = defaults[key]
        steps = values["steps"]
        if values["eval_every"] is None and isinstance(steps, int) and steps >= 1:
            values["eval_every"] = max(1, steps // 20)
        if values["device"] is None:
            values["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        return TrainConfig(**values)

    def _problems(self, task: AbstractTask) -> list[tuple[str, str]]:
        checks = [("steps", lambda v: integer("train", "steps", v, minimum=1)),
                  ("batch_size", lambda v: integer("train", "batch_size", v, minimum=2)),
                  ("d_steps", lambda v: integer("train", "d_steps", v, minimum=0)),
                  ("eval_every", lambda v: integer("train", "eval_every", v, minimum=1)),
                  ("eval_samples", lambda v: integer("train", "eval_samples", v, minimum=2)),
                  ("seed", lambda v: integer("train", "seed", v, minimum=0)),
                  ("lr_g", lambda v: positive("train", "lr_g", v)),
                  ("lr_d", lambda v: positive("train", "lr_d", v)),
                  ("beta1", lambda v: _beta("beta1", v)), ("beta2", lambda v: _beta("beta2", v)),
                  ("loss", lambda v: choice("train", "loss", v, LOSSES)),
                  ("latent", lambda v: choice("train", "latent", v, LATENTS)),
                  ("update_order",
                   lambda v: choice("train", "update_order", v, UPDATE_ORDERS)),
                  ("fakes", lambda v: choice("train", "fakes", v, FAKES)),
                  ("data_order", lambda v: choice("train", "data_order", v, DATA_ORDERS)),
                  ("device", lambda v: device("train", v))]
        out = []
        for name, check in checks:
            if name == "eval_every" and self.eval_every is None:
                continue  # follows from steps, which is reported
            try:
                check(getattr(self, name))
            except ValueError as exc:
                out.append((name, str(exc).removeprefix("train: ")))
        if (self.fakes == "shared" and not any(name == "d_steps" for name, _ in out)
                and self.d_steps == 0):
            out.append(("fakes", "fakes='shared' reuses D's batch of fakes: it needs "
                        "d_steps >= 1, got d_steps=0"))
        if self.data_order == "epochs" and not isinstance(getattr(task, "dataset", None),
                                                          torch.Tensor):
            out.append(("data_order", f"data_order='epochs' runs epochs over a fixed data "
                        f"set; task {task.name!r} has none (give the task a dataset_size)"))
        pack = getattr(task, "pack", 1)  # a packed discriminator judges packs of rows
        if not any(name == "batch_size" for name, _ in out) and self.batch_size % pack:
            out.append(("batch_size", f"batch_size must be a multiple of the task's "
                        f"pack={pack}, got {self.batch_size}"))
        return out


def _beta(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as plain data (schedules included), for ``history.attrs`` and JSON."""
    d = asdict(cfg)
    d["schedules"] = {k: asdict(v) for k, v in cfg.schedules.items()}
    return d


def resolve(task: AbstractTask | str, estimator: AbstractEstimator | str,
            hyper: Mapping[str, Any] | None = None) -> tuple[AbstractTask, AbstractEstimator]:
    """Task and estimator from keys or objects; an unsupported pair is refused by name."""
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


def prepare(task: AbstractTask | str, estimator: AbstractEstimator | str,
            hyper: Mapping[str, Any] | None, config: TrainConfig | None,
            overrides: Mapping[str, Any], checkpoint_steps: Sequence[int],
            on_checkpoint: Callable[..., None] | None
            ) -> tuple[AbstractTask, AbstractEstimator, TrainConfig, list[int]]:
    """Resolve and validate everything a training run takes, before any work."""
    task, estimator = resolve(task, estimator, hyper)
    cfg = (config or TrainConfig()).updated(**overrides).resolved(task)
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
