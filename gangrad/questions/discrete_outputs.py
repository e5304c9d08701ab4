"""Can a differentiable generator match a discrete distribution? Softmax pass-through vs
REINFORCE vs Gumbel-softmax vs straight-through, on ``categorical`` and ``binary_digits``.

A differentiable G emits continuous values: the softmax pass-through (``pathwise`` on a
discrete space) emits probability vectors, never one-hot ones (Goodfellow, 2016, NIPS
tutorial §3: the generator must be differentiable, so GANs cannot produce discrete data
directly). Two things can then go wrong, and they are measured apart:

- *quality*: the task's metrics read symbols by argmax. On ``categorical`` the generator
  here reads z (an MLP ``z (4) → 64 → 64 → logits``; the task's own generator ignores z,
  which would force the argmax histogram of the pass-through to be a point mass), and the
  pass-through is also scored by its mean soft vector ``q̄ = mean_i softmax(G(z_i))``
  as a distribution, ``kl_soft = KL(q̄ ‖ p)``: what its outputs say, not only their argmax.
- *separability*: a fresh discriminator of the task's architecture is trained to
  convergence (full batch, Adam, until the training loss changes by less than
  ``CONVERGED`` over ``CHECK_EVERY`` steps, or ``MAX_D_STEPS``) on real one-hot data
  against the emitted samples, and its accuracy is read on held-out samples of both
  (0.5 = indistinguishable), with a Clopper–Pearson interval per run.

Analysis: paired comparisons over common seeds (:func:`gangrad.stats.compare_to_best`,
Holm-adjusted): each estimator against the best on the task's headline metric (within the
task's margin), and on the fresh-D accuracy (lower is better, margin ``ACCURACY_MARGIN``).
The outcome is the pass-through's fresh-D comparison against the best estimator, when the
tasks agree (else the categorical one, the exact task). Quick mode runs ``categorical``
only (2 CPU cores, seconds); full mode adds ``binary_digits``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
import torch
from torch import nn

from gangrad.plotting import new_figure
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.stats import Comparison, compare_to_best, fmt_ci, mean_ci
from gangrad.tasks import Categorical
from gangrad.tasks._nets import mlp_generator

__all__ = ["DiscreteOutputs", "LatentCategorical", "fresh_discriminator_accuracy"]

SPECS = [("pathwise", {}), ("score_function", {"baseline": "mean", "samples": 2}),
         ("gumbel_softmax", {"temperature": 0.5}), ("straight_through", {})]
ACCURACY_MARGIN = 0.02  # fresh-D accuracies this close are equally separable
CONVERGED = 1e-2  # relative change of the training loss that counts as converged
CHECK_EVERY = 50
MAX_D_STEPS = 2000
D_LR = 1e-2


class LatentCategorical(Categorical):
    """``categorical`` with a generator that reads ``z ~ N(0, I_latent_dim)``: an MLP
    ``latent_dim → 64 → 64 → logits`` (ReLU), so G can map regions of z to symbols."""

    def __init__(self, classes: int = 10, latent_dim: int = 4) -> None:
        super().__init__(classes)
        self.latent_dim = latent_dim

    def make_generator(self, param_shape: tuple[int, ...]) -> nn.Module:
        return mlp_generator(self.latent_dim, 64, 2, param_shape, nn.ReLU)


def fresh_discriminator_accuracy(task, fakes: list[torch.Tensor], seed: int,
                                 train_fraction: float = 0.5
                                 ) -> list[dict[str, float]]:
    """For each ``fakes[k] (N, *space)``: a fresh D of ``task``'s architecture trained to
    convergence on the first ``train_fraction`` of them against as many real samples, and
    its accuracy on the rest against fresh real samples. All the D's train together as
    one stacked model (:class:`gangrad.train.stacked.Stack`), each on its own data."""
    from gangrad.train.stacked import Stack

    n = fakes[0].shape[0]
    n_train = int(n * train_fraction)
    gen = torch.Generator().manual_seed(seed)
    real = torch.stack([task.sample_real(n, generator=gen) for _ in fakes])  # K x N x ...
    fake = torch.stack(fakes)
    nets = []
    for k in range(len(fakes)):
        torch.manual_seed(seed + k)
        nets.append(task.make_discriminator())
    D = Stack(nets)
    opt = torch.optim.Adam(list(D.params.values()), lr=D_LR)
    x = torch.cat([real[:, :n_train], fake[:, :n_train]], 1)
    y = torch.cat([torch.ones(n_train), torch.zeros(n_train)]).expand(len(fakes), -1)
    previous, steps = None, 0
    while steps < MAX_D_STEPS:
        loss = nn.functional.binary_cross_entropy_with_logits(D(x), y, reduction="none")
        total = loss.mean(1)  # one loss per D
        opt.zero_grad()
        total.sum().backward()
        opt.step()
        steps += 1
        if steps % CHECK_EVERY == 0:
            current = total.detach()
            if previous is not None and bool(
                    ((previous - current).abs() <= CONVERGED * previous).all()):
                break
            previous = current
    with torch.no_grad():
        right = ((D(real[:, n_train:]) > 0).sum(1) + (D(fake[:, n_train:]) <= 0).sum(1))
    m = 2 * (n - n_train)
    out = []
    for k in range(len(fakes)):
        ci = scipy.stats.binomtest(int(right[k]), m).proportion_ci(0.95, method="exact")
        out.append({"d_accuracy": int(right[k]) / m, "d_accuracy_lo": ci.low,
                    "d_accuracy_hi": ci.high, "d_steps": steps,
                    "d_train_loss": float(total[k].detach())})
    return out


def _soft_kl(task, x: torch.Tensor) -> float:
    """``KL(q̄ ‖ p)`` of the mean emitted vector ``q̄`` (categorical only)."""
    q = x[:, 0].double().mean(0)
    return float(torch.xlogy(q, q / task.probs.double()).sum())


def _cmp_text(c: Comparison) -> str:
    text = (f"{c.outcome} (difference {c.difference:+.3g}, 95% paired CI {c.lo:+.3g} to "
            f"{c.hi:+.3g}, {c.seeds} seeds")
    if c.outcome == "undetermined" and c.seeds_needed:
        text += f"; about {c.seeds_needed} more seeds would decide"
    return text + ")"


class DiscreteOutputs(AbstractQuestion):
    name = "discrete-outputs"
    question = ("Can a differentiable generator match a discrete distribution? Softmax "
                "pass-through vs REINFORCE vs Gumbel-softmax vs straight-through: quality, "
                "and how easily a converged D separates the fakes from the one-hot reals.")
    origin = ("How can a differentiable G produce a discrete distribution? "
              "(Cross Validated 470753, question 4; Data Science SE 32082)")
    quick = {"seeds": 8, "samples": 1000, "plan": [("categorical", 300)]}
    full = {"seeds": 20, "samples": 4000, "plan": [("categorical", 1000),
                                                    ("binary_digits", 3000)]}

    def experiment(self, settings: dict[str, Any], seed: int) -> pd.DataFrame:
        from gangrad import tasks
        from gangrad.train import train_seeds

        seeds = list(range(seed, seed + settings["seeds"]))
        n = settings["samples"]
        rows = []
        for task_key, steps in settings["plan"]:
            task = LatentCategorical() if task_key == "categorical" else tasks.create(task_key)
            metric = next(iter(task.metrics))
            spec = task.metric(metric)
            emitted: dict[tuple[str, int], torch.Tensor] = {}
            for key, hyper in SPECS:
                def keep(s, step, state, key=key, task=task, emitted=emitted):
                    gen = torch.Generator().manual_seed(s + 17)
                    with torch.no_grad():
                        z = task.sample_latent(n, generator=gen)
                        emitted[key, s] = state.estimator.sample(
                            state.G(z), space=task.space, generator=gen).cpu()

                train_seeds(task, key, seeds, estimator_hyper=hyper, steps=steps,
                            eval_every=steps, eval_samples=200, device="cpu",
                            checkpoint_steps=[steps], on_checkpoint=keep)
            runs = [(key, s) for key, _ in SPECS for s in seeds if (key, s) in emitted]
            sep = fresh_discriminator_accuracy(task, [emitted[r] for r in runs], seed)
            for (key, s), d in zip(runs, sep, strict=True):
                x = emitted[key, s]
                row = {"task": task_key, "estimator": key, "seed": s, "metric": metric,
                       "higher_is_better": spec.higher_is_better, "margin": spec.margin,
                       "value": task.evaluate(x)[metric], **d}
                if task_key == "categorical":
                    row["kl_soft"] = _soft_kl(task, x)
                rows.append(row)
        return pd.DataFrame(rows)

    def analyse(self, table: pd.DataFrame, settings: dict[str, Any]) -> Verdict:
        numbers: dict[str, Any] = {}
        parts, outcomes = [], {}
        for task_key, tdf in table.groupby("task", sort=False):
            metric, higher = tdf["metric"].iloc[0], bool(tdf["higher_is_better"].iloc[0])
            margin = float(tdf["margin"].iloc[0])
            by = {e: g.set_index("seed") for e, g in tdf.groupby("estimator", sort=False)}
            low = 0.0
            quality = {e: list(mean_ci(g["value"], low=low)) for e, g in by.items()}
            acc = {e: list(mean_ci(g["d_accuracy"], low=0, high=1)) for e, g in by.items()}
            best_q = (max if higher else min)(quality, key=lambda e: quality[e][0])
            best_a = min(acc, key=lambda e: acc[e][0])
            cq = compare_to_best({e: g["value"].to_dict() for e, g in by.items()}, best_q,
                                 higher, margin)
            ca = compare_to_best({e: g["d_accuracy"].to_dict() for e, g in by.items()},
                                 best_a, False, ACCURACY_MARGIN)
            nums: dict[str, Any] = {
                "metric": metric, "margin": margin, "quality": quality, "best_quality": best_q,
                "quality_vs_best": {c.estimator: c.__dict__ for c in cq},
                "d_accuracy": acc, "best_d_accuracy": best_a,
                "d_accuracy_vs_best": {c.estimator: c.__dict__ for c in ca},
                "d_steps": int(tdf["d_steps"].max()),
                "d_accuracy_per_run_ci": {e: [[float(v) for v in r] for r in
                                              g[["d_accuracy", "d_accuracy_lo",
                                                 "d_accuracy_hi"]].to_numpy()]
                                          for e, g in by.items()}}
            text = (f"{task_key}: best {metric} {best_q} {fmt_ci(*quality[best_q])}; "
                    + "; ".join(f"{c.estimator} {fmt_ci(*quality[c.estimator])}, "
                                + _cmp_text(c) for c in cq))
            if "kl_soft" in tdf:
                soft = list(mean_ci(by["pathwise"]["kl_soft"], low=0))
                nums["pathwise_kl_soft"] = soft
                text += (f". Read as a distribution, the pass-through's mean soft vector has "
                         f"KL {fmt_ci(*soft)}")
            pw = next((c for c in ca if c.estimator == "pathwise"), None)
            text += (f". A fresh D, converged within {nums['d_steps']} full-batch steps, "
                     f"tells the fakes from one-hot reals with held-out accuracy "
                     + ", ".join(f"{e} {fmt_ci(*acc[e])}" for e in acc))
            if pw is None:
                outcomes[task_key] = "better"
                text += "; the pass-through's fakes are the least separable"
            else:
                outcomes[task_key] = pw.outcome
                text += f"; the pass-through against {best_a}: " + _cmp_text(pw)
            numbers[task_key] = nums
            parts.append(text)
        values = list(outcomes.values())
        outcome = values[0] if len(set(values)) == 1 else outcomes.get("categorical", values[0])
        head = {"worse": "No: a differentiable G emits soft vectors that a converged D "
                         "separates from one-hot data, whatever their argmax scores. ",
                "equivalent": "Its soft outputs are no easier to separate than one-hot "
                              "samples here. ",
                "better": "Its soft outputs are harder to separate than one-hot samples "
                          "here. ",
                "undetermined": ""}[outcome]
        return Verdict(head + " ".join(p + "." for p in parts), numbers, outcome)

    def figure(self, table: pd.DataFrame, settings: dict[str, Any]):
        plan = settings["plan"]
        fig, axes = new_figure(len(plan), 2, width=11, height=3.4 * len(plan), squeeze=False)
        order = [k for k, _ in SPECS]
        for row, (task_key, tdf) in enumerate(table.groupby("task", sort=False)):
            for col, (name, label) in enumerate((("value", tdf["metric"].iloc[0]),
                                                 ("d_accuracy", "fresh-D held-out accuracy"))):
                ax = axes[row][col]
                for i, e in enumerate(order):
                    v = tdf[tdf.estimator == e][name]
                    ax.scatter(np.full(len(v), i - 0.12), v, s=10, alpha=0.4, color=f"C{i}")
                    m, lo, hi = mean_ci(v, low=0, high=1 if name == "d_accuracy" else np.inf)
                    ax.errorbar([i + 0.12], [m], yerr=[[m - lo], [hi - m]], fmt="s", capsize=4,
                                color=f"C{i}")
                if name == "value" and "kl_soft" in tdf:
                    v = tdf[tdf.estimator == "pathwise"]["kl_soft"]
                    ax.scatter(np.full(len(v), 0.3), v, marker="x", color="k", s=14,
                               label="pass-through, mean soft vector")
                    ax.legend(fontsize=7)
                ax.set_xticks(range(len(order)), order, rotation=15, fontsize=8)
                ax.set_title(f"{task_key}: {label}", fontsize=9)
                if name == "d_accuracy":
                    ax.axhline(0.5, color="grey", ls="--", lw=0.8)
        fig.tight_layout()
        return fig, ("Left: final quality of the emitted samples (symbols by argmax; crosses: "
                     "the pass-through's mean soft vector read as a distribution). Right: "
                     "held-out accuracy of a fresh discriminator trained to convergence to "
                     "tell them from real one-hot data (0.5 = indistinguishable). Dots: seeds; "
                     "squares: mean and 95% interval.")
