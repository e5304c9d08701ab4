"""Should D and G be updated at the same time from the same state, or in turn (D on odd
iterations, G on even), and does it help to take k D steps per G step?

Experiment: ``gaussian1d`` with a D on ``x`` and ``x²`` (a game whose equilibrium is the
data, see :mod:`gangrad.questions.linear_gan`), the same seeds for every schedule
(:class:`gangrad.train.TrainConfig`): ``update_order="alternating"`` with
``d_steps = k ∈ {1, 2, 5}`` (each G step descends through the D just updated;
Gauss–Seidel) and ``update_order="simultaneous"`` with ``k = 1`` (D's and G's gradients
both taken at the iteration's starting state; Jacobi). All runs take the same number of G
steps and draw the same latents and data in the same order, so the runs of a seed are
paired; D steps cost extra time, which is reported.

Theory (Mescheder, Nowozin & Geiger, 2017, "The numerics of GANs"; Mescheder, Geiger &
Nowozin, 2018, "Which training methods for GANs do actually converge?", §2, the Dirac-GAN).
Data ``δ₀``, ``G = θ`` (a point), ``D(x) = σ(ψ·x)``, plain gradient steps of size ``h``.
Near the equilibrium ``(0, 0)`` the vector field is a rotation,
``(θ, ψ) ↦ (θ + hψ/2, ψ − hθ/2)`` for the simultaneous step, whose modulus is
``√(1 + h²/4) > 1``: the iterates spiral **out** whatever ``h``. Alternating steps give
``[[1 − h²/4, h/2], [−h/2, 1]]``, determinant 1 and trace ``2 − h²/4``: for ``h < 4``
both eigenvalues lie **on** the unit circle, so the iterates stay bounded (and circle).
:func:`dirac_gan` runs both through :func:`gangrad.train.train_step` itself and the
verdict reports the measured growth beside the theory's.
Verdict: paired comparisons (W1, the task's margin) of alternating against simultaneous,
and of k = 2, 5 against k = 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from gangrad.plotting import new_figure
from gangrad.questions._arms import Arm, comparison_numbers, paired, sentence, train_arms
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.spaces import Continuous
from gangrad.tasks import AbstractTask, Metric
from gangrad.tasks._nets import Generator

__all__ = ["DiracGAN", "UpdateSchedule", "dirac_gan", "dirac_growth"]

ALTERNATING, SIMULTANEOUS = "alternating", "simultaneous"


class _Slope(nn.Module):
    """``x (B, 1) -> ψ·x (B,)``: the Dirac-GAN's discriminator logit."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)


