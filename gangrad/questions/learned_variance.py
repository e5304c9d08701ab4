"""Does learning the generator's conditional variance (``reparam``) train better or worse
than a fixed σ or σ = 0, and where does the learned σ go during training?

Experiment: ``gaussian1d`` (and ``ring8`` in the full version) trained with ``pathwise``
(σ = 0), ``smoothing`` at fixed σ and ``reparam`` (learned log-scale head), several seeds,
same training settings. During the ``reparam`` runs the generator's mean σ over a fixed
z batch is recorded at checkpoints. Analysis: final headline metric per estimator (mean,
95% t-interval over seeds) and a Welch interval of the difference between ``reparam``
and the best fixed-σ estimator. Verdict: better / worse / inconclusive from that interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from gangrad.plotting import new_figure
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.stats import compare, fmt_ci, mean_ci

SPECS = [("pathwise", {}), ("smoothing", {"sigma": 0.1}), ("smoothing", {"sigma": 0.5}),
         ("reparam", {})]


def _runs(task_key: str, steps: int, seeds: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Final quality per (seed, estimator), and reparam's learned σ along training."""
    from gangrad import estimators, tasks
    from gangrad.train import train_seeds

    metric, higher = tasks.headline_metric(task_key)
    task = tasks.create(task_key)
    every = max(steps // 10, 1)
    marks = list(range(0, steps + 1, every))
    z = {seed: task.sample_latent(512, generator=torch.Generator().manual_seed(10_000 + seed))
         for seed in seeds}
    sigmas = []

    def track(seed, step, state):
        with torch.no_grad():
            out = state.G(z[seed].to(next(state.G.parameters()).device))
        sigmas.append({"task": task_key, "seed": seed, "step": step,
                       "sigma": float(out[:, 1].exp().mean())})

    finals = {}
    for key, hyper in SPECS:
        label = estimators.create(key, **hyper).label
        learned = key == "reparam"
        histories = train_seeds(task, key, seeds, estimator_hyper=hyper, steps=steps,
                                eval_every=every, eval_samples=1000, device="cpu",
                                checkpoint_steps=marks if learned else (),
                                on_checkpoint=track if learned else None)
        for seed, h in zip(seeds, histories, strict=True):
            finals[seed, label] = {"task": task_key, "estimator": label, "seed": seed,
                                   "metric": metric, "higher_is_better": higher,
                                   "value": float(h[metric].iloc[-1]),
                                   "status": h.attrs["status"]}
    rows = [finals[seed, label] for seed in seeds for label in dict.fromkeys(
        label for _, label in finals)]
    sigmas = pd.DataFrame(sigmas).sort_values(["seed", "step"], kind="stable")
    return pd.DataFrame(rows), sigmas.reset_index(drop=True)


class LearnedVariance(AbstractQuestion):
    name = "learned-variance"
    question = ("Does learning the generator's conditional variance (reparameterization) "
                "train better or worse than a fixed σ or σ = 0, and where does the learned σ "
                "go?")
    origin = ("Goodfellow et al. (2014): learning the generator's conditional variance with "
              "reparameterization (Kingma & Welling; Rezende et al.)")
    quick = {"seeds": 3, "plan": [("gaussian1d", 400)]}
    full = {"seeds": 5, "plan": [("gaussian1d", 2000), ("ring8", 4000)]}

    def experiment(self, settings: dict[str, Any], seed: int) -> dict[str, pd.DataFrame]:
        seeds = list(range(seed, seed + settings["seeds"]))
        finals, sigmas = [], []
        for task_key, steps in settings["plan"]:
            f, s = _runs(task_key, steps, seeds)
            finals.append(f)
            sigmas.append(s)
        return {"finals": pd.concat(finals, ignore_index=True),
                "sigmas": pd.concat(sigmas, ignore_index=True)}

    def analyse(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]) -> Verdict:
        finals, sigmas = data["finals"], data["sigmas"]
        parts, numbers = [], {}
        reparam = "reparam"
        for task_key, tdf in finals.groupby("task"):
            metric, higher = tdf["metric"].iloc[0], bool(tdf["higher_is_better"].iloc[0])
            stats = {e: mean_ci(g["value"]) for e, g in tdf.groupby("estimator")}
            fixed = [e for e in stats if e != reparam]
            best = (max if higher else min)(fixed, key=lambda e: stats[e][0])
            outcome, diff, lo, hi = compare(tdf[tdf.estimator == reparam]["value"],
                                            tdf[tdf.estimator == best]["value"],
                                            lower_is_better=not higher, name_a=reparam,
                                            name_b=best)
            traj = sigmas[sigmas.task == task_key].groupby("step")["sigma"].mean()
            numbers[task_key] = {"final": {e: list(v) for e, v in stats.items()},
                                 "reparam_minus_best": [diff, lo, hi], "best_fixed": best,
                                 "sigma_start": float(traj.iloc[0]),
                                 "sigma_end": float(traj.iloc[-1])}
            word = {f"{reparam} better": "trains better than",
                    f"{best} better": "trains worse than"}.get(outcome,
                                                               "is indistinguishable from")
            parts.append(
                f"{task_key} ({metric}, {'higher' if higher else 'lower'} is better): reparam "
                f"{fmt_ci(*stats[reparam])} {word} the best fixed choice {best} "
                f"{fmt_ci(*stats[best])}" + (" (inconclusive at 95%: difference "
                                             f"{diff:.3g}, CI {lo:.3g}–{hi:.3g})"
                                             if outcome == "inconclusive" else "")
                + f"; the learned σ went from {traj.iloc[0]:.3g} to {traj.iloc[-1]:.3g} "
                  f"over training (mean over seeds)")
        return Verdict("; ".join(parts) + ".", numbers)

    def figure(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]):
        finals, sigmas = data["finals"], data["sigmas"]
        n = finals["task"].nunique()
        fig, axes = new_figure(n, 2, width=10, height=3.6 * n, squeeze=False)
        for row, (task_key, tdf) in enumerate(finals.groupby("task")):
            ax = axes[row][0]
            order = sorted(tdf["estimator"].unique())
            for i, e in enumerate(order):
                v = tdf[tdf.estimator == e]["value"]
                m, lo, hi = mean_ci(v)
                ax.errorbar([i], [m], yerr=[[m - lo], [hi - m]], fmt="o", capsize=4)
                ax.scatter(np.full(len(v), i + 0.1), v, s=10, color="grey")
            ax.set_xticks(range(len(order)), order, rotation=20, fontsize=8)
            ax.set_ylabel(f"final {tdf['metric'].iloc[0]}")
            ax.set_title(f"{task_key}: final quality (mean, 95% CI, seeds)", fontsize=9)
            ax = axes[row][1]
            s = sigmas[sigmas.task == task_key]
            for _, g in s.groupby("seed"):
                ax.plot(g["step"], g["sigma"], color="grey", lw=0.8)
            m = s.groupby("step")["sigma"].mean()
            ax.plot(m.index, m.values, color="C3", lw=2, label="mean over seeds")
            ax.set_yscale("log")
            ax.set_xlabel("step")
            ax.set_ylabel("learned σ (mean over z)")
            ax.set_title(f"{task_key}: where the learned σ goes", fontsize=9)
            ax.legend(fontsize=8)
        fig.tight_layout()
        return fig, ("Left: final headline metric of each estimator (dot and bar: mean and 95% "
                     "interval over seeds; grey: individual seeds). Right: the generator's "
                     "learned conditional σ during reparam training.")
