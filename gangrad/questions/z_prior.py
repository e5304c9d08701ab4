"""Why does G need a random input z, does it matter that z ~ N(0, 1) rather than uniform,
and does the latent dimension matter?

Experiment: the same G and D trained from the same seeds with three laws of G's input
(:data:`gangrad.train.config.LATENTS`): none (``z = 0``, a constant input), ``N(0, I)``
and the uniform law on ``[−√3, √3]^d`` (same mean and covariance, so the two differ only in
shape), on two tasks:

- ``gaussian1d`` with a D on ``x`` and ``x²`` (so D can ask for the right scale; several D
  steps per G step): W1 to the data;
- ``ring8``: modes covered, and the latent dimension (1, 2 and more) with ``N(0, I)``.

Theory. G is deterministic, so its output law is the push-forward of z's law: without z it
is a point mass, whose W1 to ``N(μ, s²)`` is at least ``E|X − median| = s·√(2/π)``
(the median minimises the mean absolute deviation). The linear G of ``gaussian1d`` maps a
uniform z to a uniform law, whose W1 to ``N(μ, s²)`` is at least
``s·min_h ∫₀¹ |Φ⁻¹(u) − h(2u − 1)| du ≈ 0.120·s`` (:func:`uniform_floor`); a Gaussian z
reaches 0. With a non-linear G (ring8) any continuous law can be pushed onto the modes, so
there the prior's shape should matter little, while no z still gives one point.
Verdict: paired comparisons (W1, modes) of N(0, I) against uniform and against no z, with
the task's margins, and whether the measured W1 respects the floors. The outcome is
N(0, 1) against uniform on ``gaussian1d``. Quick sizes fit about half a minute on 2 CPU
cores: ring8 with a smaller G and D (64 × 2), 600 steps, latent dimensions in the full run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from gangrad.plotting import new_figure
from gangrad.questions._arms import Arm, comparison_numbers, paired, sentence, train_arms
from gangrad.questions._base import AbstractQuestion, Verdict

__all__ = ["ZPrior", "point_mass_floor", "uniform_floor"]

LOC, SCALE = 4.0, 1.25  # gaussian1d's data
RING8 = {"hidden": 64, "depth": 2}  # a smaller G and D than ring8's default, to fit the budget
RING8_TRAIN = {"batch_size": 128, "lr_g": 2e-3, "lr_d": 2e-3}


def point_mass_floor(scale: float) -> float:
    """``min_c W1(δ_c, N(μ, scale²)) = scale·√(2/π)``, at ``c = μ``."""
    return scale * math.sqrt(2 / math.pi)


def uniform_floor(scale: float, grid: int = 100_000) -> tuple[float, float]:
    """``min_h W1(U[μ − h, μ + h], N(μ, scale²))`` and the minimising half-width ``h``.

    In one dimension ``W1 = ∫₀¹ |F⁻¹(u) − G⁻¹(u)| du``; centring the uniform on ``μ`` is
    optimal by symmetry. The integral is a midpoint rule on ``grid`` points in ``u``.
    """
    u = (np.arange(grid) + 0.5) / grid
    q = stats.norm.ppf(u)
    res = optimize.minimize_scalar(lambda h: float(np.mean(np.abs(q - h * (2 * u - 1)))),
                                   bounds=(0.1, 4.0), method="bounded",
                                   options={"xatol": 1e-8})
    return scale * float(res.fun), scale * float(res.x)


def _arms(settings: dict[str, Any]) -> list[Arm]:
    g1d = {"features": "quadratic"}
    arms = [Arm(f"gaussian1d: z {latent}", "gaussian1d", g1d,
                train={"latent": latent, "d_steps": settings["d_steps"],
                       "steps": settings["gaussian1d_steps"]})
            for latent in ("none", "normal", "uniform")]
    arms += [Arm(f"ring8: z {latent}", "ring8", {**RING8, "latent_dim": 2},
                 train={"latent": latent, **RING8_TRAIN, "steps": settings["ring8_steps"]})
             for latent in ("none", "normal", "uniform")]
    arms += [Arm(f"ring8: z normal, dim {d}", "ring8", {**RING8, "latent_dim": d},
                 train={**RING8_TRAIN, "steps": settings["ring8_steps"]})
             for d in settings["ring8_dims"] if d != 2]
    return arms


class ZPrior(AbstractQuestion):
    name = "z-prior"
    question = ("Why does the generator need a random input z, does it matter that "
                "z ~ N(0, 1) rather than uniform, and does the latent dimension matter?")
    origin = ("Some confusion on learning of Generative Adversarial Networks: why is z "
              "needed, why N(0, 1), is z learned? (Cross Validated 303368)")
    quick = {"seeds": 12, "gaussian1d_steps": 1200, "d_steps": 5, "ring8_steps": 600,
             "ring8_dims": [2]}
    full = {"seeds": 24, "gaussian1d_steps": 4000, "d_steps": 5, "ring8_steps": 4000,
            "ring8_dims": [1, 2, 8, 32]}

    def experiment(self, settings: dict[str, Any], seed: int) -> pd.DataFrame:
        seeds = list(range(seed, seed + settings["seeds"]))
        return train_arms(_arms(settings), seeds, eval_samples=2500)

    def analyse(self, table: pd.DataFrame, settings: dict[str, Any]) -> Verdict:
        from gangrad import tasks

        w1_margin = tasks.create("gaussian1d").metric("w1").margin
        modes_margin = tasks.create("ring8").metric("modes").margin
        g_normal, r_normal = "gaussian1d: z normal", "ring8: z normal"
        g = paired(table, ["gaussian1d: z uniform", "gaussian1d: z none"], g_normal, "w1",
                   False, w1_margin)
        dims = [lab for lab in dict.fromkeys(table["arm"]) if ", dim " in lab]
        r = paired(table, ["ring8: z uniform", "ring8: z none", *dims], r_normal, "modes",
                   True, modes_margin)
        floors = {"none": point_mass_floor(SCALE), "uniform": uniform_floor(SCALE)[0],
                  "normal": 0.0}
        w1 = {lat: table[table.arm == f"gaussian1d: z {lat}"]["w1"].dropna()
              for lat in floors}
        below = {lat: int((w1[lat] < floors[lat] - 0.02).sum()) for lat in floors}
        modes = {lab: float(table[table.arm == lab]["modes"].mean())
                 for lab in table["arm"].unique() if lab.startswith("ring8")}
        uni = g["gaussian1d: z uniform"]
        # normal against uniform on gaussian1d decides: the question's "why N(0, 1)?"
        outcome = {"better": "worse", "worse": "better"}.get(uni.outcome, uni.outcome)
        text = (
            f"Without z G emits one point: on gaussian1d W1 "
            f"{w1['none'].mean():.3f} (theory floor s·√(2/π) = {floors['none']:.3f}); "
            f"{sentence(g['gaussian1d: z none'], 'W1')}. On ring8 it covers "
            f"{modes['ring8: z none']:.2g} of 8 modes on average against "
            f"{modes[r_normal]:.2g} with z ~ N(0, I): {sentence(r['ring8: z none'], 'modes')}. "
            f"Shape of the prior: with gaussian1d's linear G a uniform z gives a uniform "
            f"output, W1 ≥ {floors['uniform']:.3f}, while N(0, 1) can reach 0 (measured "
            f"{w1['normal'].mean():.3f} against {w1['uniform'].mean():.3f}); "
            f"{sentence(uni, 'W1')}, so N(0, 1) is {outcome} there. With ring8's non-linear G: "
            f"{sentence(r['ring8: z uniform'], 'modes')}. "
            + ("Latent dimension on ring8 (N(0, I), against dimension 2): "
               + "; ".join(sentence(r[d], "modes") for d in dims) + ". " if dims else
               "(Latent dimensions: in the full run.) ")
            + f"Seeds below a theory floor (by more than 0.02): {sum(below.values())}. "
            "z is not learned: it is the fixed source of randomness that G shapes; its law "
            "matters when G is too simple to reshape it.")
        numbers = {"gaussian1d_w1": {lab: comparison_numbers(c) for lab, c in g.items()},
                   "ring8_modes": {lab: comparison_numbers(c) for lab, c in r.items()},
                   "w1_floor": floors, "w1_mean": {k: float(v.mean()) for k, v in w1.items()},
                   "seeds_below_floor": below, "modes_mean": modes}
        return Verdict(text, numbers, outcome)

    def figure(self, table: pd.DataFrame, settings: dict[str, Any]):
        fig, axes = new_figure(1, 2, width=11, height=3.8)
        for ax, task, metric in ((axes[0], "gaussian1d", "w1"), (axes[1], "ring8", "modes")):
            sub = table[table.task == task]
            labels = list(dict.fromkeys(sub["arm"]))
            wide = sub.pivot(index="seed", columns="arm", values=metric)[labels]
            for _, row in wide.iterrows():
                ax.plot(range(len(labels)), row.values, color="grey", lw=0.6, marker="o", ms=3)
            ax.plot(range(len(labels)), wide.mean().values, color="C3", lw=2, marker="s",
                    label="mean")
            ax.set_xticks(range(len(labels)), [lab.split(": ")[1] for lab in labels],
                          rotation=15, fontsize=8)
            ax.set(title=task, ylabel=metric)
            ax.legend(fontsize=8)
        axes[0].axhline(point_mass_floor(SCALE), color="k", ls=":", lw=0.8)
        axes[0].axhline(uniform_floor(SCALE)[0], color="k", ls="--", lw=0.8)
        axes[0].set_yscale("log")
        fig.tight_layout()
        return fig, ("Final quality per seed (grey lines join one seed's runs; red: mean) for "
                     "each law of G's input. Left: gaussian1d W1 (dotted: the point-mass "
                     "floor s·√(2/π); dashed: the best uniform's floor). Right: ring8 modes "
                     "covered, by prior and latent dimension.")
