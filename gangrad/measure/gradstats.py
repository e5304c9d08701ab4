r"""Bias, variance and cost of each estimator's generator gradient.

Method
------
* **Same G, same frozen D.** Every estimator is measured on one generator/discriminator
  pair (a fresh initialisation, or a checkpoint of a training run driven by one estimator).
  ``f(x)`` is the generator loss through D (non-saturating by default); D is not updated.
* **Common random numbers.** One z batch (``batch_size`` rows) is held fixed across
  replicates, so only the estimator's own noise varies between its ``replicates`` gradient
  estimates of the G parameters. ``fresh_z=True`` draws a new z batch per replicate
  instead: the total variance of a minibatch gradient.
* **Reference gradient** (named in the ``reference`` column):

  - ``pathwise`` (continuous spaces): the exact gradient of the deterministic objective
    ``mean_b f(G(z_b))`` given z (σ = 0);
  - ``enumeration`` (discrete spaces with ≤ 65,536 outcomes): the exact gradient of
    ``mean_b E_{x~Cat(G(z_b))} f(x)`` by enumerating every outcome;
  - ``unbiased average`` (larger discrete spaces): the mean of ``reference_replicates``
    score-function estimates with an 8-sample leave-one-out baseline; its standard error
    is reported (``reference_se``) and removed from the bias (below);
  - ``quadrature`` (``gaussian1d`` with ``fresh_z``): the exact gradient of
    ``E_z f(G(z))`` by Gauss–Hermite quadrature; other tasks with ``fresh_z`` use their
    fixed-z reference on the pooled z of all replicates (``… (pooled z)``).

  An estimator whose head differs from the reference generator's (``reparam`` emits a
  location *and* a log-scale) gets a copy of G whose head also emits a log-scale,
  initialised to the constant ``reparam_log_scale`` (or, on a G trained with such a head,
  that G itself, whose location rows then define the reference generator); its statistics
  cover the parameters it shares with G (the log-scale rows have no reference).
* **Batched replicates.** The R estimates come from one ``torch.func.vmap`` over the
  replicate noise of ``torch.func.grad`` of a ``functional_call`` of G (``chunk_size``
  bounds memory); :func:`loop_gradients` computes the same with a Python loop, the
  cross-check.
* **Statistics**, per layer (a module's weight and bias) and in total, from the
  replicates ``g_r`` (R x P) and the reference ``g*``:

  - ``bias`` = ``‖E g − g*‖``, estimated without its noise floor:
    ``sqrt(max(0, ‖ḡ − g*‖² − tr Σ̂/R − Σ se*²))``;
  - ``variance`` = ``tr Σ̂`` (unbiased), ``mse`` = ``mean_r ‖g_r − g*‖²``,
    ``snr`` = ``‖ḡ‖ / sqrt(tr Σ̂)``;
  - ``cosine`` = ``mean_r cos(g_r, g*)``, ``sign_agreement`` = mean fraction of
    coordinates whose sign matches ``g*``.

  Confidence intervals (95%, columns ``*_lo``, ``*_hi``): normal intervals from the
  per-replicate values for ``variance``, ``mse``, ``cosine`` and ``sign_agreement``; for
  the squared bias a normal interval with the delta-method variance
  ``4 dᵀΣd/R + 2 tr(Σ²)/R²`` (``d = ḡ − g*``; ``tr Σ²`` from the smaller Gram matrix), its
  square root clipped at 0, so an unbiased estimator's bias interval reaches 0;
  percentile bootstrap over replicates (``scipy.stats.bootstrap``) for ``snr``.
* **Cost**: :func:`gangrad.measure.timing.measure_cost` of one ordinary estimate
  (forward, surrogate, backward), ``f_evals`` per row, and ``var_x_time`` =
  variance × time (lower is better: the variance left after spending equal time).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from gangrad import estimators as estimators_mod
from gangrad import exact
from gangrad import tasks as tasks_mod
from gangrad.estimators import AbstractEstimator
from gangrad.measure.timing import measure_cost
from gangrad.spaces import Continuous
from gangrad.tasks import AbstractTask
from gangrad.train import TrainConfig, checkpoints, generator_loss

__all__ = ["gradient_stats", "loop_gradients", "replicate_gradients", "sigma_sweep"]

Z95 = 1.959964
EstimatorSpec = str | AbstractEstimator | tuple[str, Mapping[str, Any]]
Grads = dict[str, torch.Tensor]


# -- estimators and generators ------------------------------------------------------------------
def label(est: AbstractEstimator) -> str:
    """``key`` or ``key(name=value, ...)`` for the hyper-parameters that differ from default."""
    defaults = type(est)().hyperparameters() if _constructible(type(est)) else {}
    changed = {k: v for k, v in est.hyperparameters().items() if defaults.get(k, object()) != v}
    if not changed:
        return est.key
    shown = {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in changed.items()}
    return est.key + "(" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")"


def _constructible(cls: type) -> bool:
    try:
        cls()
    except Exception:
        return False
    return True


def _resolve_estimators(specs: Iterable[EstimatorSpec], task: AbstractTask
                        ) -> list[AbstractEstimator]:
    out = []
    for spec in specs:
        if isinstance(spec, AbstractEstimator):
            est = spec
        elif isinstance(spec, str):
            est = estimators_mod.create(spec)
        else:
            key, hyper = spec
            est = estimators_mod.create(key, **dict(hyper))
        out.append(est)
    if not out:
        raise ValueError("gradient_stats: no estimators given")
    bad = [label(e) for e in out if not e.supports(task.space)]
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


def _resize_head(G: nn.Module, task: AbstractTask, shape: tuple[int, ...],
                 log_scale: float) -> nn.Module:
    """A copy of G whose :class:`Head` emits ``shape``: ``(2, d)`` from ``(d,)`` (the
    log-scale rows set to the constant ``log_scale``) or ``(d,)`` from ``(2, d)`` (the
    location rows)."""
    from gangrad.tasks._nets import Head

    head = getattr(G, "head", None)
    d = task.space.shape[0]
    if not (isinstance(task.space, Continuous) and isinstance(head, Head)
            and {tuple(head.param_shape), shape} == {(d,), (2, d)}):
        raise ValueError(f"cannot derive a generator with head {shape} from "
                         f"{type(G).__name__}; measure it on a task whose G ends in a Head")
    new = Head(head.linear.in_features, shape).to(head.linear.weight.device)
    with torch.no_grad():
        if shape == (d,):
            new.linear.weight.copy_(head.linear.weight[:d])
            new.linear.bias.copy_(head.linear.bias[:d])
        else:
            new.linear.weight.zero_()
            new.linear.weight[:d] = head.linear.weight
            new.linear.bias.fill_(log_scale)
            new.linear.bias[:d] = head.linear.bias
    G_new = copy.deepcopy(G)
    G_new.head = new
    return G_new


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
    return _resize_head(G, task, shape, log_scale), _head_rows(task.space.shape[0])


# -- replicate gradients ----------------------------------------------------------------------
def _params(G: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in G.named_parameters()}


def draw_noise(est: AbstractEstimator, params: torch.Tensor, replicates: int, space,
               generator: torch.Generator | None) -> torch.Tensor | None:
    """Noise for ``replicates`` estimates on ``params (B, ...)``: ``(R, B, ...)`` or None."""
    B = params.shape[0]
    big = params.detach().repeat(replicates, *[1] * (params.dim() - 1))
    noise = est.noise(big, space=space, generator=generator)
    return None if noise is None else noise.reshape(replicates, B, *noise.shape[1:])


def replicate_gradients(est: AbstractEstimator, G: nn.Module, f, z: torch.Tensor,
                        noise: torch.Tensor | None, space, *,
                        chunk_size: int | None = None) -> Grads:
    """Gradients of G's parameters, one per replicate: ``{name: (R, *shape)}``.

    ``z`` is ``(B, latent)`` (shared) or ``(R, B, latent)`` (one batch per replicate);
    ``noise`` is ``(R, B, ...)`` from :func:`draw_noise` (None for deterministic estimators).
    """
    params = _params(G)

    def loss(p, z_r, noise_r):
        return est.surrogate(functional_call(G, p, (z_r,)), f, noise=noise_r, space=space).mean()

    fresh = z.dim() == 3
    if noise is None and not fresh:
        raise ValueError("a deterministic estimator with fixed z has one gradient; "
                         "use fresh_z or expand it")
    in_z = 0 if fresh else None
    in_noise = None if noise is None else 0
    return vmap(grad(loss), in_dims=(None, in_z, in_noise), chunk_size=chunk_size)(
        params, z, noise)


def loop_gradients(est: AbstractEstimator, G: nn.Module, f, z: torch.Tensor,
                   noise: torch.Tensor | None, space) -> Grads:
    """The same as :func:`replicate_gradients`, one replicate at a time (the cross-check)."""
    names = [k for k, _ in G.named_parameters()]
    R = noise.shape[0] if noise is not None else z.shape[0]
    out: dict[str, list[torch.Tensor]] = {k: [] for k in names}
    for r in range(R):
        z_r = z[r] if z.dim() == 3 else z
        n_r = None if noise is None else noise[r]
        s = est.surrogate(G(z_r), f, noise=n_r, space=space).mean()
        for k, g in zip(names, torch.autograd.grad(s, list(G.parameters())), strict=True):
            out[k].append(g)
    return {k: torch.stack(v) for k, v in out.items()}


def _deterministic_gradient(est, G, f, z, space) -> Grads:
    s = est.surrogate(G(z), f, space=space).mean()
    names = [k for k, _ in G.named_parameters()]
    return dict(zip(names, torch.autograd.grad(s, list(G.parameters())), strict=True))


# -- reference ----------------------------------------------------------------------------------
def reference_gradient(task: AbstractTask, G: nn.Module, f, z: torch.Tensor, *,
                       replicates: int = 2000, generator: torch.Generator | None = None,
                       chunk_size: int | None = None,
                       expected: bool = False) -> tuple[Grads, Grads | None, str]:
    """``(gradient, standard error or None, method)`` of the reference objective.

    ``z`` is ``(B, latent)``. ``expected=True`` asks for ``∇ E_z`` (quadrature where the
    task offers it, else the fixed-z method on ``z``, which should then be large).
    """
    names = [k for k, _ in G.named_parameters()]

    def autograd_of(value: torch.Tensor) -> Grads:
        return dict(zip(names, torch.autograd.grad(value, list(G.parameters())), strict=True))

    space = task.space
    if expected and hasattr(task, "expected_loss"):
        # the quadrature runs in float64; D (inside f) keeps its own dtype
        value = task.expected_loss(G, lambda x: f(x.to(z.dtype)).double())
        return ({k: v.to(z.dtype) for k, v in autograd_of(value).items()}, None, "quadrature")
    suffix = " (pooled z)" if expected else ""
    if isinstance(space, Continuous):
        return autograd_of(f(G(z)).mean()), None, "pathwise" + suffix
    if space.outcomes <= exact.MAX_OUTCOMES:
        return autograd_of(exact.discrete_expectation(G(z), f).mean()), None, \
            "enumeration" + suffix
    est = estimators_mod.create("score_function", baseline="mean", samples=8)
    noise = draw_noise(est, G(z), replicates, space, generator)
    reps = replicate_gradients(est, G, f, z, noise, space, chunk_size=chunk_size)
    mean = {k: v.mean(0) for k, v in reps.items()}
    se = {k: v.std(0) / math.sqrt(replicates) for k, v in reps.items()}
    return mean, se, f"unbiased average ({replicates} x score_function RLOO-8)" + suffix


# -- statistics ---------------------------------------------------------------------------------
def _layers(names: Sequence[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.rsplit(".", 1)[0] if "." in name else name, []).append(name)
    return groups


def _normal_ci(values: torch.Tensor) -> tuple[float, float, float]:
    mean = float(values.mean())
    half = Z95 * float(values.std()) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, mean - half, mean + half


def _bootstrap(g: torch.Tensor, statistic, n_resamples: int, seed: int) -> tuple[float, float]:
    """Percentile interval of ``statistic(W @ g, W @ ‖g‖²)`` over replicate resamples."""
    R = g.shape[0]
    sq = g.pow(2).sum(1)

    def stat(idx, axis=-1):
        idx = np.atleast_2d(idx)
        counts = np.zeros(idx.shape, dtype=np.float64)
        np.add.at(counts, (np.arange(idx.shape[0])[:, None], idx), 1.0)
        W = torch.from_numpy(counts / R)
        return statistic(W @ g, W @ sq).numpy()

    res = scipy.stats.bootstrap((np.arange(R),), stat, vectorized=True, n_resamples=n_resamples,
                                method="percentile", random_state=seed, batch=50)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _trace_sigma_squared(centred: torch.Tensor, limit: int = 4096) -> float:
    """``tr(Σ²)`` of centred replicates ``(R, P)`` through the smaller Gram matrix
    (``CᵀC`` or ``CCᵀ`` have the same squared Frobenius norm); past ``limit`` in both
    dimensions, from ``limit`` replicates spread evenly over the R (an estimate)."""
    R, P = centred.shape
    if min(R, P) > limit:
        centred = centred[torch.linspace(0, R - 1, limit).long()]
        R = limit
    gram = centred.T @ centred if P <= R else centred @ centred.T
    return float(gram.pow(2).sum()) / (R - 1) ** 2


def group_stats(g: torch.Tensor, ref: torch.Tensor, ref_se2: float = 0.0, *,
                n_resamples: int = 200, seed: int = 0) -> dict[str, float]:
    """The statistics of the module docstring for replicates ``g (R, P)``, reference ``ref``."""
    g = g.detach().double().cpu()
    ref = ref.detach().double().cpu()
    R = g.shape[0]
    mean = g.mean(0)
    dev2 = (g - mean).pow(2).sum(1) * (R / (R - 1))  # per-replicate, unbiased in mean
    variance = float(dev2.mean())

    def bias2(m, second):
        trace = (second - m.pow(2).sum(-1)) * (R / (R - 1))
        return (m - ref).pow(2).sum(-1) - trace / R - ref_se2

    def snr(m, second):
        trace = ((second - m.pow(2).sum(-1)) * (R / (R - 1))).clamp_min(1e-300)
        return m.norm(dim=-1) / trace.sqrt()

    b2 = float(bias2(mean, g.pow(2).sum(1).mean()))
    out: dict[str, float] = {"bias": math.sqrt(max(b2, 0.0))}
    if variance > 0:
        # normal interval for ‖E g − g*‖²: Var ≈ 4 dᵀΣd/R + 2 tr(Σ²)/R², d = ḡ − g*
        centred = g - mean
        d = mean - ref
        proj = float((centred @ d).pow(2).sum() / (R - 1))
        tr_sigma2 = _trace_sigma_squared(centred)
        half = Z95 * math.sqrt(max(4 * proj / R + 2 * tr_sigma2 / R**2, 0.0))
        out["bias_lo"] = math.sqrt(max(b2 - half, 0.0))
        out["bias_hi"] = math.sqrt(max(b2 + half, 0.0))
        out["snr"] = float(mean.norm()) / math.sqrt(variance)
        out["snr_lo"], out["snr_hi"] = _bootstrap(g, snr, n_resamples, seed + 1)
    else:
        out["bias_lo"] = out["bias_hi"] = out["bias"]
        out["snr"] = out["snr_lo"] = out["snr_hi"] = math.inf
    out["variance"], out["variance_lo"], out["variance_hi"] = _normal_ci(dev2)
    out["variance"] = variance
    out["mse"], out["mse_lo"], out["mse_hi"] = _normal_ci((g - ref).pow(2).sum(1))
    cos = torch.nn.functional.cosine_similarity(g, ref.expand_as(g), dim=1)
    out["cosine"], out["cosine_lo"], out["cosine_hi"] = _normal_ci(cos)
    sign = (torch.sign(g) == torch.sign(ref)).double().mean(1)
    out["sign_agreement"], out["sign_agreement_lo"], out["sign_agreement_hi"] = _normal_ci(sign)
    return out


# -- the engine ---------------------------------------------------------------------------------
def _measure_one(task, est, G, G_full, f, z, cfg: dict, rng: torch.Generator, ref: Grads,
                 ref_se: Grads | None, ref_name: str) -> list[dict[str, Any]]:
    space = task.space
    R = cfg["replicates"]
    G_e, project = _generator_for(est, G, G_full, task, cfg["reparam_log_scale"])
    est = copy.copy(est)
    if getattr(est, "baseline", None) == "ema":  # give the EMA a history, then hold it
        est.surrogate(G_e(z if z.dim() == 2 else z[0]), f, space=space, generator=rng)
    est = est.frozen()
    z_one = z if z.dim() == 2 else z[0]
    noise = draw_noise(est, G_e(z_one), R, space, rng)
    if noise is None and z.dim() == 2:
        one = _deterministic_gradient(est, G_e, f, z, space)
        grads = {k: v.unsqueeze(0).expand(R, *v.shape) for k, v in one.items()}
    else:
        grads = replicate_gradients(est, G_e, f, z, noise, space, chunk_size=cfg["chunk_size"])
    grads = project(grads)

    rows = []
    names = list(ref)
    for layer, members in {**_layers(names), "total": names}.items():
        g = torch.cat([grads[k].reshape(R, -1) for k in members], dim=1)
        r = torch.cat([ref[k].reshape(-1) for k in members])
        se2 = sum(float(ref_se[k].double().pow(2).sum()) for k in members) if ref_se else 0.0
        rows.append({"layer": layer, "params": g.shape[1], "reference": ref_name,
                     "reference_se": math.sqrt(se2), "reference_norm": float(r.norm()),
                     **group_stats(g, r, se2, n_resamples=cfg["bootstrap"], seed=cfg["seed"])})

    cost = {"time_ms": math.nan, "time_iqr_ms": math.nan, "peak_mem_mb": math.nan}
    if cfg["timing"]:
        def one_estimate():
            G_e.zero_grad(set_to_none=True)
            est.surrogate(G_e(z_one), f, space=space).mean().backward()

        c = measure_cost(one_estimate, z.device, repeats=cfg["timing_repeats"])
        G_e.zero_grad(set_to_none=True)
        cost = {"time_ms": c.time_ms, "time_iqr_ms": c.time_iqr_ms, "peak_mem_mb": c.peak_mem_mb}
    for row in rows:
        row.update(cost)
        row["f_evals"] = est.f_evaluations
        row["var_x_time"] = row["variance"] * cost["time_ms"]
    return rows


def gradient_stats(task: AbstractTask | str, estimators: Iterable[EstimatorSpec], *,
                   replicates: int = 1000, batch_size: int = 64, seed: int = 0,
                   fresh_z: bool = False, at_steps: Sequence[int] | None = None,
                   train_with: EstimatorSpec = "pathwise", train_config: TrainConfig | None = None,
                   G: nn.Module | None = None, D: nn.Module | None = None,
                   loss: str = "nonsaturating", reference_replicates: int = 2000,
                   chunk_size: int | None = None, timing: bool = True, timing_repeats: int = 20,
                   bootstrap: int = 200, reparam_log_scale: float = math.log(0.1),
                   device: str | None = None,
                   progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Bias, variance and cost of each estimator's G gradient (method: module docstring).

    One row per (checkpoint step, estimator, layer), a ``total`` layer included. Measured
    at initialisation, on a given ``G``/``D``, or at ``at_steps`` of a run trained with
    ``train_with``. Bad arguments raise ``ValueError`` before any work starts.
    """
    task = tasks_mod.create(task) if isinstance(task, str) else task
    ests = _resolve_estimators(estimators, task)
    for name, value, minimum in [("replicates", replicates, 2), ("batch_size", batch_size, 1),
                                 ("bootstrap", bootstrap, 10),
                                 ("timing_repeats", timing_repeats, 1),
                                 ("reference_replicates", reference_replicates, 2)]:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"gradient_stats: {name} must be an integer >= {minimum}, "
                             f"got {value!r}")
    if loss not in ("nonsaturating", "minimax"):
        raise ValueError(f"gradient_stats: loss must be nonsaturating or minimax, got {loss!r}")
    if (G is None) != (D is None):
        raise ValueError("gradient_stats: give both G and D, or neither")
    if at_steps is not None and G is not None:
        raise ValueError("gradient_stats: at_steps trains its own G and D; do not pass G, D")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    trainer = _resolve_estimators([train_with], task)[0] if at_steps is not None else None

    cfg = {"replicates": replicates, "chunk_size": chunk_size, "timing": timing,
           "timing_repeats": timing_repeats, "bootstrap": bootstrap, "seed": seed,
           "reparam_log_scale": reparam_log_scale}
    say = progress or (lambda msg: None)

    def measure(G: nn.Module, D: nn.Module, step: int) -> list[dict[str, Any]]:
        G, D = G.to(dev), D.to(dev)
        D.requires_grad_(False)
        G_full = None
        if tuple(getattr(G, "param_shape", task.space.shape)) != task.space.shape:
            G_full, G = G, _resize_head(G, task, task.space.shape, reparam_log_scale)
        f = generator_loss(loss, D)
        rng = torch.Generator(dev).manual_seed(seed)
        latent = torch.Generator().manual_seed(seed + 1)
        if fresh_z:
            z = task.sample_latent(replicates * batch_size, generator=latent).to(dev)
            ref, ref_se, ref_name = reference_gradient(
                task, G, f, z, replicates=reference_replicates, generator=rng,
                chunk_size=chunk_size, expected=True)
            z = z.reshape(replicates, batch_size, -1)
        else:
            z = task.sample_latent(batch_size, generator=latent).to(dev)
            ref, ref_se, ref_name = reference_gradient(
                task, G, f, z, replicates=reference_replicates, generator=rng,
                chunk_size=chunk_size)
        rows = []
        for est in ests:
            say(f"step {step}: {label(est)}")
            for row in _measure_one(task, est, G, G_full, f, z, cfg, rng, ref, ref_se, ref_name):
                rows.append({"task": task.name, "step": step, "estimator": label(est),
                             "key": est.key, **row, "replicates": replicates,
                             "batch_size": batch_size, "fresh_z": fresh_z, "seed": seed,
                             "device": dev.type})
        return rows

    rows: list[dict[str, Any]] = []
    if G is not None:
        rows += measure(G, D, 0)
    elif at_steps is None:
        torch.manual_seed(seed)
        rows += measure(task.make_generator(task.space.shape), task.make_discriminator(), 0)
    else:
        cfg_train = train_config or TrainConfig(seed=seed)
        for step, state in checkpoints(task, trainer, list(at_steps), config=cfg_train,
                                       device=dev.type):
            say(f"checkpoint at step {step} (trained with {label(trainer)})")
            rows += measure(copy.deepcopy(state.G), copy.deepcopy(state.D), step)
    return pd.DataFrame(rows)


def sigma_sweep(task: AbstractTask | str = "gaussian1d", sigmas: Sequence[float] = (),
                *, baseline: str = "mean", **kwargs: Any) -> pd.DataFrame:
    """Goodfellow's smoothing at each σ, beside the score function of the same objective.

    Both estimate ``∇ E_ε f(G(z) + σε)``; the reference is the σ = 0 (pathwise) gradient,
    so ``bias`` is the smoothing bias, which vanishes as σ → 0 (Goodfellow et al., 2014,
    eq. 1), while the score function's variance grows like 1/σ².
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