class DiracGAN(AbstractTask):
    """Mescheder et al.'s Dirac-GAN: data ``δ₀``, ``G(z) = w·z + θ`` trained with
    ``latent="none"`` (so ``G = θ``), ``D(x) = σ(ψ·x)``. Its equilibrium is
    ``θ = ψ = 0``."""

    name = "dirac"
    description = "data at 0, G a point, a one-slope D (Mescheder et al., 2018)"
    metrics = {"distance": Metric(False, low=0.0)}

    def __init__(self) -> None:
        self.space = Continuous(1)
        self.latent_dim = 1

    def sample_real(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.zeros(n, 1)

    def make_generator(self, param_shape: tuple[int, ...]) -> nn.Module:
        return Generator(nn.Identity(), 1, param_shape)

    def make_discriminator(self) -> nn.Module:
        return _Slope()

    def evaluate(self, x: torch.Tensor) -> dict[str, float]:
        return {"distance": float(x.double().mean().abs())}


def dirac_growth(h: float, order: str) -> float:
    """Spectral radius of one linearised Dirac-GAN step of size ``h`` (module doc):
    ``√(1 + h²/4)`` simultaneous; 1 alternating (for ``h < 4``)."""
    if order == SIMULTANEOUS:
        return math.sqrt(1 + h * h / 4)
    m = np.array([[1 - h * h / 4, h / 2], [-h / 2, 1.0]])
    return float(np.abs(np.linalg.eigvals(m)).max())


def dirac_gan(order: str, h: float = 0.1, steps: int = 400, start: float = 0.01
              ) -> np.ndarray:
    """``(θ, ψ)`` after each of ``steps`` iterations of :func:`gangrad.train.train_step`
    on :class:`DiracGAN` with plain SGD of step ``h`` for D and G, from ``θ = start``,
    ``ψ = 0``; ``(steps + 1, 2)``."""
    from gangrad import estimators
    from gangrad.train import TrainConfig, TrainState, train_step

    task, est = DiracGAN(), estimators.create("pathwise")
    cfg = TrainConfig(steps=steps, batch_size=2, lr_g=h, lr_d=h, d_steps=1, latent="none",
                      update_order=order, device="cpu").resolved(task)
    state = TrainState.fresh(task, est, 0, torch.device("cpu"))
    with torch.no_grad():
        state.G.head.linear.bias.fill_(start)
        state.D.linear.weight.fill_(0.0)
    state.opt_g = torch.optim.SGD(state.G.parameters(), lr=h)
    state.opt_d = torch.optim.SGD(state.D.parameters(), lr=h)
    path = [(start, 0.0)]
    for _ in range(steps):
        train_step(state, task, cfg)
        path.append((float(state.G.head.linear.bias.detach()),
                     float(state.D.linear.weight.detach())))
    return np.array(path)


def _arms(settings: dict[str, Any]) -> list[Arm]:
    task = {"features": "quadratic"}
    arms = [Arm(f"{ALTERNATING}, k={k}", "gaussian1d", task, train={"d_steps": k})
            for k in settings["d_steps"]]
    arms.append(Arm(f"{SIMULTANEOUS}, k=1", "gaussian1d", task,
                    train={"d_steps": 1, "update_order": SIMULTANEOUS}))
    return arms


class UpdateSchedule(AbstractQuestion):
    name = "update-schedule"
    question = ("Should D and G be updated every iteration from the same state, or in turn "
                "(D on odd iterations, G on even), and do k D steps per G step help?")
    origin = ("How is the generator in a GAN trained? 'should we update D and G every time "
              "or D on odd iterations and G on even' (Cross Validated 237944)")
    quick = {"seeds": 10, "steps": 1500, "d_steps": [1, 2, 5], "dirac_h": 0.1,
             "dirac_steps": 400}
    full = {"seeds": 30, "steps": 4000, "d_steps": [1, 2, 5], "dirac_h": 0.1,
            "dirac_steps": 2000}

    def experiment(self, settings: dict[str, Any], seed: int) -> dict[str, pd.DataFrame]:
        seeds = list(range(seed, seed + settings["seeds"]))
        finals = train_arms(_arms(settings), seeds, settings["steps"])
        h, n = settings["dirac_h"], settings["dirac_steps"]
        dirac = []
        for order in (ALTERNATING, SIMULTANEOUS):
            path = dirac_gan(order, h, n)
            radius = np.hypot(path[:, 0], path[:, 1])
            dirac += [{"order": order, "step": t, "theta": path[t, 0], "psi": path[t, 1],
                       "radius": radius[t]} for t in range(len(path))]
        return {"finals": finals, "dirac": pd.DataFrame(dirac)}

    def analyse(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]) -> Verdict:
        from gangrad import tasks

        finals, dirac = data["finals"], data["dirac"]
        margin = tasks.create("gaussian1d").metric("w1").margin
        alt1, sim = f"{ALTERNATING}, k=1", f"{SIMULTANEOUS}, k=1"
        order = paired(finals, [alt1], sim, "w1", False, margin)[alt1]
        ks = [f"{ALTERNATING}, k={k}" for k in settings["d_steps"] if k != 1]
        more = paired(finals, ks, alt1, "w1", False, margin)
        h, n = settings["dirac_h"], settings["dirac_steps"]
        growth = {o: float(g["radius"].iloc[-1] / g["radius"].iloc[0]) ** (1 / n)
                  for o, g in dirac.groupby("order")}
        theory = {o: dirac_growth(h, o) for o in (ALTERNATING, SIMULTANEOUS)}
        w1 = finals.groupby("arm")["w1"].mean()
        time_s = finals.groupby("arm")["elapsed_s"].mean()
        text = (
            f"Dirac-GAN, plain gradient steps h = {h}: simultaneous updates spiral out by "
            f"{growth[SIMULTANEOUS]:.5f} per step (theory √(1 + h²/4) = "
            f"{theory[SIMULTANEOUS]:.5f}), alternating ones keep their distance "
            f"({growth[ALTERNATING]:.5f} per step; theory {theory[ALTERNATING]:.5f}). On "
            f"gaussian1d with a D on x, x² ({settings['seeds']} seeds, {settings['steps']} G "
            f"steps, Adam): {sentence(order, 'W1')} (mean W1 {w1[alt1]:.3f} against "
            f"{w1[sim]:.3f}). D steps per G step: "
            + "; ".join(f"{sentence(more[k], 'W1')} (mean W1 {w1[k]:.3f}, training time "
                        f"×{time_s[k] / time_s[alt1]:.1f})" for k in ks)
            + ".")
        numbers = {"alternating_vs_simultaneous": comparison_numbers(order),
                   "d_steps_vs_1": {k: comparison_numbers(c) for k, c in more.items()},
                   "w1_mean": w1.to_dict(), "train_time_s": time_s.to_dict(),
                   "dirac_growth_per_step": growth, "dirac_theory": theory}
        return Verdict(text, numbers, order.outcome)

    def figure(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]):
        finals, dirac = data["finals"], data["dirac"]
        fig, axes = new_figure(1, 2, width=11, height=3.8)
        for i, (order, g) in enumerate(dirac.groupby("order", sort=False)):
            axes[0].plot(g["theta"], g["psi"], color=f"C{i}", lw=0.8, label=order)
        axes[0].plot([0], [0], "k+", ms=10)
        axes[0].set(xlabel="θ (G's point)", ylabel="ψ (D's slope)", aspect="equal",
                    title=f"Dirac-GAN, SGD h = {settings['dirac_h']}")
        axes[0].legend(fontsize=8)
        labels = list(dict.fromkeys(finals["arm"]))
        wide = finals.pivot(index="seed", columns="arm", values="w1")[labels]
        for _, row in wide.iterrows():
            axes[1].plot(range(len(labels)), row.values, color="grey", lw=0.6, marker="o", ms=3)
        axes[1].plot(range(len(labels)), wide.mean().values, color="C3", lw=2, marker="s",
                     label="mean")
        axes[1].set_xticks(range(len(labels)), labels, rotation=15, fontsize=8)
        axes[1].set(ylabel="final W1", yscale="log", title="gaussian1d, D on x and x²")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        return fig, ("Left: the Dirac-GAN's (θ, ψ) under simultaneous and alternating "
                     "gradient steps from θ = 0.01 (+: the equilibrium). Right: final W1 per "
                     "seed (grey lines join one seed's runs; red: mean) for each schedule.")
