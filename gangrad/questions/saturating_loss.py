"""Minimizing log(1 − D(G(z))) (minimax, "saturating") vs maximizing log D(G(z))
(non-saturating): gradient magnitude early in training, and the outcome.

Experiment: ``ring8``. (i) Early training: from a fresh G, D is first trained for a few
hundred steps against that fixed G, so that it rejects the fakes confidently, as it does
early in real training; then the norm of G's gradient (pathwise, same z) is computed
under both losses. (ii) Outcome: G and D trained from scratch with each loss, several
seeds, and the final number of modes covered. Analysis: the ratio of gradient norms per
seed (geometric mean, 95% interval) and a Welch interval of the difference in modes.
Goodfellow et al. (2014, section 3) predict a vanishing minimax gradient when D is
confident: ``∂/∂x log(1 − σ(d)) = −σ(d)·d′`` against ``(1 − σ(d))·d′``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from gangrad.plotting import new_figure
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.stats import compare, fmt_ci, mean_ci

LOSS_KINDS = ("minimax", "nonsaturating")


def _early_ratio(seed: int, d_steps: int = 300) -> dict[str, float]:
    """G's gradient norm under each loss once D, trained against a fixed fresh G, rejects
    its fakes."""
    from gangrad import tasks
    from gangrad.losses import generator_loss
    from gangrad.train import discriminator_step

    task = tasks.create("ring8")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    G, D = task.make_generator((2,)), task.make_discriminator()
    opt = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for _ in range(d_steps):
        with torch.no_grad():
            fake = G(task.sample_latent(128, generator=gen))
        discriminator_step(D, opt, task.sample_real(128, generator=gen), fake)
    D.requires_grad_(False)
    z = task.sample_latent(256, generator=gen)
    norms = {}
    for kind in LOSS_KINDS:
        G.zero_grad()
        generator_loss(kind, D)(G(z)).mean().backward()
        norms[kind] = float(torch.cat([p.grad.reshape(-1) for p in G.parameters()]).norm())
    with torch.no_grad():
        d_fake = float(torch.sigmoid(D(G(z))).mean())
    return {**norms, "D(G(z))": d_fake}


class SaturatingLoss(AbstractQuestion):
    name = "saturating-loss"
    question = ("Early in training, how large is G's gradient when minimizing "
                "log(1 − D(G(z))) compared with maximizing log D(G(z)), and which trains "
                "better?")
    origin = ("How is the generator trained: min log(1 − D(G(z))) or max log D(G(z))? "
              "(Goodfellow et al., 2014, section 3)")
    quick = {"seeds": 3, "steps": 1000}
    full = {"seeds": 10, "steps": 4000}

    def experiment(self, settings: dict[str, Any], seed: int) -> dict[str, pd.DataFrame]:
        from gangrad.train import train_seeds

        seeds = list(range(seed, seed + settings["seeds"]))
        early = pd.DataFrame([{"seed": s, **_early_ratio(s)} for s in seeds])
        early["log_ratio"] = np.log(early["nonsaturating"] / early["minimax"])
        steps = settings["steps"]
        runs = {kind: train_seeds("ring8", "pathwise", seeds, loss=kind, steps=steps,
                                  batch_size=128, lr_g=1e-3, lr_d=1e-3, eval_every=steps // 4,
                                  eval_samples=2500, device="cpu")
                for kind in LOSS_KINDS}
        outcome = pd.DataFrame([
            {"seed": s, "loss": kind, "modes": float(h["modes"].iloc[-1]),
             "high_quality": float(h["high_quality"].iloc[-1]),
             "curve": h[["step", "modes"]].values.tolist()}
            for i, s in enumerate(seeds) for kind in LOSS_KINDS for h in [runs[kind][i]]])
        return {"early": early, "outcome": outcome}

    def table(self, data: dict[str, pd.DataFrame]) -> pd.DataFrame:
        return pd.concat([data["early"].assign(part="early gradient"),
                          data["outcome"].drop(columns="curve").assign(part="training")],
                         ignore_index=True)

    def analyse(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]) -> Verdict:
        early, outcome = data["early"], data["outcome"]
        lr = mean_ci(early["log_ratio"])
        ratio = [float(np.exp(v)) for v in lr]
        dg = mean_ci(early["D(G(z))"])
        ns = outcome[outcome.loss == "nonsaturating"]["modes"]
        mm = outcome[outcome.loss == "minimax"]["modes"]
        result, diff, lo, hi = compare(ns, mm, lower_is_better=False, name_a="non-saturating",
                                       name_b="minimax")
        if lr[1] > 0:
            grad = (f"with D confident (mean D(G(z)) = {dg[0]:.3g}), the non-saturating "
                    f"gradient is {ratio[0]:.3g}× the minimax one (geometric mean over seeds, "
                    f"95% CI {ratio[1]:.3g}–{ratio[2]:.3g})")
        elif lr[2] < 0:
            grad = (f"the minimax gradient is larger, by {1 / ratio[0]:.3g}× (95% CI "
                    f"{1 / ratio[2]:.3g}–{1 / ratio[1]:.3g}), at mean D(G(z)) = {dg[0]:.3g}")
        else:
            grad = (f"the gradient ratio {ratio[0]:.3g} (95% CI {ratio[1]:.3g}–"
                    f"{ratio[2]:.3g}) does not separate the two losses: inconclusive")
        train_txt = (f"after {settings['steps']} steps, modes covered: non-saturating "
                     f"{fmt_ci(*mean_ci(ns))}, minimax {fmt_ci(*mean_ci(mm))} — "
                     + ("inconclusive at 95%" if result == "inconclusive" else result)
                     + f" (difference {diff:.3g}, 95% CI {lo:.3g}–{hi:.3g})")
        numbers = {"grad_ratio_ns_over_minimax": ratio, "mean_D_of_fake": list(dg),
                   "modes_nonsaturating": list(mean_ci(ns)), "modes_minimax": list(mean_ci(mm)),
                   "modes_difference": [diff, lo, hi]}
        return Verdict(f"Early in training {grad}; {train_txt}.", numbers)

    def figure(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]):
        early, outcome = data["early"], data["outcome"]
        fig, axes = new_figure(1, 2, width=10, height=3.6)
        ax = axes[0]
        ax.scatter(early["minimax"], early["nonsaturating"], color="C0")
        lim = [min(early[["minimax", "nonsaturating"]].min()) * 0.5,
               max(early[["minimax", "nonsaturating"]].max()) * 2]
        ax.plot(lim, lim, color="grey", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("‖∇G‖ minimax log(1 − D)")
        ax.set_ylabel("‖∇G‖ non-saturating −log D")
        ax.set_title("early gradient norm per seed (D confident)", fontsize=9)
        ax = axes[1]
        for kind, color in zip(LOSS_KINDS, ("C3", "C0"), strict=True):
            for i, curve in enumerate(outcome[outcome.loss == kind]["curve"]):
                c = np.array(curve)
                ax.plot(c[:, 0], c[:, 1], color=color, alpha=0.6,
                        label=kind if i == 0 else None)
        ax.set_xlabel("step")
        ax.set_ylabel("modes covered (of 8)")
        ax.set_title("training outcome per seed", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig, ("Left: G's gradient norm under the two generator losses once D rejects "
                     "the fakes confidently (above the diagonal: non-saturating larger). "
                     "Right: modes of ring8 covered during training with each loss, one line "
                     "per seed.")
