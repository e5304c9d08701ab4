"""Can a differentiable generator match a discrete distribution? Softmax pass-through vs
REINFORCE vs Gumbel-softmax vs straight-through, on ``categorical`` and ``binary_digits``.

Experiment: each estimator trains G and D on the task (same settings, several seeds).
Afterwards (i) the task's headline metric of the emitted samples and (ii) how easily a
*fresh* discriminator separates them from the one-hot real data: a new D of the task's
architecture is trained for a fixed number of Adam steps on real vs emitted samples and
its accuracy is measured on held-out samples (0.5 = indistinguishable, 1 = trivially
separated). A differentiable G (softmax pass-through) emits probability vectors, never
one-hot ones, so a D can tell them apart by their values alone.
Analysis: mean and 95% t-intervals over seeds; Welch intervals against the best.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import nn

from gangrad.plotting import new_figure
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.stats import fmt_ci, mean_ci

SPECS = [("pathwise", {}), ("score_function", {"baseline": "mean", "samples": 2}),
         ("gumbel_softmax", {"temperature": 0.5}), ("straight_through", {})]


def separability(task, fake: torch.Tensor, seed: int, steps: int = 300) -> float:
    """Held-out accuracy of a fresh D trained on real vs ``fake`` (N, *space)."""
    gen = torch.Generator().manual_seed(seed)
    n = fake.shape[0] // 2
    real = task.sample_real(2 * n, generator=gen)
    torch.manual_seed(seed)
    D = task.make_discriminator()
    opt = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    x = torch.cat([real[:n], fake[:n]])
    y = torch.cat([torch.ones(n), torch.zeros(n)])
    for _ in range(steps):
        idx = torch.randint(0, 2 * n, (128,), generator=gen)
        loss = nn.functional.binary_cross_entropy_with_logits(D(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = torch.cat([D(real[n:]), D(fake[n:2 * n])])
    truth = torch.cat([torch.ones(n), torch.zeros(n)])
    return float(((logits > 0).float() == truth).float().mean())


class DiscreteOutputs(AbstractQuestion):
    name = "discrete-outputs"
    question = ("Can a differentiable generator match a discrete distribution? Softmax "
                "pass-through vs REINFORCE vs Gumbel-softmax vs straight-through: quality, "
                "and how easily D separates the fakes from the one-hot reals.")
    origin = ("Can a differentiable G produce a discrete distribution? "
              "(Cross Validated 470753; Data Science SE 32082)")
    quick = {"seeds": 3, "plan": [("categorical", 300), ("binary_digits", 300)]}
    full = {"seeds": 5, "plan": [("categorical", 1000), ("binary_digits", 3000)]}

    def experiment(self, settings: dict[str, Any], seed: int) -> pd.DataFrame:
        from gangrad import tasks
        from gangrad.train import train_seeds

        seeds = list(range(seed, seed + settings["seeds"]))
        rows = []
        for task_key, steps in settings["plan"]:
            task = tasks.create(task_key)
            metric, higher = tasks.headline_metric(task_key)
            runs = {key: train_seeds(task, key, seeds, estimator_hyper=hyper, steps=steps,
                                     eval_every=steps, eval_samples=2000, device="cpu")
                    for key, hyper in SPECS}
            for i, s in enumerate(seeds):
                for key, _ in SPECS:
                    h = runs[key][i]
                    fake = h.attrs["samples"]
                    if fake is None or fake.shape[0] < 200:  # enough for the separability test
                        raise RuntimeError("training kept too few samples")
                    rows.append({"task": task_key, "estimator": key, "seed": s,
                                 "metric": metric, "higher_is_better": higher,
                                 "value": float(h[metric].iloc[-1]),
                                 "d_accuracy": separability(task, fake, s)})
        return pd.DataFrame(rows)

    def analyse(self, table: pd.DataFrame, settings: dict[str, Any]) -> Verdict:
        numbers, parts = {}, []
        for task_key, tdf in table.groupby("task", sort=False):
            metric, higher = tdf["metric"].iloc[0], bool(tdf["higher_is_better"].iloc[0])
            q = {e: mean_ci(g["value"]) for e, g in tdf.groupby("estimator")}
            acc = {e: mean_ci(g["d_accuracy"]) for e, g in tdf.groupby("estimator")}
            numbers[task_key] = {"quality": {e: list(v) for e, v in q.items()},
                                 "d_accuracy": {e: list(v) for e, v in acc.items()}}
            best = (max if higher else min)(q, key=lambda e: q[e][0])
            ties = [e for e in q if e != best and q[e][1] <= q[best][2]
                    and q[best][1] <= q[e][2]]
            pw = acc["pathwise"]
            others = [e for e in acc if e != "pathwise"]
            max_other = max(others, key=lambda e: acc[e][0])
            if pw[1] > acc[max_other][2]:
                sep = (f"a fresh D separates the softmax pass-through's fakes from one-hot "
                       f"reals with accuracy {fmt_ci(*pw)}, above every one-hot estimator "
                       f"(highest: {max_other} {fmt_ci(*acc[max_other])})")
            else:
                sep = (f"D accuracy on the softmax pass-through's fakes {fmt_ci(*pw)} is not "
                       f"separated from the one-hot estimators' (highest {max_other} "
                       f"{fmt_ci(*acc[max_other])}): inconclusive")
            parts.append(f"{task_key}: best {metric} {best} {fmt_ci(*q[best])}"
                         + (f", tied with {', '.join(ties)}" if ties else "")
                         + f"; softmax pass-through {fmt_ci(*q['pathwise'])}; {sep}")
        return Verdict("; ".join(parts) + ".", numbers)

    def figure(self, table: pd.DataFrame, settings: dict[str, Any]):
        plan = settings["plan"]
        fig, axes = new_figure(len(plan), 2, width=10, height=3.4 * len(plan), squeeze=False)
        order = [k for k, _ in SPECS]
        for row, (task_key, tdf) in enumerate(table.groupby("task", sort=False)):
            for col, (name, label) in enumerate((("value", tdf["metric"].iloc[0]),
                                                 ("d_accuracy", "fresh-D accuracy"))):
                ax = axes[row][col]
                for i, e in enumerate(order):
                    m, lo, hi = mean_ci(tdf[tdf.estimator == e][name])
                    ax.errorbar([i], [m], yerr=[[m - lo], [hi - m]], fmt="o", capsize=4)
                ax.set_xticks(range(len(order)), order, rotation=15, fontsize=8)
                ax.set_title(f"{task_key}: {label}", fontsize=9)
                if name == "d_accuracy":
                    ax.axhline(0.5, color="grey", ls="--", lw=0.8)
        fig.tight_layout()
        return fig, ("Left: final quality of the emitted samples; right: held-out accuracy of "
                     "a fresh discriminator trained to tell them from real one-hot data (0.5 = "
                     "indistinguishable). Mean and 95% interval over seeds.")
