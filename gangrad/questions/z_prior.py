"""Why does G need a random input z, does it matter that z ~ N(0, 1) rather than uniform,
and does the latent dimension matter?

Experiment: the same G and D trained from the same seeds with three laws of G's input
(:data:`gangrad.train.config.LATENTS`): none (``z = 0``, a constant input), ``N(0, I)``
and the uniform law on ``[−√3, √3]^d`` (same mean and covariance, so the two differ only in
shape), and with ``N(0, I)`` of several dimensions. D is an MLP on ``x``, so it sees the
whole output law, not only its first two moments (a logistic D on ``x`` and ``x²`` cannot
tell a uniform from a Gaussian of the same mean and variance). Settings:

- ``gaussian1d`` with its linear G, ``G(z) = w·z + b``: G can shift and scale z's law but
  not reshape it;
- ``gaussian1d`` with an MLP G: G can reshape z's law, so the prior's shape is an open
  question there; this setting decides the outcome, and tests the latent dimension;
- ``ring8`` (full run): eight modes, modes covered, priors and latent dimensions.

Theory. G is deterministic, so its output law is the push-forward of z's law: without z it
is a point mass, whose W1 to ``N(μ, s²)`` is at least ``E|X − median| = s·√(2/π)``
(the median minimises the mean absolute deviation), whatever G is. The linear G maps a
uniform z to a uniform law, whose W1 to ``N(μ, s²)`` is at least
``s·min_h ∫₀¹ |Φ⁻¹(u) − h(2u − 1)| du ≈ 0.120·s`` (:func:`uniform_floor`); a Gaussian z
reaches 0. A non-linear G can push any continuous law of any dimension onto a continuous
one-dimensional law (the inverse-CDF map), so there neither the shape nor the dimension of
z is forced to matter; a ReLU G maps the bounded uniform onto a bounded law, so it misses
the data's far tails, which W1 weighs little.

Verdict: in each setting every prior against ``N(0, I)`` of the task's latent dimension at
``T/2`` and ``T`` (paired, Holm-adjusted, the task's margin) under the convergence rule of
:mod:`gangrad.stats`, and whether the measured W1 respects the floors. The outcome is
N(0, 1) against uniform in the setting named by ``decides`` (an MLP G), or
``budget-dependent``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from gangrad.plotting import new_figure
from gangrad.questions._arms import Arm, at_budget, convergence_record, decide, train_budgets
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.stats import BUDGET_DEPENDENT

__all__ = ["ZPrior", "point_mass_floor", "uniform_floor"]

LOC, SCALE = 4.0, 1.25  # gaussian1d's data
NORMAL, UNIFORM, NONE = "z normal", "z uniform", "z none"
FLIP = {"better": "worse", "worse": "better"}
FLOOR_TOLERANCE = 0.02  # W1 of 2,500 samples lies this far below the law's W1 only by chance


def _bounded_by_floor(dec, reference: str, label: str, floor: float, below: int) -> bool:
    """Whether arm ``label`` is worse than ``reference`` at any budget by a theory floor: no
    run of it lies below ``floor`` (up to :data:`FLOOR_TOLERANCE`) at T/2 or T, while the
    reference has converged with its W1 interval below the floor at both budgets. Training
    longer cannot take an arm below its floor, so then its convergence does not matter."""
    ref = dec.convergence[reference]
    return (below == 0 and ref.converged and ref.half < floor and ref.end < floor
            and dec.half[label].lo > 0 and dec.end[label].lo > 0)


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



def _label(setting: str, arm: str) -> str:
    return f"{setting}: {arm}"


def _short(label: str) -> str:
    return label.rsplit(": ", 1)[1]


def _dim_label(d: int) -> str:
    return f"{NORMAL}, dim {d}"


def _arms(p: dict[str, Any]) -> list[Arm]:
    train = {**p["train"], "steps": p["steps"]}
    arms = [Arm(_label(p["setting"], f"z {latent}"), p["task"], p["params"],
                train={**train, "latent": latent}) for latent in p["latents"]]
    arms += [Arm(_label(p["setting"], _dim_label(d)), p["task"], {**p["params"], "latent_dim": d},
                 train=train) for d in p["dims"]]
    return arms


def _metric(p: dict[str, Any]) -> str:
    from gangrad import tasks

    return p.get("metric", next(iter(tasks.create(p["task"], **p["params"]).metrics)))


class ZPrior(AbstractQuestion):
    name = "z-prior"
    question = ("Why does the generator need a random input z, does it matter that "
                "z ~ N(0, 1) rather than uniform, and does the latent dimension matter?")
    origin = ("Some confusion on learning of Generative Adversarial Networks: why is z "
              "needed, why N(0, 1), is z learned? (Cross Validated 303368)")
    #: the MLP G trains with Adam without momentum (β₁ = 0; momentum feeds the rotation of
    #: game dynamics, Gidel et al., 2019, "Negative momentum for improved game dynamics"), a
    #: small step and 3 D steps per G step: with β₁ = 0.5 and one D step its W1 kept
    #: swinging between 0.05 and 1
    quick = {"seeds": 8, "decides": "gaussian1d, MLP G", "plan": [
        {"setting": "gaussian1d, linear G", "task": "gaussian1d",
         "params": {"features": "mlp"}, "steps": 1600,
         "train": {"batch_size": 256, "lr_g": 2e-2, "lr_d": 2e-2},
         "latents": ["normal", "uniform", "none"], "dims": []},
        {"setting": "gaussian1d, MLP G", "task": "gaussian1d",
         "params": {"features": "mlp", "generator": "mlp"}, "steps": 2000,
         "train": {"batch_size": 256, "lr_g": 2e-3, "lr_d": 2e-3, "beta1": 0.0,
                   "d_steps": 3},
         "latents": ["normal", "uniform"], "dims": [8]}]}
    full = {"seeds": 24, "decides": "gaussian1d, MLP G", "plan": [
        {"setting": "gaussian1d, linear G", "task": "gaussian1d",
         "params": {"features": "mlp"}, "steps": 8000,
         "train": {"batch_size": 256, "lr_g": 2e-2, "lr_d": 2e-2},
         "latents": ["normal", "uniform", "none"], "dims": []},
        {"setting": "gaussian1d, MLP G", "task": "gaussian1d",
         "params": {"features": "mlp", "generator": "mlp"}, "steps": 10000,
         "train": {"batch_size": 256, "lr_g": 2e-3, "lr_d": 2e-3, "beta1": 0.0,
                   "d_steps": 3},
         "latents": ["normal", "uniform", "none"], "dims": [2, 8, 32]},
        {"setting": "ring8", "task": "ring8", "params": {}, "steps": 10000,
         "train": {"batch_size": 256, "lr_g": 5e-4, "lr_d": 5e-4},
         "latents": ["normal", "uniform", "none"], "dims": [1, 8, 32]}]}

    def experiment(self, settings: dict[str, Any], seed: int) -> pd.DataFrame:
        seeds = list(range(seed, seed + settings["seeds"]))
        return pd.concat([train_budgets(_arms(p), seeds, eval_samples=2500)
                          .assign(setting=p["setting"]) for p in settings["plan"]],
                         ignore_index=True)

    def analyse(self, table: pd.DataFrame, settings: dict[str, Any]) -> Verdict:
        from gangrad import tasks

        lines, numbers, decisions, found = [], {}, [], {}
        for p in settings["plan"]:
            setting, metric = p["setting"], _metric(p)
            spec = tasks.create(p["task"], **p["params"]).metric(metric)
            sub = table[table.setting == setting]
            ref = _label(setting, NORMAL)
            others = [lab for lab in dict.fromkeys(sub["arm"]) if lab != ref]
            dec = decide(sub, others, ref, metric, spec.higher_is_better, spec.margin)
            decisions.append(dec)
            end = at_budget(sub, "T")
            means = end.groupby("arm", sort=False)[metric].mean()
            found[setting] = (dec, means, metric, {})
            numbers[setting] = {"metric": metric, "steps": p["steps"],
                                "mean_at_T": {_short(k): float(v) for k, v in means.items()},
                                "against_z_normal": {_short(lab): dec.numbers(lab)
                                                     for lab in others}}
            lines.append(f"- **{setting}** ({settings['seeds']} seeds, {p['steps']} steps, "
                         f"every arm the same optimiser settings): {metric} at T, " + ", ".join(
                             f"{_short(k)} {v:.3g}" for k, v in means.items()) + ".")
            lines += [f"  - {dec.sentence(lab).replace(setting + ': ', '')}." for lab in others]
            if p["task"] == "gaussian1d":
                floors = {NONE: point_mass_floor(SCALE)}
                if p["params"].get("generator", "linear") == "linear":
                    floors[UNIFORM] = uniform_floor(SCALE)[0]
                below, bounded = {}, {}
                for arm, floor in floors.items():
                    runs = sub[sub.arm == _label(setting, arm)]["w1"].dropna()  # both budgets
                    if len(runs):  # more than 0.02 below a floor would contradict the theory
                        below[arm] = int((runs < floor - FLOOR_TOLERANCE).sum())
                        bounded[arm] = _bounded_by_floor(dec, ref, _label(setting, arm), floor,
                                                         below[arm])
                        lines.append(
                            f"  - {arm}: W1 {runs.min():.3f} at the lowest over the seeds and "
                            f"both budgets, theory floor {floor:.3f}: {below[arm]} of "
                            f"{len(runs)} runs below it by more than {FLOOR_TOLERANCE}"
                            + (f"; as N(0, I) converged below that floor, {arm} is worse at "
                               f"any budget" if bounded[arm] else "") + ".")
                numbers[setting]["w1_floor"] = {k: floors[k] for k in below}
                numbers[setting]["runs_below_floor"] = below
                numbers[setting]["worse_at_any_budget_by_floor"] = bounded
                found[setting] = (dec, means, metric, bounded)
        decides = settings["decides"]
        dec = found[decides][0]
        uni = _label(decides, UNIFORM)
        outcome = FLIP.get(dec.outcomes[uni], dec.outcomes[uni])  # N(0, 1)'s side
        answer = self._answer(found, decides, outcome)
        changes = (
            "What G and D can do. A G that cannot reshape z (a linear G) forces the prior's "
            "shape onto the output, and then N(0, 1) wins on Gaussian data; a data law that is "
            "not Gaussian (bounded, or multi-modal) could reverse that. A D blind to shape (a "
            "logistic D on x and x²) cannot tell a uniform from a Gaussian of the same "
            "variance, and would call them equal. The latent dimension matters once it is "
            "below the data's intrinsic dimension, which a one-dimensional task cannot show. "
            "A budget at which an arm is still moving makes an outcome budget-dependent.")
        return Verdict("\n".join(lines), numbers, outcome, answer=answer,
                       convergence=convergence_record(*decisions), changes=changes)

    @staticmethod
    def _answer(found: dict[str, Any], decides: str, outcome: str) -> str:
        """One sentence from the outcomes: why z, the prior's shape, the dimension."""
        parts = []
        lin = next((s for s in found if "linear G" in s), None)
        if lin is not None and _label(lin, NONE) in found[lin][0].end:
            dec, means, metric, bounded = found[lin]
            none, normal = means[_label(lin, NONE)], means[_label(lin, NORMAL)]
            o = "worse at any budget" if bounded.get(NONE) else dec.outcomes[_label(lin, NONE)]
            parts.append(f"G needs z because without it G emits one point ({metric} "
                         f"{none:.3g} against {normal:.3g} with N(0, 1), {o}, the point "
                         f"mass's floor being s·√(2/π) = {point_mass_floor(SCALE):.3f})")
        word = {"equivalent": "ends equivalent to", "better": "ends better than",
                "worse": "ends worse than", "undetermined": "is not distinguished from",
                BUDGET_DEPENDENT: "is not decided against"}

        def versus(setting: str) -> tuple[str, str]:
            dec, means, metric, _ = found[setting]
            lab = _label(setting, UNIFORM)
            c, o = dec.end[lab], dec.outcomes[lab]
            return word[FLIP.get(o, o)], (
                f"{metric} {means[_label(setting, NORMAL)]:.3g} against {means[lab]:.3g}, "
                f"N(0, 1) − uniform {-c.difference:+.3g} [95% CI {-c.hi:+.3g}, {-c.lo:+.3g}]")

        if lin is not None and _label(lin, UNIFORM) in found[lin][0].end:
            w, numbers = versus(lin)
            parts.append(f"with a linear G, which cannot reshape z, N(0, 1) {w} uniform "
                         f"({numbers})")
        w, numbers = versus(decides)
        parts.append(f"with a G that can reshape z ({decides.split(', ', 1)[1]}), N(0, 1) "
                     f"{w} uniform ({numbers})")
        dec = found[decides][0]
        dims = [lab for lab in dec.end if ", dim " in lab]
        if dims:
            outs = {dec.outcomes[lab] for lab in dims}
            spread = ", ".join(
                f"dim {lab.rsplit(' ', 1)[1]} − dim 1 {dec.end[lab].difference:+.3g} [95% CI "
                f"{dec.end[lab].lo:+.3g}, {dec.end[lab].hi:+.3g}], {dec.outcomes[lab]}"
                for lab in dims)
            if outs == {"equivalent"}:
                parts.append(f"and the latent dimension does not matter there ({spread})")
            elif len(outs) == 1 and outs <= {"better", "worse"}:
                parts.append(f"and the latent dimension matters there ({spread})")
            else:
                parts.append(f"and whether the latent dimension matters there is not decided "
                             f"({spread})")
        text = "; ".join(parts)
        return text[0].upper() + text[1:] + "."

    def figure(self, table: pd.DataFrame, settings: dict[str, Any]):
        plan = settings["plan"]
        fig, axes = new_figure(1, len(plan), width=5.5 * len(plan), height=3.8, squeeze=False)
        for ax, p in zip(axes[0], plan, strict=True):
            setting, metric = p["setting"], _metric(p)
            end = at_budget(table[table.setting == setting], "T")
            labels = list(dict.fromkeys(end["arm"]))
            wide = end.pivot(index="seed", columns="arm", values=metric)[labels]
            for _, row in wide.iterrows():
                ax.plot(range(len(labels)), row.values, color="grey", lw=0.6, marker="o", ms=3)
            ax.plot(range(len(labels)), wide.mean().values, color="C3", lw=2, marker="s",
                    label="mean")
            half = at_budget(table[table.setting == setting], "T/2")
            ax.plot(range(len(labels)), half.groupby("arm")[metric].mean()[labels].values,
                    color="C0", lw=1, ls="--", marker="^", ms=4, label="mean at T/2")
            ax.set_xticks(range(len(labels)), [_short(lab) for lab in labels], rotation=15,
                          fontsize=8)
            ax.set(title=setting, ylabel=f"{metric} at T")
            if p["task"] == "gaussian1d":
                ax.axhline(point_mass_floor(SCALE), color="k", ls=":", lw=0.8)
                if p["params"].get("generator", "linear") == "linear":
                    ax.axhline(uniform_floor(SCALE)[0], color="k", ls="--", lw=0.8)
                ax.set_yscale("log")
            ax.legend(fontsize=8)
        fig.tight_layout()
        return fig, ("Quality at T per seed (grey lines join one seed's runs; red: mean; blue "
                     "dashed: mean at T/2) for each law of G's input. gaussian1d: W1, dotted "
                     "the point-mass floor s·√(2/π), dashed the best uniform's floor (linear G "
                     "only).")
