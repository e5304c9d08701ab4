"""What happens to each estimator when D is not differentiable in its input (it quantizes
its input), and when G is not differentiable (its output is quantized)?

Two kinds of estimator are compared. **Output-space** estimators (pathwise, smoothing,
reparam, and the score function with noise added to G's output) differentiate G's output
with respect to its parameters, ``∂G_θ(z)/∂θ``, whatever they do with ``f``. A
**parameter-space** estimator perturbs θ itself and never differentiates G or D: the
evolution-strategies gradient (Salimans et al., 2017, eqs. 1–2, with mirrored sampling),
i.e. the score function (Williams, 1992) of a Gaussian search distribution over θ:

.. math:: ∇_θ E_{ε ∼ N(0, I)} L(θ + σε) = \\frac{1}{σ} E[L(θ + σε)\\,ε]
          ≈ \\frac{1}{2σN} \\sum_{n=1}^{N} (L(θ + σε_n) − L(θ − σε_n))\\,ε_n,

for ``L(θ) = mean_i f(G_θ(z_i))`` on the step's z batch: ``2N`` evaluations of the whole
batch's cost, unbiased for the gradient of the *parameter-smoothed* objective
``L_σ(θ) = E_ε L(θ + σε)``, which tends to ``L`` as ``σ → 0`` where ``L`` is smooth (bias
``O(σ²)``) and stays differentiable where ``L`` is piecewise constant in θ.

Gradient statistics (``gaussian1d`` at initialisation, z fixed, ``f = softplus(−D(x))``
with D set to separate real from fake): three settings, the ordinary D and G; D that
rounds its input to a grid of step ``h`` (``∂f/∂x = 0`` almost everywhere); and G whose
output is rounded likewise (``∂G/∂θ = 0`` almost everywhere). For each estimator,
``‖E g‖`` with its interval (the backprop reference is exactly 0 in both quantized
settings). Theory, checked on the data (``agrees``/``disagrees``): through a quantized D,
backprop-based estimators return exactly 0; the output-space score function estimates the
gradient of the smoothed objective, exact in closed form over the rounding cells
(Goodfellow et al., 2014, eq. 1 with a piecewise-constant f),

.. math:: E_ε f(⌊(μ_i + s_iε)/h⌉h) = Σ_k f(kh)·[Φ(((k + ½)h − μ_i)/s_i)
          − Φ(((k − ½)h − μ_i)/s_i)],

with ``s_i = σ``; with G's output quantized, every output-space estimator is exactly 0;
the parameter-space estimator sees a signal in both quantized settings, its mean the same
closed form with ``s_i = σ‖∂G(z_i)/∂θ‖ = σ√(z_i² + 1)`` (exact for the linear
``G(z) = wz + b``, whose perturbed output is ``N(μ_i, s_i²)``).

Training (the convergence rule of :mod:`gangrad.stats`): ``gaussian1d`` with a D on
``(x, x²)`` (it sees the scale as well as the location), three arms from common seeds —
the differentiable G trained by backprop (``pathwise``), the quantized G trained by the
parameter-space estimator, the quantized G trained by the output-space score function —
each with the same tuning budget (one learning rate for G and D from ``LR_GRID``, chosen on
tuning seeds the verdict does not use; the output-space arm's G gets exactly zero
gradients, so every rate gives it the same run and it is trained once), read at ``T/2``
and ``T`` on W1, each the mean of the last three evaluations ``T/40`` steps apart up to
the budget (G and D chase each other; one evaluation catches a point of an
oscillation). The quantized G
can do no better than the data's own rounding, ``W1(X, ⌊X/h⌉h) = E|X − ⌊X/h⌉h|`` for
``X ∼ N(4, 1.25²)`` (:func:`rounding_floor`, exact: the monotone coupling is optimal).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.stats
import torch
from torch import nn
from torch.func import functional_call, vmap

from gangrad.plotting import new_figure
from gangrad.questions._arms import (
    at_budget,
    comparison_numbers,
    convergence_record,
    decide,
    per_seed,
    sentence,
)
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.stats import BUDGET_DEPENDENT, compare_paired, fmt_ci, mean_ci
from gangrad.train.step import Seeds

if TYPE_CHECKING:
    from gangrad.train.seeds import StackedSeeds

__all__ = ["ParameterSpaceSeeds", "Quantized", "exact_quantized_gradient",
           "parameter_space_gradients", "rounding_floor"]

STEP = 0.5  # the rounding grid
SPECS = [("pathwise", {}), ("smoothing", {"sigma": 0.3}), ("reparam", {}),
         ("score_function", {"sigma": 0.3, "baseline": "mean"})]
#: the parameter-space estimator: perturbation scale of θ and mirrored pairs per step
PARAMETER_SPACE = {"sigma": 0.1, "pairs": 1}
PARAMETER_LABEL = "parameter-space ES (sigma=0.1, 1 pair)"
DIFFERENTIABLE = "differentiable D and G"
QUANTIZED_D = "D quantizes its input"
QUANTIZED_G = "G's output quantized"
#: training arms: label -> (G quantized?, estimator key and hyper, or None for the
#: parameter-space estimator)
ARMS: dict[str, tuple[bool, tuple[str, dict[str, Any]] | None]] = {
    "differentiable G, backprop (pathwise)": (False, ("pathwise", {})),
    "quantized G, parameter-space ES": (True, None),
    "quantized G, output-space score function": (True, ("score_function",
                                                        {"sigma": 0.3, "baseline": "mean"})),
}
REFERENCE = "differentiable G, backprop (pathwise)"
ES_ARM = "quantized G, parameter-space ES"
BLIND_ARM = "quantized G, output-space score function"
LR_GRID = [1e-2, 3e-2, 1e-1]  # one learning rate for G and D, the same grid for every arm
#: evaluations every ``T/EVALUATIONS`` steps; a budget's W1 is the mean of the last
#: ``WINDOW`` of them up to it (a GAN's G oscillates around its level)
EVALUATIONS = 40
WINDOW = 3


class Quantized(nn.Module):
    """``module(round(x / h)·h)`` (``before``) or ``round(module(x) / h)·h``: piecewise
    constant in ``x``, so its derivative is 0 almost everywhere."""

    def __init__(self, module: nn.Module, h: float = STEP, before: bool = True) -> None:
        super().__init__()
        self.module, self.h, self.before = module, h, before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.before:
            return self.module(torch.round(x / self.h) * self.h)
        return torch.round(self.module(x) / self.h) * self.h

    def stacked_forward(self, x: torch.Tensor, stack) -> torch.Tensor:
        inner = stack.child("module")
        if self.before:
            return inner(torch.round(x / self.h) * self.h)
        return torch.round(inner(x) / self.h) * self.h


def exact_quantized_gradient(G: nn.Module, D: nn.Module, z: torch.Tensor, sigma: float,
                             h: float = STEP, parameter_space: bool = False) -> torch.Tensor:
    """``∇_θ mean_i E f(⌊x_i/h⌉h)`` for ``f = softplus(−D)`` (1-D output) and
    ``x_i ∼ N(G(z_i), s_i²)``, by the closed form in the module docstring: float64, flat
    over G's parameters. ``s_i = σ`` for noise on G's output; ``parameter_space``:
    ``s_i = σ‖∂G(z_i)/∂θ‖``, the law of ``G_{θ+σε}(z_i)`` for a G linear in θ."""
    G64, D64 = copy.deepcopy(G).double(), copy.deepcopy(D).double()
    D64.requires_grad_(False)
    params = list(G64.parameters())
    mu = G64(z.double())[:, 0]  # B
    scale = torch.full_like(mu, sigma)
    if parameter_space:
        rows = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(m, params,
                                                                      retain_graph=True)])
                for m in mu]
        scale = sigma * torch.stack(rows).norm(dim=1).detach()  # B
    spread = float(scale.max())
    lo = math.floor((float(mu.detach().min()) - 12 * spread) / h)
    hi = math.ceil((float(mu.detach().max()) + 12 * spread) / h)
    k = torch.arange(lo, hi + 1, dtype=torch.float64)  # the grid points reachable
    with torch.no_grad():
        fk = nn.functional.softplus(-D64((k * h)[:, None]))  # K
    cell = (torch.special.ndtr(((k + 0.5) * h - mu[:, None]) / scale[:, None])
            - torch.special.ndtr(((k - 0.5) * h - mu[:, None]) / scale[:, None]))  # B x K
    loss = (cell * fk).sum(1).mean()
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])


def parameter_space_gradients(G: nn.Module, f, z: torch.Tensor, sigma: float, pairs: int,
                              replicates: int, generator: torch.Generator) -> torch.Tensor:
    """``replicates`` parameter-space estimates ``(R, P)`` of ``∇_θ E_ε mean_i f(G_{θ+σε}
    (z_i))`` (module docstring; ``N = pairs`` mirrored pairs each), flat over G's
    parameters in ``G.parameters()`` order; G and f are only evaluated."""
    names = [k for k, _ in G.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for _, p in G.named_parameters()])  # P
    shapes = [p.shape for _, p in G.named_parameters()]
    eps = torch.randn(replicates, pairs, theta.numel(), generator=generator)  # R x N x P

    def loss(flat: torch.Tensor) -> torch.Tensor:
        parts = torch.split(flat, [math.prod(s) for s in shapes])
        params = {n: p.reshape(s) for n, p, s in zip(names, parts, shapes, strict=True)}
        return f(functional_call(G, params, (z,))).mean()

    with torch.no_grad():
        batched = vmap(vmap(loss))
        diff = batched(theta + sigma * eps) - batched(theta - sigma * eps)  # R x N
    return (diff[..., None] * eps).sum(1) / (2 * sigma * pairs)


def rounding_floor(loc: float, scale: float, h: float = STEP) -> float:
    """``E|X − ⌊X/h⌉h|`` for ``X ∼ N(loc, scale²)``: the W1 distance between X and its
    rounding to the grid ``hℤ`` (the monotone coupling is optimal in 1-D), summed exactly
    over the cells ``[(k − ½)h, (k + ½)h)`` with the normal's partial moments."""
    k = np.arange(math.floor((loc - 12 * scale) / h), math.ceil((loc + 12 * scale) / h) + 1)
    c = k * h
    norm = scipy.stats.norm

    def part(a, b):  # E[X − c; a < X < b] for X ∼ N(loc, scale²), per cell
        alpha, beta = (a - loc) / scale, (b - loc) / scale
        mass = norm.cdf(beta) - norm.cdf(alpha)
        return (loc - c) * mass + scale * (norm.pdf(alpha) - norm.pdf(beta))

    return float(np.sum(part(c, c + h / 2) - part(c - h / 2, c)))


