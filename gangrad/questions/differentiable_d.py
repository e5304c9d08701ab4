"""What happens to each estimator when D is not differentiable in its input (it quantizes
its input), and when G is not differentiable?

Experiment: ``gaussian1d`` at initialisation, z fixed, four settings of the cost
``f(x) = softplus(−D(x))``: the ordinary D; D that rounds its input to a grid of step
``h`` (piecewise constant in x: zero derivative almost everywhere); and G whose output is
rounded likewise (zero derivative in its parameters). For each estimator the gradient
statistics give ``‖E g‖`` (the reference is the backprop gradient, which quantization
makes exactly 0, so the bias column *is* the norm of the mean gradient) with its
interval. Analysis: an estimator "sees a signal" when the interval of ``‖E g‖`` excludes
0, is "blind" when every replicate is exactly 0. With a quantized D the smoothed objective
``E f(G(z) + σε)`` still has a non-zero gradient, which only black-box estimators reach.

Theory, checked on the data (outcome ``agrees``/``disagrees``): through a D that rounds its
input, ``∂f/∂x = 0`` almost everywhere, so every backprop-based estimator (pathwise,
smoothing, reparam) returns an exactly zero gradient; the score function estimates the
gradient of the smoothed objective, which for the rounding grid ``h`` is exact in closed
form (Goodfellow et al., 2014, eq. 1 with a piecewise-constant f):

.. math:: E_ε f(⌊(μ + σε)/h⌉h) = Σ_k f(kh)·[Φ(((k + ½)h − μ)/σ) − Φ(((k − ½)h − μ)/σ)],

so its ``‖E g‖`` interval must hold the exact norm; and when G's output is rounded, G's
own Jacobian is 0 and every estimator is exactly blind.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from gangrad.plotting import new_figure
from gangrad.questions._base import AbstractQuestion, Verdict

STEP = 0.5  # the rounding grid
SPECS = [("pathwise", {}), ("smoothing", {"sigma": 0.3}), ("reparam", {}),
         ("score_function", {"sigma": 0.3, "baseline": "mean"})]
DIFFERENTIABLE = "differentiable D and G"


class Quantized(nn.Module):
    """``module(round(x / h)·h)``: piecewise constant in ``x``."""

    def __init__(self, module: nn.Module, h: float = STEP, before: bool = True) -> None:
        super().__init__()
        self.module, self.h, self.before = module, h, before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.before:
            return self.module(torch.round(x / self.h) * self.h)
        return torch.round(self.module(x) / self.h) * self.h


def exact_quantized_gradient(G: nn.Module, D: nn.Module, z: torch.Tensor, sigma: float,
                             h: float = STEP) -> torch.Tensor:
    """``∇_θ mean_i E_ε f(⌊(G(z_i) + σε)/h⌉h)`` for ``f = softplus(−D)`` (1-D output), by
    the closed form in the module docstring: float64, flat over G's parameters."""
    G64, D64 = copy.deepcopy(G).double(), copy.deepcopy(D).double()
    D64.requires_grad_(False)
    mu = G64(z.double())[:, 0]  # B
    lo = math.floor((float(mu.detach().min()) - 12 * sigma) / h)
    hi = math.ceil((float(mu.detach().max()) + 12 * sigma) / h)
    k = torch.arange(lo, hi + 1, dtype=torch.float64)  # the grid points reachable
    with torch.no_grad():
        fk = nn.functional.softplus(-D64((k * h)[:, None]))  # K
    cell = (torch.special.ndtr(((k + 0.5) * h - mu[:, None]) / sigma)
            - torch.special.ndtr(((k - 0.5) * h - mu[:, None]) / sigma))  # B x K
    loss = (cell * fk).sum(1).mean()
    params = list(G64.parameters())
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])


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
    quick = {"replicates": 4000, "rounding_step": STEP}
    full = {"replicates": 20_000, "rounding_step": STEP}

    def experiment(self, settings: dict[str, Any], seed: int) -> pd.DataFrame:
        from gangrad import tasks
        from gangrad.measure import gradient_stats

        task = tasks.create("gaussian1d")
        torch.manual_seed(seed)
        G, D = task.make_generator((1,)), task.make_discriminator()
        with torch.no_grad():  # a D that separates real from fake, so f has a slope to find
            D.linear.weight.fill_(1.5)
            D.linear.bias.fill_(-3.0)
        h = settings["rounding_step"]
        cases = {DIFFERENTIABLE: (G, D),
                 "D quantizes its input": (G, Quantized(copy.deepcopy(D), h)),
                 "G's output quantized": (Quantized(copy.deepcopy(G), h, before=False), D)}
        rows = []
        for setting, (g, d) in cases.items():
            for key, hyper in SPECS:
                if key == "reparam" and isinstance(g, Quantized):
                    continue  # reparam needs G's own head; the rounded G has none
                df = gradient_stats(task, [(key, hyper)], G=copy.deepcopy(g),
                                    D=copy.deepcopy(d), replicates=settings["replicates"],
                                    batch_size=64, seed=seed, timing=False)
                t = df[df["layer"] == "total"].iloc[0]
                rows.append({"setting": setting, "estimator": t["estimator"],
                             "reference": t["reference"], "reference_norm": t["reference_norm"],
                             "mean_grad_norm": t["bias"] if t["reference_norm"] == 0 else None,
                             "bias": t["bias"], "bias_lo": t["bias_lo"], "bias_hi": t["bias_hi"],
                             "variance": t["variance"], "cosine": t["cosine"]})
        out = pd.DataFrame(rows)
        # the z batch gradient_stats holds fixed (its seed + 1)
        z = task.sample_latent(64, generator=torch.Generator().manual_seed(seed + 1))
        sigma = dict(SPECS)["score_function"]["sigma"]
        exact = float(exact_quantized_gradient(G, D, z, sigma, h).norm())
        out["exact_mean_grad_norm"] = np.where(
            (out["setting"] == "D quantizes its input")
            & out["estimator"].str.startswith("score_function"), exact, np.nan)
        return out

    def analyse(self, table: pd.DataFrame, settings: dict[str, Any]) -> Verdict:
        parts, numbers = [], {}
        for setting, sdf in table.groupby("setting", sort=False):
            if setting == DIFFERENTIABLE:
                continue
            for _, r in sdf.iterrows():
                numbers[f"{setting} | {r['estimator']}"] = {
                    "mean_grad_norm": [r["bias"], r["bias_lo"], r["bias_hi"]],
                    "variance": r["variance"], "state": _state(r)}
            blind = [r["estimator"] for _, r in sdf.iterrows()
                     if _state(r).startswith("blind")]
            seeing = [f"{r['estimator']} (‖E g‖ = {r['bias']:.3g}, 95% CI {r['bias_lo']:.3g}–"
                      f"{r['bias_hi']:.3g})" for _, r in sdf.iterrows()
                      if _state(r) == "sees a signal"]
            parts.append(f"when {setting}: the backprop gradient is exactly 0; "
                         + (f"{', '.join(blind)} return exactly zero gradients" if blind else
                            "no estimator is exactly zero")
                         + ("; only " + ", ".join(seeing) + " still see a training signal"
                            if seeing else "; no estimator resolves a non-zero signal"))
        checks = []
        for _, r in table[table.setting != DIFFERENTIABLE].iterrows():
            quantized_d = r["setting"] == "D quantizes its input"
            if r["estimator"].startswith("score_function") and quantized_d:
                exact = r["exact_mean_grad_norm"]
                checks.append(r["bias_lo"] <= exact <= r["bias_hi"] and exact > 0)
                numbers["D quantizes its input | exact smoothed gradient norm"] = exact
            else:
                checks.append(_state(r).startswith("blind"))
        outcome = "agrees" if all(checks) else "disagrees"
        sf = table[table["exact_mean_grad_norm"].notna()].iloc[0]
        parts.append("the score function's ‖E g‖ through the quantized D "
                     + ("matches" if outcome == "agrees" else "is checked against")
                     + f" the exact gradient of the smoothed objective, "
                       f"{sf['exact_mean_grad_norm']:.3g} (closed form over the rounding "
                       "cells)")
        ok = table[table.setting == DIFFERENTIABLE]
        text = ("; ".join(parts) + f". With a differentiable D and G every estimator sees the "
                f"gradient (cosine to backprop {ok['cosine'].min():.3f}–"
                f"{ok['cosine'].max():.3f}). Backprop-based estimators need D differentiable "
                "in x; a non-differentiable G stops every estimator here, since all of them "
                "differentiate G's output with respect to its parameters.")
        return Verdict(text, numbers, outcome)

    def figure(self, table: pd.DataFrame, settings: dict[str, Any]):
        fig, ax = new_figure(width=9, height=3.8)
        settings_seen = list(dict.fromkeys(table["setting"]))
        for i, (_, sdf) in enumerate(table.groupby("setting", sort=False)):
            for j, (_, r) in enumerate(sdf.iterrows()):
                x = i + (j - 1.5) * 0.18
                y = r["bias"] if r["reference_norm"] == 0 else r["reference_norm"]
                ax.bar(x, max(y, 1e-9), width=0.16, color=f"C{j}",
                       label=r["estimator"] if i == 1 else None)
        ax.set_yscale("log")
        ax.set_xticks(range(len(settings_seen)), settings_seen, fontsize=8)
        ax.set_ylabel("‖E g‖ (floor 1e-9 = exactly 0)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig, ("Norm of each estimator's mean G gradient on gaussian1d at initialisation "
                     "(z fixed). With a quantized D or G the backprop gradient is 0; bars at "
                     "the 1e-9 floor are estimators that return exactly zero.")
