"""Is a D update on a real batch then a fake batch the same as one update on a mixed
batch — without batch norm, and with it?

Experiment: ``ring8``'s discriminator (an MLP), with and without ``BatchNorm1d`` after each
hidden layer, at initialisation, a real batch and a fake batch (from the initial G) of
equal size. Three ways to make "the" D update from them: (a) one optimizer step on the
loss of the concatenated, mixed batch; (b) one step on the sum of the losses of two
separate forward passes (real, then fake); (c) two optimizer steps, first on the real
batch, then on the fake batch. Analysis: the relative difference of the gradients of
(a) and (b), and of D's parameters after (a), (b) and (c), over seeds. Verdict: "the
same" when the difference is at float round-off (below 1e-4 relative), "different"
otherwise, with the numbers.
"""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd
import torch
from torch import nn

from gangrad.plotting import new_figure
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.stats import mean_ci

ROUND_OFF = 1e-4


def _discriminator(batch_norm: bool, hidden: int = 128, depth: int = 3) -> nn.Module:
    layers, width = [], 2
    for _ in range(depth):
        layers += [nn.Linear(width, hidden)]
        if batch_norm:
            layers += [nn.BatchNorm1d(hidden)]
        layers += [nn.LeakyReLU(0.2)]
        width = hidden
    layers += [nn.Linear(width, 1), nn.Flatten(0)]
    return nn.Sequential(*layers)


def _bce(D, x, label):
    return nn.functional.binary_cross_entropy_with_logits(D(x), torch.full((len(x),), label))


def _flat(params) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _one(batch_norm: bool, seed: int, batch: int = 128) -> dict[str, float]:
    from gangrad import tasks

    task = tasks.create("ring8")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    G = task.make_generator((2,))
    D0 = _discriminator(batch_norm)
    real = task.sample_real(batch, generator=gen)
    with torch.no_grad():
        fake = G(task.sample_latent(batch, generator=gen))

    def step(D, losses_fn, steps=1):
        opt = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        grads = None
        for k in range(steps):
            opt.zero_grad()
            loss = losses_fn(D, k)
            loss.backward()
            if grads is None:
                grads = _flat(p.grad for p in D.parameters())
            opt.step()
        return grads, _flat(D.parameters())

    def mixed(D, k):  # a mixed batch: one forward pass
        x = torch.cat([real, fake])
        y = torch.cat([torch.ones(batch), torch.zeros(batch)])
        return 2 * nn.functional.binary_cross_entropy_with_logits(D(x), y)

    def separate(D, k):  # two forward passes, losses summed
        return _bce(D, real, 1.0) + _bce(D, fake, 0.0)

    def sequential(D, k):  # two optimizer steps
        return 2 * (_bce(D, real, 1.0) if k == 0 else _bce(D, fake, 0.0))

    g_mix, p_mix = step(copy.deepcopy(D0), mixed)
    g_sep, p_sep = step(copy.deepcopy(D0), separate)
    _, p_seq = step(copy.deepcopy(D0), sequential, steps=2)
    p0 = _flat(D0.parameters())
    return {"grad_rel_diff": _rel(g_sep, g_mix),
            "param_rel_diff_separate": _rel(p_sep - p0, p_mix - p0),
            "param_rel_diff_sequential": _rel(p_seq - p0, p_mix - p0)}


class SeparateBatches(AbstractQuestion):
    name = "separate-batches"
    question = ("Is a D update on a real batch then a fake batch the same as one update on a "
                "mixed batch — without batch norm, and with it?")
    origin = ("Is a D update on a real batch then a fake batch the same as one mixed batch? "
              "(a common question on GAN training loops)")
    quick = {"seeds": 5}
    full = {"seeds": 20}

    def experiment(self, settings: dict[str, Any], seed: int) -> pd.DataFrame:
        seeds = list(range(seed, seed + settings["seeds"]))
        return pd.DataFrame([{"batch_norm": bn, "seed": s, **_one(bn, s)}
                             for bn in (False, True) for s in seeds])

    def analyse(self, table: pd.DataFrame, settings: dict[str, Any]) -> Verdict:
        numbers, parts = {}, []
        for bn, bdf in table.groupby("batch_norm"):
            name = "with batch norm" if bn else "without batch norm"
            g = mean_ci(bdf["grad_rel_diff"])
            sq = mean_ci(bdf["param_rel_diff_sequential"])
            numbers[name] = {"grad_rel_diff": list(g), "sequential_update_rel_diff": list(sq),
                             "max_grad_rel_diff": float(bdf["grad_rel_diff"].max())}
            same = bdf["grad_rel_diff"].max() < ROUND_OFF
            parts.append(
                f"{name}: the gradient from separate real and fake passes "
                + (f"equals the mixed-batch gradient up to round-off (largest relative "
                   f"difference {bdf['grad_rel_diff'].max():.1e} over {len(bdf)} seeds)" if same
                   else f"differs from the mixed-batch gradient by {g[0]:.3g} relative "
                        f"(95% CI {g[1]:.3g}–{g[2]:.3g}), because each pass normalizes with "
                        "its own batch statistics")
                + f"; two successive optimizer steps (real, then fake) move D differently from "
                  f"one mixed step by {sq[0]:.3g} relative (95% CI {sq[1]:.3g}–{sq[2]:.3g})")
        return Verdict("; ".join(parts) + ".", numbers)

    def figure(self, table: pd.DataFrame, settings: dict[str, Any]):
        fig, ax = new_figure(width=8, height=3.6)
        cols = ["grad_rel_diff", "param_rel_diff_separate", "param_rel_diff_sequential"]
        labels = ["gradient:\nseparate vs mixed", "update:\nseparate vs mixed",
                  "update: two steps\nvs one mixed step"]
        for j, (bn, bdf) in enumerate(table.groupby("batch_norm")):
            for i, c in enumerate(cols):
                m, lo, hi = (max(v, 1e-12) for v in mean_ci(bdf[c]))
                ax.errorbar([i + (j - 0.5) * 0.2], [m], yerr=[[m - lo], [hi - m]], fmt="o",
                            capsize=3, color=f"C{j}",
                            label=("with batch norm" if bn else "without batch norm")
                            if i == 0 else None)
        ax.axhline(ROUND_OFF, color="grey", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(3), labels, fontsize=8)
        ax.set_ylabel("relative difference")
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig, ("Relative difference between ways of making one D update from a real and "
                     "a fake batch, ring8's D at initialisation, mean and 95% interval over "
                     f"seeds; the dashed line is the round-off threshold {ROUND_OFF:g}.")