class ParameterSpaceSeeds(Seeds):
    """Stacked seeds (:class:`gangrad.train.seeds.StackedSeeds`) whose G step is the
    parameter-space estimate (module docstring) instead of the estimator's: the D step,
    the fakes D sees, the latents and the data are the wrapped seeds' own. The
    perturbations come from each seed's estimator-noise stream, ``pairs`` per step."""

    def __init__(self, inner: StackedSeeds, sigma: float, pairs: int) -> None:
        self.inner, self.sigma, self.pairs = inner, sigma, pairs
        self.task, self.cfg = inner.task, inner.cfg
        self.opt_g, self.opt_d = inner.opt_g, inner.opt_d
        self._z: torch.Tensor | None = None

    def latents(self) -> torch.Tensor:
        return self.inner.latents()

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        self._z = z
        return self.inner.generate(z)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.discriminate(x)

    def real(self, fake: torch.Tensor) -> torch.Tensor:
        return self.inner.real(fake)

    def fakes(self, params: torch.Tensor, keep: bool = False) -> torch.Tensor:
        return self.inner.fakes(params, keep)

    def generator_loss(self, params: torch.Tensor) -> torch.Tensor:
        from gangrad.losses import generator_loss

        G, D = self.inner.G, self.inner.D
        f = generator_loss(self.cfg.loss, lambda x: D(x, frozen=True))
        theta = G.params  # name -> (S, ...)
        saved = {k: p.detach().clone() for k, p in theta.items()}
        eps = {k: torch.stack([torch.randn(self.pairs, *p.shape[1:], generator=st.noise_rng,
                                           device=p.device)
                               for st in self.inner.states], 1)  # N x S x ...
               for k, p in saved.items()}
        costs = []
        with torch.no_grad():
            for n in range(self.pairs):
                for sign in (1.0, -1.0):
                    for k, p in theta.items():
                        p.copy_(saved[k] + sign * self.sigma * eps[k][n])
                    costs.append(f(G(self._z, frozen=True)).mean(1))  # S
            for k, p in theta.items():
                p.copy_(saved[k])
        plus, minus = torch.stack(costs[0::2]), torch.stack(costs[1::2])  # N x S
        weight = (plus - minus) / (2 * self.sigma * self.pairs)  # N x S
        surrogate = 0.5 * (plus + minus).mean(0)  # the value: the mean cost, S
        for k, p in theta.items():
            grad = (weight.reshape(*weight.shape, *[1] * (p.dim() - 1)) * eps[k]).sum(0)
            surrogate = surrogate + (grad * (p - p.detach())).flatten(1).sum(1)
        return surrogate

    def learn(self, params: torch.Tensor) -> None:
        self.inner.learn(params)

    def frozen_discriminator(self) -> contextlib.AbstractContextManager[None]:
        return self.inner.frozen_discriminator()

    def advance(self) -> None:
        self.inner.advance()


