"""Bias, variance and cost of each estimator's generator gradient.

Method
------
* **Same G, same frozen D.** Every estimator is measured on one generator/discriminator
  pair: a fresh initialisation, a given pair, or a checkpoint of a training run
  (:class:`GradientProbe`, the ``on_checkpoint`` callback of :func:`gangrad.train.train`).
  ``f(x)`` is the generator loss through D (non-saturating by default); D is not updated.
  An estimator that ``needs_logit`` (MaliGAN, BGAN) is also given D as its ``logit``;
  its bias is measured against the same reference, ``∇ E f``, as every other's.
* **Common random numbers.** One z batch (``batch_size`` rows) is held fixed across
  replicates, so only the estimator's own noise varies between its ``replicates`` gradient
  estimates of the G parameters. ``fresh_z`` draws a new z batch per replicate instead:
  the total variance of a minibatch gradient.
* **Reference gradient**: exact where it can be (pathwise given z, enumeration,
  quadrature), else an unbiased average whose standard error is removed from the bias
  (:mod:`gangrad.measure.gradients`).
* **Heads.** An estimator whose head differs from the reference generator's (``reparam``
  emits a location *and* a log-scale) gets a copy of G whose head also emits a log-scale,
  initialised to the constant ``reparam_log_scale`` (or, on a G trained with such a head,
  that G itself, whose location rows then define the reference generator); its statistics
  cover the parameters it shares with G (the log-scale rows have no reference).
* **Statistics** per layer (a module's weight and bias) and in total:
  :func:`gangrad.measure.group_stats`, declared in :data:`gangrad.measure.STATISTICS`.
* **Cost**: :func:`gangrad.measure.measure_cost` of one ordinary estimate (forward,
  surrogate, backward), ``f_evals`` per row (:meth:`AbstractEstimator.evaluations`),
  ``var_x_time`` = variance × time and ``var_x_evals`` = variance × ``f_evals`` (lower is
  better: the variance left after spending equal time, or an equal number of f-calls).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from gangrad import _validate
from gangrad import estimators as estimators_mod
from gangrad import tasks as tasks_mod
from gangrad.estimators import AbstractEstimator
from gangrad.losses import generator_loss
from gangrad.measure.config import GradStatsConfig
from gangrad.measure.gradients import (
    Grads,
    deterministic_gradient,
    draw_noise,
    paired_reference,
    reference_gradient,
    replicate_gradients,
)
from gangrad.measure.statistics import group_stats
from gangrad.measure.timing import measure_cost
from gangrad.spaces import Continuous
from gangrad.tasks import AbstractTask

__all__ = ["EstimatorSpec", "GradientProbe", "gradient_stats", "resolve_estimators",
           "sigma_sweep"]

EstimatorSpec = str | AbstractEstimator | tuple[str, Mapping[str, Any]]


def resolve_estimators(specs: Iterable[EstimatorSpec], task: AbstractTask
                       ) -> list[AbstractEstimator]:
    """Estimators from keys, ``(key, hyper)`` pairs or objects; unsupported ones refused."""
    out = []
    for spec in specs:
        if isinstance(spec, AbstractEstimator):
            out.append(spec)
        elif isinstance(spec, str):
            out.append(estimators_mod.create(spec))
        else:
            key, hyper = spec
            out.append(estimators_mod.create(key, **dict(hyper)))
    if not out:
        raise ValueError("gradient_stats: no estimators given")
    bad = [e.label for e in out if not e.supports(task.space)]
    if bad:
        raise ValueError(f"task {task.name!r} ({task.space}) is not supported by "
                         f"{', '.join(bad)}; estimators that support it: "
                         f"{', '.join(estimators_mod.supporting(task.space))}")
    return out


def _head_rows(d: int) -> Callable[[Grads], Grads]:
    """Keep the location rows (the first ``d`` outputs) of a ``(2, d)`` head's gradients."""

    def project(g: Grads) -> Grads:
        return {k: (v[..., :d, :] if k == "head.linear.weight" else
                    v[..., :d] if k == "head.linear.bias" else v) for k, v in g.items()}

    return project


def _generator_for(est: AbstractEstimator, G: nn.Module, G_full: nn.Module | None,
                   task: AbstractTask, log_scale: float
                   ) -> tuple[nn.Module, Callable[[Grads], Grads]]:
    """A generator with ``est``'s head, and a map from its gradients to G's parameters.

    ``G`` emits the sample's mean (or logits); ``G_full``, when given, is the trained
    generator with a location-and-log-scale head that ``G`` was cut from.
    """
    shape = est.param_shape(task.space)
    if shape == task.space.shape:
        return G, lambda g: g
    if G_full is not None and tuple(G_full.head.param_shape) == shape:
        return G_full, _head_rows(task.space.shape[0])
    return tasks_mod.resize_head(G, shape, log_scale), _head_rows(task.space.shape[0])


