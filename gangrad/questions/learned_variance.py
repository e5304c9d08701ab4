"""Does learning the generator's conditional variance (``reparam``) train better or worse
than a fixed σ or σ = 0, and where does the learned σ go?

Goodfellow et al. (2014, §2) held G's conditional variance fixed and noted that the
reparameterization of Kingma & Welling (2014) and Rezende et al. (2014) "could allow one to
learn the conditional variance of the generator". Arms, trained from the same seeds (paired:
same D, data and latents; G differs only in its head), all with the same optimiser settings
and budget (none is tuned for itself):

- ``σ = 0`` (``pathwise``): the GAN as usually trained, the reference;
- ``σ = c`` (``smoothing``): a fixed conditional σ, ``x = G(z) + c·ε``;
- ``learned σ(z)`` (``reparam``): G's head emits a location and a log-scale per sample,
  ``x = loc(z) + exp(log_scale(z))·ε``;
- ``learned σ, shared``: the same, but the log-scale row of the head ignores z
  (:func:`shared_scale`), so σ is one learned number: ``x = loc(z) + σ·ε``.

On ``gaussian1d`` G is linear, so with ``σ(z)`` the output is a Gaussian *scale mixture*
``x = w·z + b + exp(v·z + c)·ε``: its mean and variance can match the data's while its
excess kurtosis ``> 0`` whenever ``v ≠ 0`` (a scale mixture of normals is leptokurtic;
Andrews & Mallows, 1974). Every arm's family contains the data ``N(μ, s²)`` (``v = 0`` and
``w² + σ² = s²``), so none is ruled out by what G can express; what decides is what D can
see:

- ``gaussian1d`` with an MLP D on ``x`` (the verdict's setting): D can see the whole law,
  tails included;
- ``gaussian1d`` with a logistic D on ``(x, x²)``: D sees only the first two moments (its
  best response is the log density ratio of two Gaussians), so a scale mixture with the
  right mean and variance is invisible to it: this setting shows what a blind D lets
  through;
- ``ring8`` (full run): modes of std 0.01 and a σ grid that includes the mode width; it
  reads the modes covered (the fraction of high-quality samples, which a wrong σ spoils,
  is in the table beside it).

Measured per run at ``T/2`` and ``T``: W1 (or the task's metric), the learned σ (mean over
a fixed batch of z), ``corr(z, log σ(z))``, and the excess kurtosis of G's output on 20,000
samples. Verdict: every arm against ``σ = 0`` at both budgets (paired, Holm-adjusted, the
task's margin) under the convergence rule of :mod:`gangrad.stats`; the outcome is
``learned σ(z)`` against ``σ = 0`` in the verdict's setting, or ``budget-dependent``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
import torch
from torch import nn

from gangrad.plotting import new_figure
from gangrad.questions._arms import (
    Arm,
    at_budget,
    convergence_record,
    decide,
    train_budgets,
)
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.stats import BUDGET_DEPENDENT, mean_ci
from gangrad.tasks._nets import Head

__all__ = ["LearnedVariance", "SharedScaleHead", "shared_scale"]

REFERENCE, LEARNED, SHARED = "σ = 0", "learned σ(z)", "learned σ, shared"
SAMPLES = 20_000  # G's output samples behind the kurtosis (its SE is about √(24/n) = 0.035)


class SharedScaleHead(Head):
    """A :class:`~gangrad.tasks._nets.Head` emitting ``(loc, log_scale)`` rows
    ``(B, 2, d)`` whose log-scale rows ignore the input: their weights are masked to zero,
    so ``log_scale`` is the bias alone, one learned number per coordinate, the same for
    every z."""

    def _weight(self, weight: torch.Tensor) -> torch.Tensor:
        d = self.param_shape[-1]
        return torch.cat([weight[..., :d, :], torch.zeros_like(weight[..., d:, :])], -2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = nn.functional.linear(h, self._weight(self.linear.weight), self.linear.bias)
        return out.reshape(h.shape[0], *self.param_shape)

    def stacked_forward(self, h: torch.Tensor, stack) -> torch.Tensor:
        weight = self._weight(stack.param("linear.weight"))  # S x out x in
        out = torch.baddbmm(stack.param("linear.bias").unsqueeze(1), h, weight.transpose(1, 2))
        return out.reshape(*h.shape[:2], *self.param_shape)


def shared_scale(task):
    """``task`` with generators whose location-and-log-scale head is a
    :class:`SharedScaleHead` (initialised as the task's own head, so a run from a seed
    starts where ``reparam``'s run from that seed starts, less the z-dependence of σ)."""
    make = task.make_generator

    def make_generator(param_shape):
        G = make(param_shape)
        head = G.head
        if len(head.param_shape) != 2 or head.param_shape[0] != 2:
            raise ValueError(f"shared_scale needs a (2, d) location-and-log-scale head, got "
                             f"{head.param_shape}")
        with torch.random.fork_rng(devices=[]):
            shared = SharedScaleHead(head.linear.in_features, head.param_shape)
        shared.load_state_dict(head.state_dict())
        G.head = shared.to(head.linear.weight.device)
        return G

    task.make_generator = make_generator
    return task


@dataclass(frozen=True)
class _SharedArm(Arm):
    """An arm whose task's G shares one learned σ across z (:func:`shared_scale`)."""

    def make_task(self):
        return shared_scale(super().make_task())


def _label(setting: str, arm: str) -> str:
    return f"{setting}: {arm}"


def _arms(p: dict[str, Any]) -> list[Arm]:
    train = {**p["train"], "steps": p["steps"]}
    s = p["setting"]
    arms = [Arm(_label(s, REFERENCE), p["task"], p["params"], "pathwise", {}, train)]
    arms += [Arm(_label(s, f"σ = {c:g}"), p["task"], p["params"], "smoothing", {"sigma": c},
                 train) for c in p["sigmas"]]
    arms += [Arm(_label(s, LEARNED), p["task"], p["params"], "reparam", {}, train),
             _SharedArm(_label(s, SHARED), p["task"], p["params"], "reparam", {}, train)]
    return arms


def _color(label: str) -> str:
    """One colour per kind of arm, the same in every panel and setting."""
    arm = _short(label)
    kinds = [REFERENCE, LEARNED, SHARED]
    return f"C{kinds.index(arm)}" if arm in kinds else "C3"


def _setting(label: str) -> str:
    return label.rsplit(": ", 1)[0]


def _short(label: str) -> str:
    return label.rsplit(": ", 1)[1]


def _metric(p: dict[str, Any]) -> str:
    from gangrad import tasks

    return p.get("metric", next(iter(tasks.create(p["task"], **p["params"]).metrics)))


class LearnedVariance(AbstractQuestion):
    name = "learned-variance"
    question = ("Does learning the generator's conditional variance (reparameterization) "
                "train better or worse than a fixed σ or σ = 0, and where does the learned σ "
                "go?")
    origin = ("Goodfellow et al. (2014), §2: learning the generator's conditional variance "
              "with the reparameterization of Kingma & Welling (2014) and Rezende et al. "
              "(2014)")
    #: the first setting of the plan decides the outcome
    quick = {"seeds": 8, "plan": [
        {"setting": "gaussian1d, D an MLP on x", "task": "gaussian1d",
         "params": {"features": "mlp"}, "steps": 1600,
         "train": {"batch_size": 256, "lr_g": 2e-2, "lr_d": 2e-2}, "sigmas": [0.5]},
        {"setting": "gaussian1d, D on x and x²", "task": "gaussian1d",
         "params": {"features": "quadratic"}, "steps": 1600,
         "train": {"batch_size": 256, "lr_g": 2e-2, "lr_d": 2e-2, "d_steps": 5},
         "sigmas": []}]}
    full = {"seeds": 24, "plan": [
        {"setting": "gaussian1d, D an MLP on x", "task": "gaussian1d",
         "params": {"features": "mlp"}, "steps": 8000,
         "train": {"batch_size": 256, "lr_g": 2e-2, "lr_d": 2e-2}, "sigmas": [0.5, 1.0]},
        {"setting": "gaussian1d, D on x and x²", "task": "gaussian1d",
         "params": {"features": "quadratic"}, "steps": 4000,
         "train": {"batch_size": 256, "lr_g": 2e-2, "lr_d": 2e-2, "d_steps": 5},
         "sigmas": [0.5]},
        {"setting": "ring8", "task": "ring8", "params": {}, "steps": 10000,
         "train": {"batch_size": 256, "lr_g": 5e-4, "lr_d": 5e-4}, "sigmas": [0.01, 0.05],
         "metric": "modes"}]}

    def experiment(self, settings: dict[str, Any], seed: int) -> dict[str, pd.DataFrame]:
        seeds = list(range(seed, seed + settings["seeds"]))
        fixed: dict[tuple[str, int], torch.Tensor] = {}  # one z batch per task and seed
        shape = []

        def track(arm: Arm, seed_: int, step: int, state) -> None:
            task = arm.make_task()
            if (arm.task, seed_) not in fixed:
                fixed[arm.task, seed_] = task.sample_latent(
                    SAMPLES, generator=torch.Generator().manual_seed(10_000 + seed_))
            z = fixed[arm.task, seed_].to(next(state.G.parameters()).device)
            with torch.no_grad():
                params = state.G(z)
                x = state.estimator.sample(params, space=task.space,
                                           generator=torch.Generator(z.device)
                                           .manual_seed(20_000 + seed_)).cpu().double()
            row = {"arm": arm.label, "seed": seed_, "step": step,
                   "kurtosis": float(np.mean(scipy.stats.kurtosis(x.numpy(), axis=0))),
                   "sigma": math.nan, "corr_z_log_sigma": math.nan,
                   "log_sigma_spread": math.nan}
            if arm.estimator == "reparam":
                log_sigma = params[:, 1].double().cpu()  # SAMPLES x d
                row["sigma"] = float(log_sigma.exp().mean())
                row["log_sigma_spread"] = float(log_sigma.std(0).mean())
                if row["log_sigma_spread"] > 1e-9 and z.shape[1] == 1 == log_sigma.shape[1]:
                    row["corr_z_log_sigma"] = float(np.corrcoef(
                        z[:, 0].cpu().double().numpy(), log_sigma[:, 0].numpy())[0, 1])
            shape.append(row)

        tables = []
        for p in settings["plan"]:
            steps = p["steps"]
            checkpoints = 8 if steps % 8 == 0 else 2
            t = train_budgets(_arms(p), seeds, checkpoints=checkpoints, on_checkpoint=track)
            tables.append(t.assign(setting=p["setting"], metric_name=_metric(p)))
        finals = pd.concat(tables, ignore_index=True)
        shape = pd.DataFrame(shape)
        keyed = shape.set_index(["arm", "seed", "step"])
        for col in ("kurtosis", "sigma", "corr_z_log_sigma", "log_sigma_spread"):
            finals[col] = [keyed[col].get((a, s, t), math.nan) for a, s, t in
                           zip(finals["arm"], finals["seed"], finals["step"], strict=True)]
        return {"finals": finals, "trajectory": shape}

    def analyse(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]) -> Verdict:
        from gangrad import tasks

        finals = data["finals"]
        numbers, lines, decisions, summary = {}, [], [], {}
        for p in settings["plan"]:
            setting, metric = p["setting"], _metric(p)
            spec = tasks.create(p["task"], **p["params"]).metric(metric)
            sub = finals[finals.setting == setting]
            labels = list(dict.fromkeys(sub["arm"]))
            ref = _label(setting, REFERENCE)
            others = [lab for lab in labels if lab != ref]
            dec = decide(sub, others, ref, metric, spec.higher_is_better, spec.margin)
            decisions.append(dec)
            end = at_budget(sub, "T")
            means = end.groupby("arm")[metric].mean()
            learned = end[end.arm == _label(setting, LEARNED)]
            ok = learned[[metric, "kurtosis"]].dropna()
            rho = (scipy.stats.spearmanr(ok["kurtosis"], ok[metric]).statistic
                   if len(ok) > 2 and ok["kurtosis"].nunique() > 1 else math.nan)
            kurt = {_short(lab): list(mean_ci(end[end.arm == lab]["kurtosis"]))
                    for lab in labels}
            sig = {_short(lab): list(mean_ci(end[end.arm == lab]["sigma"])) for lab in labels
                   if end[end.arm == lab]["sigma"].notna().any()}
            corr = learned["corr_z_log_sigma"].abs()
            spread = list(mean_ci(learned["log_sigma_spread"], low=0))
            summary[setting] = {"metric": metric, "decision": dec, "kurtosis": kurt,
                                "sigma": sig, "rho": float(rho), "means": means,
                                "spread": spread}
            numbers[setting] = {
                "metric": metric, "steps": p["steps"],
                "mean_at_T": {_short(k): float(v) for k, v in means.items()},
                "against_sigma_0": {_short(lab): dec.numbers(lab) for lab in others},
                "excess_kurtosis_at_T": kurt, "learned_sigma_at_T": sig,
                "learned_log_sigma_sd_over_z_at_T": spread,
                "abs_corr_z_log_sigma_range": ([float(corr.min()), float(corr.max())]
                                               if corr.notna().any() else None),
                "spearman_kurtosis_vs_metric_learned": float(rho)}
            lines.append(f"- **{setting}** ({settings['seeds']} seeds, {p['steps']} steps, "
                         f"every arm the same optimiser settings): {metric} at T, "
                         + ", ".join(f"{_short(k)} {v:.3g}" for k, v in means[labels].items())
                         + ".")
            lines += [f"  - {dec.sentence(lab).replace(setting + ': ', '')}." for lab in others]
            lines.append(
                "  - G's output, excess kurtosis at T (0 for a Gaussian): "
                + ", ".join(f"{k} {v[0]:.2g} [{v[1]:.2g}, {v[2]:.2g}]" for k, v in kurt.items())
                + (f"; across the seeds of learned σ(z), kurtosis and {metric} have Spearman "
                   f"correlation {rho:.2f}" if rho == rho else "") + ".")
            lines.append("  - the learned σ at T (mean over z): "
                         + ", ".join(f"{k} {v[0]:.3g} [{v[1]:.3g}, {v[2]:.3g}]"
                                     for k, v in sig.items())
                         + f"; how much σ(z) varies with z, sd of log σ over z: "
                           f"{spread[0]:.3g} [{spread[1]:.3g}, {spread[2]:.3g}] (0: one σ "
                           f"for every z).")
        primary = settings["plan"][0]["setting"]
        main = summary[primary]
        dec = main["decision"]
        learned = _label(primary, LEARNED)
        outcome = dec.outcomes[learned]
        c = dec.end[learned]
        word = {"better": "trains better than", "worse": "trains worse than",
                "equivalent": "trains as well as",
                "undetermined": "is not told apart from"}
        head = {"better": "Better", "worse": "Worse", "equivalent": "Neither",
                "undetermined": "Undetermined"}
        sig = main["sigma"]
        where = (f"the learned σ ends at {sig[LEARNED][0]:.2g} on average over z (sd of "
                 f"log σ over z {main['spread'][0]:.2g}) and at {sig[SHARED][0]:.2g} when "
                 f"shared, trading off against the spread G makes from z"
                 if LEARNED in sig and SHARED in sig else "")
        if outcome == BUDGET_DEPENDENT:
            answer = (f"Not decided at this budget: with {primary.split(', ', 1)[1]}, "
                      f"learning σ(z) against σ = 0 does not give the same outcome at T/2 and "
                      f"T or an arm has not converged ({main['metric']} difference "
                      f"{c.difference:+.3g} [95% CI {c.lo:+.3g}, {c.hi:+.3g}] at T).")
        else:
            answer = (f"{head[outcome]}: "
                      f"with {primary.split(', ', 1)[1]}, which sees the whole law, a "
                      f"learned σ(z) {word[outcome]} σ = 0 ({main['metric']} "
                      f"difference {c.difference:+.3g} [95% CI {c.lo:+.3g}, {c.hi:+.3g}] "
                      f"once converged)" + (f"; {where}" if where else "") + ".")
        blind = [s for s in summary if s != primary and "x²" in s]
        if blind:
            b = summary[blind[0]]
            bl = _label(blind[0], LEARNED)
            bo, bc = b["decision"].outcomes[bl], b["decision"].end[bl]
            answer = answer[:-1] + (
                f"; a D that sees only x and x² cannot see the heavy tails of the scale "
                f"mixture a z-dependent σ makes (excess kurtosis "
                f"{b['kurtosis'][LEARNED][0]:.2g}, sd of log σ over z "
                f"{b['spread'][0]:.2g}), and there learned σ(z) is {bo} "
                f"({bc.difference:+.3g} [{bc.lo:+.3g}, {bc.hi:+.3g}]).")
        changes = (
            "What D can see. A D blind to the tails (a logistic D on x and x², which sees "
            "only the first two moments) cannot penalise a heavy-tailed scale mixture with "
            "the right mean and variance, which a z-dependent σ can settle on: a comparison "
            "drawn there measures D's blindness, not σ (the second setting shows it); a D on "
            "x alone cannot even ask for the scale, and every arm collapses towards a point "
            "(see linear-gan). Tying σ across z rules the scale mixture out. A budget at "
            "which an arm is still moving makes the outcome budget-dependent; the full run "
            "adds ring8, where σ can match the modes' width.")
        return Verdict("\n".join(lines), numbers, outcome, answer=answer,
                       convergence=convergence_record(*decisions), changes=changes)

    def figure(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]):
        finals, traj = data["finals"], data["trajectory"]
        plan = settings["plan"]
        fig, axes = new_figure(len(plan), 3, width=14, height=3.4 * len(plan), squeeze=False)
        for row, p in enumerate(plan):
            setting, metric = p["setting"], _metric(p)
            end = at_budget(finals[finals.setting == setting], "T")
            labels = list(dict.fromkeys(end["arm"]))
            wide = end.pivot(index="seed", columns="arm", values=metric)[labels]
            ax = axes[row][0]
            for _, r in wide.iterrows():
                ax.plot(range(len(labels)), r.values, color="grey", lw=0.6, marker="o", ms=3)
            ax.plot(range(len(labels)), wide.mean().values, color="C3", lw=2, marker="s")
            ax.set_xticks(range(len(labels)), [_short(lab) for lab in labels], fontsize=8,
                          rotation=10)
            ax.set(ylabel=f"{metric} at T", title=setting)
            if metric == "w1":
                ax.set_yscale("log")
            ax = axes[row][1]
            for lab in labels:
                g = end[end.arm == lab]
                ax.scatter(g["kurtosis"], g[metric], s=14, color=_color(lab), label=_short(lab))
            ax.axvline(0, color="k", lw=0.6, ls=":")
            ax.set(xlabel="excess kurtosis of G's output at T", ylabel=metric,
                   title="tails against quality, one dot per run")
            ax.legend(fontsize=7)
            ax = axes[row][2]
            t = traj[traj.arm.str.startswith(setting + ": ") & traj["sigma"].notna()]
            for lab, g in t.groupby("arm", sort=False):
                for _, s in g.groupby("seed"):
                    ax.plot(s["step"], s["sigma"], color=_color(lab), lw=0.7, alpha=0.5)
                ax.plot([], [], color=_color(lab), label=_short(lab))
            ax.axvline(p["steps"] // 2, color="grey", ls=":", lw=0.8)
            ax.set(yscale="log", xlabel="step", ylabel="learned σ (mean over z)",
                   title="where the learned σ goes")
            ax.legend(fontsize=7)
        fig.tight_layout()
        return fig, ("One row per setting. Left: each arm's metric at T per seed (grey lines "
                     "join one seed's runs; red: mean). Middle: excess kurtosis of G's output "
                     "against the metric, one dot per run (0: Gaussian tails). Right: the "
                     "learned σ during training, one line per seed (dotted: T/2, where the "
                     "convergence check first reads the runs).")