def train_arm(task, label: str, seeds: list[int], steps: int, lr: float,
              h: float = STEP) -> pd.DataFrame:
    """Arm ``label`` of :data:`ARMS` trained from ``seeds`` as one batched model with
    :func:`gangrad.train.gan_step`, read at ``T/2`` and ``T``: rows as
    :func:`gangrad.questions._arms.train_budgets` gives them, each metric the mean of the
    last :data:`WINDOW` evaluations (``T/EVALUATIONS`` steps apart) up to the budget;
    only those steps are evaluated (an evaluation draws from its own streams, so it does
    not change the run). Each seed starts from the G, D and random streams
    :func:`gangrad.train.train` gives it (quantized G: the same G, its output rounded),
    so the arms are paired."""
    from gangrad import estimators
    from gangrad.train import TrainConfig, TrainState, gan_step
    from gangrad.train.loop import Run
    from gangrad.train.seeds import StackedSeeds

    quantized, spec = ARMS[label]
    key, hyper = spec if spec is not None else ("pathwise", {})
    est = estimators.create(key, **hyper)
    if steps % (2 * EVALUATIONS):
        raise ValueError(f"train_arm: steps must be a multiple of {2 * EVALUATIONS}, got "
                         f"{steps}")
    every = steps // EVALUATIONS
    marks = {b - i * every for b in (steps // 2, steps) for i in range(WINDOW)}
    cfg = TrainConfig(steps=steps, lr_g=lr, lr_d=lr, eval_every=every, eval_samples=2000,
                      device="cpu").resolved(task)
    runs = []
    for s in seeds:
        state = TrainState.fresh(task, est, s, torch.device("cpu"))
        if quantized:
            state.G = Quantized(state.G, h, before=False)
        runs.append(Run(task, est, replace(cfg, seed=s), state, None, tag_seed=True))
    batch: Seeds = StackedSeeds([r.state for r in runs], task, cfg)
    if spec is None:
        batch = ParameterSpaceSeeds(batch, PARAMETER_SPACE["sigma"], PARAMETER_SPACE["pairs"])
    start = time.perf_counter()
    for run in runs:
        run.record(0, start)
    for step in range(1, steps + 1):
        losses = gan_step(batch)
        for i, run in enumerate(runs):
            run.pending.append({name: value[i] for name, value in losses.items()})
        if step in marks:
            for run in runs:
                if run.ok:
                    run.record(step, start)
    rows = []
    for s, run in zip(seeds, runs, strict=True):
        history = run.history()
        for step, budget in ((steps // 2, "T/2"), (steps, "T")):
            window = history[history["step"].isin([step - i * every for i in range(WINDOW)])]
            whole = run.ok and len(window) == WINDOW
            rows.append({"arm": label, "task": task.name, "seed": s, "steps": steps,
                         "budget": budget, "step": step, "status": run.status,
                         "elapsed_s": (float(window["elapsed_s"].max()) if whole
                                       else math.nan),
                         **{m: float(window[m].mean()) if whole else math.nan
                            for m in ("w1", "ks")}})
    return pd.DataFrame(rows)


def _state(r) -> str:
    if r["variance"] == 0 and r["bias"] == 0:
        return "blind (exactly zero)"
    if r["bias_lo"] > 0:
        return "sees a signal"
    return "no signal resolved"


class DifferentiableD(AbstractQuestion):
    name = "differentiable-d"
    question = ("What happens to each estimator when D is not differentiable in its input "
                "(it quantizes its input), and when G is not differentiable?")
    origin = "Why must G and D be differentiable? (Cross Validated 470753)"
    quick = {"replicates": 4000, "rounding_step": STEP, "seeds": 8, "tuning_seeds": 4,
             "steps": 4000, "tuning_steps": 2000}
    full = {"replicates": 20_000, "rounding_step": STEP, "seeds": 20, "tuning_seeds": 8,
            "steps": 16_000, "tuning_steps": 8000}

    def experiment(self, settings: dict[str, Any], seed: int) -> dict[str, pd.DataFrame]:
        return {"gradients": self._gradients(settings, seed),
                **self._training(settings, seed)}

    def _gradients(self, settings: dict[str, Any], seed: int) -> pd.DataFrame:
        from gangrad import tasks
        from gangrad.losses import generator_loss
        from gangrad.measure import gradient_stats, group_stats

        task = tasks.create("gaussian1d")
        torch.manual_seed(seed)
        G, D = task.make_generator((1,)), task.make_discriminator()
        with torch.no_grad():  # a D that separates real from fake, so f has a slope to find
            D.linear.weight.fill_(1.5)
            D.linear.bias.fill_(-3.0)
        h = settings["rounding_step"]
        cases = {DIFFERENTIABLE: (G, D),
                 QUANTIZED_D: (G, Quantized(copy.deepcopy(D), h)),
                 QUANTIZED_G: (Quantized(copy.deepcopy(G), h, before=False), D)}
        # the z batch gradient_stats holds fixed (its seed + 1)
        z = task.sample_latent(64, generator=torch.Generator().manual_seed(seed + 1))
        sigma = dict(SPECS)["score_function"]["sigma"]
        exact_x = float(exact_quantized_gradient(G, D, z, sigma, h).norm())
        exact_theta = exact_quantized_gradient(G, D, z, PARAMETER_SPACE["sigma"], h,
                                               parameter_space=True)
        rows = []
        for setting, (g, d) in cases.items():
            for key, hyper in SPECS:
                if key == "reparam" and isinstance(g, Quantized):
                    continue  # reparam needs G's own head; the rounded G has none
                df = gradient_stats(task, [(key, hyper)], G=copy.deepcopy(g),
                                    D=copy.deepcopy(d), replicates=settings["replicates"],
                                    batch_size=64, seed=seed, timing=False)
                t = df[df["layer"] == "total"].iloc[0]
                exact = (exact_x if setting == QUANTIZED_D and key == "score_function"
                         else math.nan)
                rows.append({"setting": setting, "estimator": t["estimator"],
                             "space": "output", "reference": t["reference"],
                             "reference_norm": t["reference_norm"], "bias": t["bias"],
                             "bias_lo": t["bias_lo"], "bias_hi": t["bias_hi"],
                             "variance": t["variance"], "cosine": t["cosine"],
                             "f_evals": t["f_evals"], "exact_mean_grad_norm": exact})
            # the parameter-space estimator, on the same G, D and z
            f = generator_loss("nonsaturating", d)
            backprop = torch.cat([v.reshape(-1) for v in torch.autograd.grad(
                f(g(z)).mean(), list(g.parameters()))]).detach()
            reps = parameter_space_gradients(
                g, f, z, PARAMETER_SPACE["sigma"], PARAMETER_SPACE["pairs"],
                settings["replicates"], torch.Generator().manual_seed(seed + 2))
            st = group_stats(reps.double(), backprop.double())
            quantized = setting != DIFFERENTIABLE
            rows.append({"setting": setting, "estimator": PARAMETER_LABEL,
                         "space": "parameter", "reference": "pathwise",
                         "reference_norm": float(backprop.norm()), "bias": st["bias"],
                         "bias_lo": st["bias_lo"], "bias_hi": st["bias_hi"],
                         "variance": st["variance"], "cosine": st["cosine"],
                         "f_evals": 2.0 * PARAMETER_SPACE["pairs"],
                         "exact_mean_grad_norm": (float(exact_theta.norm()) if quantized
                                                  else math.nan)})
        return pd.DataFrame(rows)

    def _training(self, settings: dict[str, Any], seed: int) -> dict[str, pd.DataFrame]:
        from gangrad import tasks

        task = tasks.create("gaussian1d", features="quadratic")
        seeds = list(range(seed, seed + settings["seeds"]))
        tuning = list(range(seed + 1000, seed + 1000 + settings["tuning_seeds"]))
        grid, runs = [], []
        for label in ARMS:
            lr = LR_GRID[0]
            if label != BLIND_ARM:  # its G gets exactly zero gradients at any rate
                for rate in LR_GRID:
                    t = train_arm(task, label, tuning, settings["tuning_steps"], rate,
                                  settings["rounding_step"])
                    grid.append(t[t["budget"] == "T"].assign(lr=rate))
                g = pd.concat(grid)
                lr = float(g[g["arm"] == label].groupby("lr")["w1"].mean().idxmin())
            runs.append(train_arm(task, label, seeds, settings["steps"], lr,
                                  settings["rounding_step"]).assign(lr=lr))
        return {"training": pd.concat(runs, ignore_index=True),
                "tuning": pd.concat(grid, ignore_index=True)}

    def table(self, data: dict[str, pd.DataFrame]) -> pd.DataFrame:
        return data["gradients"]

    def analyse(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]) -> Verdict:
        from gangrad import tasks

        table, runs = data["gradients"], data["training"]
        numbers: dict[str, Any] = {}
        lines, checks = [], []
        for setting, sdf in table.groupby("setting", sort=False):
            for _, r in sdf.iterrows():
                numbers[f"{setting} | {r['estimator']}"] = {
                    "mean_grad_norm": [r["bias"], r["bias_lo"], r["bias_hi"]],
                    "variance": r["variance"], "f_evaluations": r["f_evals"],
                    "state": _state(r), "exact_mean_grad_norm": r["exact_mean_grad_norm"]}
            if setting == DIFFERENTIABLE:
                continue
            blind = [r["estimator"] for _, r in sdf.iterrows() if _state(r).startswith("blind")]
            seeing = [f"{r['estimator']} ‖E g‖ {fmt_ci(r['bias'], r['bias_lo'], r['bias_hi'])}"
                      + (f" (exact {r['exact_mean_grad_norm']:.3g})"
                         if r["exact_mean_grad_norm"] == r["exact_mean_grad_norm"] else "")
                      for _, r in sdf.iterrows() if _state(r) == "sees a signal"]
            lines.append(f"- **{setting}** (the backprop gradient is exactly 0): "
                         + (f"exactly zero from {', '.join(blind)}" if blind else
                            "no estimator is exactly zero")
                         + ("; a signal from " + "; ".join(seeing) if seeing else
                            "; no estimator resolves a signal") + ".")
            for _, r in sdf.iterrows():
                exact = r["exact_mean_grad_norm"]
                if exact == exact:  # a closed form to match
                    checks.append(bool(r["bias_lo"] <= exact <= r["bias_hi"] and exact > 0))
                elif r["space"] == "output":
                    checks.append(_state(r).startswith("blind"))
        theory = "agrees" if all(checks) else "disagrees"
        ok = table[table.setting == DIFFERENTIABLE]
        es = ok[ok["space"] == "parameter"].iloc[0]
        lines.append(f"- **{DIFFERENTIABLE}**: every estimator sees the backprop gradient "
                     f"(cosine {ok['cosine'].min():.3f}–{ok['cosine'].max():.3f}); the "
                     f"parameter-space estimate's mean differs from it by "
                     f"{fmt_ci(es['bias'], es['bias_lo'], es['bias_hi'])} (its σ-smoothing "
                     f"bias), at {es['f_evals']:g} f-evaluations per row against 1.")
        lines.append(f"- Theory (exact zeros, and each mean gradient's interval holding the "
                     f"closed form over the rounding cells): {theory}.")

        # training under the convergence rule
        margin = tasks.create("gaussian1d").metric("w1").margin
        decision = decide(runs, [ES_ARM, BLIND_ARM], REFERENCE, "w1", False, margin)
        es_vs_blind = decide(runs, [ES_ARM], BLIND_ARM, "w1", False, margin)
        floor = rounding_floor(4.0, 1.25, settings["rounding_step"])
        end = per_seed(at_budget(runs, "T"), ES_ARM, "w1")
        above = compare_paired(end, dict.fromkeys(end, floor), False, margin,
                               names=(ES_ARM, "rounding floor"))
        equal_f = compare_paired(per_seed(at_budget(runs, "T/2"), ES_ARM, "w1"),
                                 per_seed(at_budget(runs, "T"), REFERENCE, "w1"), False,
                                 margin, names=(f"{ES_ARM} at T/2", f"{REFERENCE} at T"))
        w1 = {a: {b: list(mean_ci(runs[(runs.arm == a) & (runs.budget == b)]["w1"], low=0))
                  for b in ("T/2", "T")} for a in ARMS}
        lrs = runs.groupby("arm")["lr"].first().to_dict()
        numbers.update(theory=theory, w1=w1, rounding_floor=floor, learning_rates=lrs,
                       es_vs_reference=decision.numbers(ES_ARM),
                       blind_vs_reference=decision.numbers(BLIND_ARM),
                       es_vs_blind=es_vs_blind.numbers(ES_ARM),
                       es_above_floor=[above.difference, above.lo, above.hi, above.outcome],
                       es_at_half_vs_reference_at_T=comparison_numbers(equal_f),
                       step_time_s={a: float(runs[(runs.arm == a) & (runs.budget == "T")]
                                             ["elapsed_s"].max() / settings["steps"])
                                    for a in ARMS})
        lines.append(f"- **Training** (gaussian1d, D on (x, x²), {settings['seeds']} seeds, "
                     f"T = {settings['steps']}; W1 at T/2 → T, each seed's the mean of its last "
                     f"{WINDOW} evaluations {settings['steps'] // EVALUATIONS} steps apart; "
                     f"margin {margin:g}; learning rate tuned per arm on separate seeds):")
        lines += [f"  - {a} ({'lr ' + format(lrs[a], 'g') if a != BLIND_ARM else 'any lr'}): "
                  f"{fmt_ci(*w1[a]['T/2'])} → {fmt_ci(*w1[a]['T'])}" for a in ARMS]
        lines.append(f"  - {es_vs_blind.sentence(ES_ARM)}.")
        lines.append(f"  - {decision.sentence(ES_ARM)}; the quantized G cannot go below the "
                     f"data's own rounding, W1 {floor:.3g}, and ends "
                     f"{above.difference:+.3g} [95% CI {above.lo:+.3g}, {above.hi:+.3g}] "
                     f"above it.")
        lines.append(f"  - Cost: the parameter-space estimate calls f "
                     f"{2 * PARAMETER_SPACE['pairs']} times per row and step and "
                     "backpropagates through nothing; pathwise calls it once and "
                     "backpropagates through D and G. At equal f-evaluations (the "
                     f"parameter-space arm at step {settings['steps'] // 2}, pathwise at "
                     f"{settings['steps']}): {sentence(equal_f, 'w1')}.")
        outcome = theory if theory == "disagrees" else es_vs_blind.outcomes[ES_ARM]
        trained = es_vs_blind.end[ES_ARM].outcome == "better"
        answer = (
            "Estimators that differentiate G's output (pathwise, smoothing, reparam, and "
            "even the score function with noise on that output) return an exactly zero "
            "gradient when G's output is quantized, and all but the score function do "
            "when D quantizes its input, "
            + ("but an estimator that perturbs G's parameters instead still gets a signal "
               f"in both cases and trained the quantized G from W1 {w1[BLIND_ARM]['T'][0]:.3g} "
               f"to {w1[ES_ARM]['T'][0]:.3g} (the differentiable G trained by backprop: "
               f"{w1[REFERENCE]['T'][0]:.3g})" if trained else
               "and an estimator that perturbs G's parameters instead did not train the "
               f"quantized G better than leaving it (W1 {w1[ES_ARM]['T'][0]:.3g} against "
               f"{w1[BLIND_ARM]['T'][0]:.3g})")
            + ("; where it ends is budget-dependent, as not every arm had settled between "
               "T/2 and T" if outcome == BUDGET_DEPENDENT else "") + ".")
        if theory == "disagrees":
            answer = answer[:-1] + ", though the gradient statistics disagree with theory."
        changes = (
            "A G whose output is not a step function of θ everywhere (a straight-through "
            "rounding, or noise added before the rounding) gives output-space estimators "
            "their signal back. The parameter-space estimator's variance grows with the "
            "number of parameters (for this 2-parameter G it is cheap; for a network it "
            "needs many pairs per step); a smaller σ lowers its smoothing bias but, with a "
            "quantized G, starves it of cells crossed. A D that sees only x (not x²) "
            "cannot ask for the right scale, and the differentiable G then collapses too.")
        return Verdict("\n".join(lines), numbers, outcome, answer=answer,
                       convergence=convergence_record(decision, es_vs_blind),
                       changes=changes)

    def figure(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]):
        table, runs = data["gradients"], data["training"]
        fig, axes = new_figure(1, 2, width=14, height=4.0)
        ax = axes[0]
        settings_seen = list(dict.fromkeys(table["setting"]))
        names = list(dict.fromkeys(table["estimator"]))
        width = 0.8 / len(names)
        for i, (_, sdf) in enumerate(table.groupby("setting", sort=False)):
            for _, r in sdf.iterrows():
                j = names.index(r["estimator"])
                x = i + (j - (len(names) - 1) / 2) * width
                y = r["bias"] if r["reference_norm"] == 0 else r["reference_norm"]
                ax.bar(x, max(y, 1e-9), width=width * 0.9, color=f"C{j}",
                       label=r["estimator"] if i == 1 else None)
                if r["exact_mean_grad_norm"] == r["exact_mean_grad_norm"]:
                    ax.plot([x - width / 2, x + width / 2], [r["exact_mean_grad_norm"]] * 2,
                            color="k", lw=1.5)
        ax.set_yscale("log")
        ax.set_xticks(range(len(settings_seen)), settings_seen, fontsize=8)
        ax.set_ylabel("‖E g‖ (floor 1e-9 = exactly 0)")
        ax.legend(fontsize=7)
        ax = axes[1]
        for i, a in enumerate(ARMS):
            for j, b in enumerate(("T/2", "T")):
                v = runs[(runs.arm == a) & (runs.budget == b)]["w1"]
                x = i + (j - 0.5) * 0.3
                ax.scatter(np.full(len(v), x), v, s=10, alpha=0.4, color=f"C{i}")
                m, lo, hi = mean_ci(v, low=0)
                ax.errorbar([x], [m], yerr=[[m - lo], [hi - m]], fmt="s" if b == "T" else "o",
                            mfc="none" if b == "T/2" else None, capsize=3, color=f"C{i}")
        ax.axhline(rounding_floor(4.0, 1.25, settings["rounding_step"]), color="grey",
                   ls="--", lw=0.8, label="W1 of the data's own rounding")
        ax.set_yscale("log")
        ax.set_xticks(range(len(ARMS)), list(ARMS), fontsize=7)
        ax.set(ylabel="W1 to N(4, 1.25²)", title="training at T/2 (○) and T (■)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig, ("Left: norm of each estimator's mean G gradient on gaussian1d at "
                     "initialisation (z fixed); with a quantized D or G the backprop gradient "
                     "is 0, bars at the 1e-9 floor are estimators that return exactly zero, "
                     "black ticks the closed-form smoothed gradients. Right: W1 of three "
                     "training arms at T/2 and T (dots: seeds; mean and 95% interval); the "
                     "dashed line is the best a G rounded to the grid can reach.")