@dataclass
class _Reference:
    """The reference gradient, its standard error (a Monte Carlo one) and, on fresh z
    batches, each batch's own exact reference (``paired``, ``(R, *shape)``)."""

    grads: Grads
    se: Grads | None
    paired: Grads | None
    name: str

    def layer(self, members: list[str]) -> dict[str, Any]:
        """The ``group_stats`` arguments for the parameters ``members``."""
        out: dict[str, Any] = {"ref": torch.cat([self.grads[k].reshape(-1) for k in members])}
        if self.se is not None:
            out["ref_var"] = torch.cat([self.se[k].double().pow(2).reshape(-1)
                                        for k in members])
        if self.paired is not None:
            R = self.paired[members[0]].shape[0]
            out["paired_ref"] = torch.cat([self.paired[k].reshape(R, -1) for k in members], 1)
        return out


def _measure_one(task: AbstractTask, est: AbstractEstimator, G: nn.Module,
                 G_full: nn.Module | None, f, z: torch.Tensor, cfg: GradStatsConfig,
                 rng: torch.Generator, ref: _Reference, logit=None) -> list[dict[str, Any]]:
    space, R = task.space, cfg.replicates
    G_e, project = _generator_for(est, G, G_full, task, cfg.reparam_log_scale)
    z_one = z if z.dim() == 2 else z[0]
    est = est.measurable(G_e(z_one), f, space=space, generator=rng)
    noise = draw_noise(est, G_e(z_one), R, space, rng)
    if noise is None and z.dim() == 2:
        one = deterministic_gradient(est, G_e, f, z, space, logit=logit)
        grads = {k: v.unsqueeze(0).expand(R, *v.shape) for k, v in one.items()}
    else:
        grads = replicate_gradients(est, G_e, f, z, noise, space, chunk_size=cfg.chunk_size,
                                    logit=logit)
    grads = project(grads)

    rows = []
    names = list(ref.grads)
    layers: dict[str, list[str]] = {}
    for name in names:
        layers.setdefault(name.rsplit(".", 1)[0] if "." in name else name, []).append(name)
    for layer, members in {**layers, "total": names}.items():
        g = torch.cat([grads[k].reshape(R, -1) for k in members], dim=1)
        args = ref.layer(members)
        se2 = float(args["ref_var"].sum()) if "ref_var" in args else 0.0
        rows.append({"layer": layer, "params": g.shape[1], "reference": ref.name,
                     "reference_se": math.sqrt(se2),
                     "reference_norm": float(args["ref"].norm()),
                     **group_stats(g, args.pop("ref"), se2, **args)})

    cost = {"time_ms": math.nan, "time_iqr_ms": math.nan, "peak_mem_mb": math.nan}
    if cfg.timing:
        def one_estimate():
            G_e.zero_grad(set_to_none=True)
            est.surrogate(G_e(z_one), f, space=space,
                          **estimators_mod.logit_kwargs(est, logit)).mean().backward()

        c = measure_cost(one_estimate, z.device, repeats=cfg.timing_repeats)
        G_e.zero_grad(set_to_none=True)
        cost = {"time_ms": c.time_ms, "time_iqr_ms": c.time_iqr_ms, "peak_mem_mb": c.peak_mem_mb}
    for row in rows:
        row.update(cost)
        row["f_evals"] = est.evaluations(task.space)
        row["var_x_time"] = row["variance"] * cost["time_ms"]
        row["var_x_evals"] = row["variance"] * row["f_evals"]
    return rows


