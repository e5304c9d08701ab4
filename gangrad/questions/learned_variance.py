"""Does learning the generator's conditional variance (``reparam``) train better or worse
than a fixed σ or σ = 0, and where does the learned σ go?

Arms, trained from the same seeds (paired: same D, data and latents; G differs only in its
head): ``pathwise`` (σ = 0), ``smoothing`` at a grid of fixed σ, and ``reparam`` (G emits
a location and a log-scale per sample, ``x = loc + exp(log_scale)·ε``). The learned σ
(mean of ``exp(log_scale)`` over a fixed z batch) is recorded during training. Settings:

- ``gaussian1d`` with its logistic D on ``x``: the control where σ **must** collapse. The
  best D on ``x`` only separates means (:mod:`gangrad.questions.linear_gan`), and for a
  fixed D the non-saturating cost ``softplus(−a·x − c)`` is convex in ``x``, so by Jensen
  any spread raises ``E f(loc + σε)``: ``∂/∂σ E f = σ·E f''(loc + σε) > 0`` (Stein's
  lemma), and σ shrinks towards 0 whatever the data's scale.
- ``gaussian1d`` with D on ``x`` and ``x²``: D can ask for the right spread, so the total
  variance ``w² + σ²`` of ``G = N(b, w²) + σε`` can match ``s²``; σ has no reason to
  collapse (nor a unique target: ``w`` and σ trade off).
- ``ring8`` (a non-linear G and MLP D; modes of std 0.01): the σ grid includes the mode
  width; a learned σ can fit it.
- ``digits`` (full run only: it needs thousands of steps).

Verdict: on each setting, ``reparam`` against every fixed-σ arm on the task's headline
metric (on the 2-D mixtures the fraction of high-quality samples, within 3 mode stds,
which is what a wrong σ spoils; paired, Holm-adjusted, the task's margin), and the
learned σ's trajectory. The
question's outcome is the comparison with the best fixed arm on ``gaussian1d`` with D on
``x`` and ``x²``: the setting where theory says the variance can be learned and nothing
forces its value (on ``digits`` and the 2-D mixtures too, which decide only in longer runs).
Quick sizes: 12 seeds; ring8 with a smaller G and D (64 × 2) and 600 steps, digits and
grid25 in the full run only, to stay within about half a minute on 2 CPU cores.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from gangrad.plotting import new_figure
from gangrad.questions._arms import Arm, comparison_numbers, paired, sentence, train_arms
from gangrad.questions._base import AbstractQuestion, Verdict

REPARAM = "reparam"
PRIMARY = "gaussian1d, D on x, x²"
RING8 = {"hidden": 64, "depth": 2}  # smaller than ring8's default, to fit the quick budget
RING8_TRAIN = {"batch_size": 128, "lr_g": 2e-3, "lr_d": 2e-3}


def _label(setting: str, key: str, sigma: float | None) -> str:
    if key == "smoothing":
        return f"{setting}: σ = {sigma:g}"
    return f"{setting}: {'σ = 0' if key == 'pathwise' else 'learned σ'}"


def _arms(plan: list[dict[str, Any]]) -> list[Arm]:
    arms = []
    for p in plan:
        specs = [("pathwise", {}), *[("smoothing", {"sigma": s}) for s in p["sigmas"]],
                 (REPARAM, {})]
        arms += [Arm(_label(p["setting"], key, hyper.get("sigma")), p["task"], p["params"],
                     key, hyper, {**p["train"], "steps": p["steps"]}) for key, hyper in specs]
    return arms


def _setting(label: str) -> str:
    return label.rsplit(": ", 1)[0]


class LearnedVariance(AbstractQuestion):
    name = "learned-variance"
    question = ("Does learning the generator's conditional variance (reparameterization) "
                "train better or worse than a fixed σ or σ = 0, and where does the learned σ "
                "go?")
    origin = ("Goodfellow et al. (2014): learning the generator's conditional variance with "
              "reparameterization (Kingma & Welling; Rezende et al.)")
    quick = {"seeds": 12, "plan": [
        {"setting": "gaussian1d, D on x", "task": "gaussian1d", "params": {},
         "steps": 600, "train": {}, "sigmas": []},
        {"setting": "gaussian1d, D on x, x²", "task": "gaussian1d",
         "params": {"features": "quadratic"}, "steps": 1200, "train": {"d_steps": 5},
         "sigmas": [0.5, 1.0]},
        {"setting": "ring8", "task": "ring8", "params": RING8, "steps": 600,
         "train": RING8_TRAIN, "sigmas": [0.01], "metric": "high_quality"}]}
    full = {"seeds": 20, "plan": [
        {"setting": "gaussian1d, D on x", "task": "gaussian1d", "params": {},
         "steps": 2000, "train": {}, "sigmas": [0.5, 1.0]},
        {"setting": "gaussian1d, D on x, x²", "task": "gaussian1d",
         "params": {"features": "quadratic"}, "steps": 4000, "train": {"d_steps": 5},
         "sigmas": [0.5, 1.0]},
        {"setting": "ring8", "task": "ring8", "params": {}, "steps": 4000, "train": {},
         "sigmas": [0.01, 0.05], "metric": "high_quality"},
        {"setting": "grid25", "task": "grid25", "params": {}, "steps": 4000, "train": {},
         "sigmas": [0.05, 0.2], "metric": "high_quality"},
        {"setting": "digits", "task": "digits", "params": {}, "steps": 5000, "train": {},
         "sigmas": [0.05, 0.2]}]}

    def experiment(self, settings: dict[str, Any], seed: int) -> dict[str, pd.DataFrame]:
        seeds = list(range(seed, seed + settings["seeds"]))
        z: dict[tuple[str, int], torch.Tensor] = {}
        sigmas = []

        def track(arm: Arm, seed_: int, step: int, state) -> None:
            if arm.estimator != REPARAM:
                return
            key = (arm.label, seed_)
            if key not in z:
                z[key] = arm.make_task().sample_latent(
                    512, generator=torch.Generator().manual_seed(10_000 + seed_))
            with torch.no_grad():
                out = state.G(z[key].to(next(state.G.parameters()).device))  # 512 x 2 x d
            sigmas.append({"setting": _setting(arm.label), "seed": seed_, "step": step,
                           "sigma": float(out[:, 1].exp().mean()),
                           "loc_spread": float(out[:, 0].std(0).mean())})

        finals = train_arms(_arms(settings["plan"]), seeds, checkpoints=10,
                            on_checkpoint=track)
        finals.insert(0, "setting", [_setting(a) for a in finals["arm"]])
        return {"finals": finals, "sigmas": pd.DataFrame(sigmas)}

    def analyse(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]) -> Verdict:
        from gangrad import tasks

        finals, sigmas = data["finals"], data["sigmas"]
        parts, numbers, outcome = [], {}, "undetermined"
        for p in settings["plan"]:
            setting = p["setting"]
            task = tasks.create(p["task"], **p["params"])
            metric = p.get("metric", next(iter(task.metrics)))
            spec = task.metric(metric)
            sub = finals[finals.setting == setting]
            labels = list(dict.fromkeys(sub["arm"]))
            learned = _label(setting, REPARAM, None)
            fixed = [lab for lab in labels if lab != learned]
            comps = paired(sub, fixed, learned, metric, spec.higher_is_better, spec.margin)
            means = sub.groupby("arm")[metric].mean()
            best = (max if spec.higher_is_better else min)(fixed, key=lambda lab: means[lab])
            c = comps[best]
            # read from the learned arm's side: compare_to_best reads from the fixed arm's
            flip = {"better": "worse", "worse": "better"}
            c_learned = type(c)(learned, best, flip.get(c.outcome, c.outcome), -c.difference,
                                -c.hi, -c.lo, c.seeds, c.p_difference, c.p_equivalence,
                                c.seeds_needed)
            traj = sigmas[sigmas.setting == setting].groupby("step")[["sigma", "loc_spread"]]
            traj = traj.mean()
            numbers[setting] = {
                "metric": metric, "mean": means.to_dict(), "best_fixed": best,
                "learned_vs_best_fixed": comparison_numbers(c_learned),
                "fixed_vs_learned": {lab: comparison_numbers(v) for lab, v in comps.items()},
                "sigma_trajectory": {int(k): float(v) for k, v in traj["sigma"].items()},
                "loc_spread_trajectory": {int(k): float(v)
                                          for k, v in traj["loc_spread"].items()}}
            others = [f"{lab.split(': ')[1]} {comps[lab].outcome} "
                      f"({comps[lab].difference:+.3g})" for lab in fixed if lab != best]
            parts.append(
                f"{sentence(c_learned, metric)} ({p['steps']} steps)"
                + (f"; against the other fixed arms (fixed − learned): {', '.join(others)}"
                   if others else "")
                + f"; the learned σ went {traj['sigma'].iloc[0]:.3g} → "
                  f"{traj['sigma'].iloc[-1]:.3g} (mean over seeds; spread of G's location "
                  f"over z {traj['loc_spread'].iloc[0]:.3g} → {traj['loc_spread'].iloc[-1]:.3g})")
            if setting == PRIMARY:
                outcome = c_learned.outcome
        collapse = numbers.get("gaussian1d, D on x", {}).get("sigma_trajectory", {})
        quad = numbers.get("gaussian1d, D on x, x²", {}).get("sigma_trajectory", {})
        why = ""
        if collapse and quad:
            why = (f" σ collapses where D cannot see the scale (D on x: σ ends at "
                   f"{list(collapse.values())[-1]:.3g}, as Jensen's inequality on the convex "
                   f"cost predicts) and does not once D sees x² (ends at "
                   f"{list(quad.values())[-1]:.3g}, data scale 1.25 shared with G's z-path).")
        return Verdict("; ".join(parts) + "." + why, numbers, outcome)

    def figure(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]):
        from gangrad import tasks

        finals, sigmas = data["finals"], data["sigmas"]
        plan = settings["plan"]
        fig, axes = new_figure(len(plan), 2, width=11, height=3.2 * len(plan), squeeze=False)
        for row, p in enumerate(plan):
            setting = p["setting"]
            sub = finals[finals.setting == setting]
            metric = p.get("metric", next(iter(tasks.create(p["task"], **p["params"]).metrics)))
            labels = list(dict.fromkeys(sub["arm"]))
            wide = sub.pivot(index="seed", columns="arm", values=metric)[labels]
            ax = axes[row][0]
            for _, r in wide.iterrows():
                ax.plot(range(len(labels)), r.values, color="grey", lw=0.6, marker="o", ms=3)
            ax.plot(range(len(labels)), wide.mean().values, color="C3", lw=2, marker="s")
            ax.set_xticks(range(len(labels)), [lab.split(": ")[1] for lab in labels],
                          fontsize=8)
            ax.set(ylabel=f"final {metric}", title=setting)
            ax = axes[row][1]
            s = sigmas[sigmas.setting == setting]
            for _, g in s.groupby("seed"):
                ax.plot(g["step"], g["sigma"], color="grey", lw=0.8)
            m = s.groupby("step")["sigma"].mean()
            ax.plot(m.index, m.values, color="C3", lw=2, label="learned σ, mean over seeds")
            ax.set(yscale="log", xlabel="step", ylabel="learned σ (mean over z)",
                   title=f"{setting}: where the learned σ goes")
            ax.legend(fontsize=8)
        fig.tight_layout()
        return fig, ("Left: final headline metric of each arm per seed (grey lines join one "
                     "seed's runs; red: mean). Right: reparam's learned conditional σ during "
                     "training (grey: seeds).")