def gradient_stats(task: AbstractTask | str, estimators: Iterable[EstimatorSpec],
                   config: GradStatsConfig | None = None, *, G: nn.Module | None = None,
                   D: nn.Module | None = None, step: int = 0, device: str | None = None,
                   progress: Callable[[str], None] | None = None,
                   **settings: Any) -> pd.DataFrame:
    """Bias, variance and cost of each estimator's G gradient (method: module docstring).

    One row per (estimator, layer), a ``total`` layer included, measured on ``G`` and
    ``D`` (both or neither: neither is a fresh initialisation seeded by ``seed``) and
    labelled with ``step``. ``settings`` are :class:`GradStatsConfig` fields
    (``replicates=200``) over ``config``. Bad arguments raise ``ValueError`` before any
    work starts. To measure along training, see :class:`GradientProbe`.
    """
    task = tasks_mod.create(task) if isinstance(task, str) else task
    ests = resolve_estimators(estimators, task)
    cfg = (config or GradStatsConfig()).updated(**settings).validated()
    if (G is None) != (D is None):
        raise ValueError("gradient_stats: give both G and D, or neither")
    dev = torch.device(_validate.device("gradient_stats", device))
    if G is None:
        torch.manual_seed(cfg.seed)
        G, D = task.make_generator(task.space.shape), task.make_discriminator()
    say = progress or (lambda msg: None)

    G, D = G.to(dev), D.to(dev)
    D.requires_grad_(False)
    G_full = None
    if tuple(getattr(G, "param_shape", task.space.shape)) != task.space.shape:
        if not isinstance(task.space, Continuous):
            raise ValueError(f"gradient_stats: G's head {G.param_shape} does not match "
                             f"task {task.name!r} ({task.space})")
        G_full, G = G, tasks_mod.resize_head(G, task.space.shape, cfg.reparam_log_scale)
    f = generator_loss(cfg.loss, D)
    rng = torch.Generator(dev).manual_seed(cfg.seed)
    latent = torch.Generator().manual_seed(cfg.seed + 1)
    R, B = cfg.replicates, cfg.batch_size
    z = task.sample_latent(R * B if cfg.fresh_z else B, generator=latent).to(dev)
    ref, ref_se, ref_name = reference_gradient(
        task, G, f, z, replicates=cfg.reference_replicates, generator=rng,
        chunk_size=cfg.chunk_size, expected=cfg.fresh_z)
    paired = None
    if cfg.fresh_z:
        z = z.reshape(R, B, -1)
        if ref_name.endswith("(pooled z)") and ref_se is None:
            paired = paired_reference(task, G, f, z, cfg.chunk_size)
    rows = []
    for est in ests:
        say(f"step {step}: {est.label}")
        for row in _measure_one(task, est, G, G_full, f, z, cfg, rng,
                                _Reference(ref, ref_se, paired, ref_name), logit=D):
            rows.append({"task": task.name, "step": step, "estimator": est.label,
                         "key": est.key, **row, "replicates": R, "batch_size": B,
                         "fresh_z": cfg.fresh_z, "seed": cfg.seed, "device": dev.type})
    return pd.DataFrame(rows)


class GradientProbe:
    """Gradient statistics at the checkpoints of a training run: pass it as
    ``on_checkpoint`` to :func:`gangrad.train.train`; :meth:`frame` collects the rows.

    ``estimators`` are measured on copies of the run's live G and D at each checkpoint;
    ``None`` measures the run's own estimator (frozen, with the state it has learned).
    """

    def __init__(self, task: AbstractTask, estimators: Sequence[EstimatorSpec] | None = None,
                 config: GradStatsConfig | None = None, *, device: str | None = None,
                 progress: Callable[[str], None] | None = None, **settings: Any) -> None:
        self.task = task
        self.estimators = None if estimators is None else resolve_estimators(estimators, task)
        self.config = (config or GradStatsConfig()).updated(**settings).validated()
        self.device, self.progress = device, progress
        self.frames: list[pd.DataFrame] = []

    def __call__(self, step: int, state: Any) -> None:
        """Measure on ``state.G`` and ``state.D`` (copied; the run is not touched)."""
        ests = self.estimators if self.estimators is not None else [state.estimator.frozen()]
        self.frames.append(gradient_stats(
            self.task, ests, self.config, G=copy.deepcopy(state.G), D=copy.deepcopy(state.D),
            step=step, device=self.device, progress=self.progress))

    def frame(self) -> pd.DataFrame:
        """Every checkpoint's rows so far, in order."""
        return pd.concat(self.frames, ignore_index=True) if self.frames else pd.DataFrame()


def sigma_sweep(task: AbstractTask | str = "gaussian1d", sigmas: Sequence[float] = (),
                *, baseline: str = "mean", **kwargs: Any) -> pd.DataFrame:
    """Goodfellow's smoothing at each σ, beside the score function of the same objective.

    Both estimate ``∇ E_ε f(G(z) + σε)``; the reference is the σ = 0 (pathwise) gradient,
    so ``bias`` is the smoothing bias, which vanishes as σ → 0 (Goodfellow et al., 2014,
    eq. 1), while the score function's variance grows like 1/σ². ``kwargs`` go to
    :func:`gradient_stats`.
    """
    sigmas = [float(s) for s in sigmas]
    if not sigmas or any(not (s > 0 and math.isfinite(s)) for s in sigmas):
        raise ValueError(f"sigma_sweep: sigmas must be positive numbers, got {sigmas}")
    frames = []
    for s in sigmas:
        df = gradient_stats(task, [("smoothing", {"sigma": s}),
                                   ("score_function", {"sigma": s, "baseline": baseline})],
                            **kwargs)
        df.insert(3, "sigma", s)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
