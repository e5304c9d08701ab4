"""Minimizing log(1 − D(G(z))) (minimax, "saturating") vs maximizing log D(G(z))
(non-saturating): gradient magnitude early in training, and the outcome.

Experiment: ``ring8``. (i) Early training: from a fresh G, D is first trained for a few
hundred steps against that fixed G, so that it rejects the fakes confidently, as it does
early in real training; then the norm of G's gradient (pathwise, same z) is computed
under both losses. (ii) Outcome: G and D trained from scratch with each loss, several
seeds (the same seed gives both losses the same initial G and D, data and latents), and
the final number of modes covered.

Theory (Goodfellow et al., 2014, section 3): with ``D = σ(d)``, the minimax cost
``log(1 − σ(d))`` has ``∂/∂x = −σ(d)·d′(x)`` and the non-saturating ``−log σ(d)`` has
``−(1 − σ(d))·d′(x)``, so per sample the non-saturating gradient is ``(1 − D)/D`` times the
minimax one, in the same direction: when D rejects the fakes (D → 0) the minimax gradient
vanishes. The question checks this per sample (relative deviation below ``ROUND_OFF``,
cosine 1) and reports the G-parameter gradient ratio (geometric mean over seeds).
Outcome: ``agrees``/``disagrees`` with that ratio; the training comparison (paired,
:func:`gangrad.stats.compare_paired`, within ring8's modes margin) is reported beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from gangrad.plotting import new_figure
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.stats import compare_paired, fmt_ci, mean_ci

LOSS_KINDS = ("minimax", "nonsaturating")
ROUND_OFF = 1e-4  # relative deviation from the predicted ratio at float32 round-off


def per_sample_ratio(D, x: torch.Tensor) -> dict[str, float]:
    """The non-saturating over the minimax gradient with respect to each sample ``x_i``
    (``x (B, dim)``), against theory's ``(1 − D(x_i))/D(x_i)``: the largest relative
    deviation of the norm ratio and the smallest cosine between the two gradients."""
    from gangrad.losses import generator_loss

    x = x.detach().requires_grad_(True)
    grads = {kind: torch.autograd.grad(generator_loss(kind, D)(x).sum(), x)[0]
             for kind in LOSS_KINDS}
    with torch.no_grad():
        d = torch.sigmoid(D(x)).double()
        gn, gm = grads["nonsaturating"].double(), grads["minimax"].double()
        ratio = gn.norm(dim=1) / gm.norm(dim=1)
        theory = (1 - d) / d
        cosine = (gn * gm).sum(1) / (gn.norm(dim=1) * gm.norm(dim=1))
    return {"max_ratio_deviation": float(((ratio - theory).abs() / theory).max()),
            "min_cosine": float(cosine.min()), "mean_theory_ratio": float(theory.mean())}


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
        x = G(z)
        d_fake = float(torch.sigmoid(D(x)).mean())
    return {**norms, "D(G(z))": d_fake, **per_sample_ratio(D, x)}


class SaturatingLoss(AbstractQuestion):
    name = "saturating-loss"
    question = ("Early in training, how large is G's gradient when minimizing "
                "log(1 − D(G(z))) compared with maximizing log D(G(z)), and which trains "
                "better?")
    origin = ("How is the generator trained: min log(1 − D(G(z))) or max log D(G(z))? "
              "(Goodfellow et al., 2014, section 3)")
    quick = {"seeds": 8, "steps": 1000}
    full = {"seeds": 30, "steps": 4000}

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
        from gangrad import tasks

        early, outcome = data["early"], data["outcome"]
        lr = mean_ci(early["log_ratio"])
        ratio = [float(np.exp(v)) for v in lr]
        dg = mean_ci(early["D(G(z))"], low=0, high=1)
        deviation = float(early["max_ratio_deviation"].max())
        cosine = float(early["min_cosine"].min())
        agrees = deviation < ROUND_OFF and cosine > 1 - ROUND_OFF
        by = {kind: outcome[outcome.loss == kind].set_index("seed")["modes"]
              for kind in LOSS_KINDS}
        margin = tasks.create("ring8").metric("modes").margin
        c = compare_paired(by["nonsaturating"].to_dict(), by["minimax"].to_dict(),
                           higher_is_better=True, margin=margin,
                           names=("non-saturating", "minimax"))
        theory = (f"per sample, the non-saturating gradient is (1 − D)/D times the minimax one "
                  f"in the same direction, as theory says: largest relative deviation "
                  f"{deviation:.1e}, smallest cosine {cosine:.6f} over {len(early)} seeds"
                  if agrees else
                  f"per sample, the gradient ratio departs from theory's (1 − D)/D by up to "
                  f"{deviation:.3g} relative (smallest cosine {cosine:.6f})")
        grad = (f"with D confident (mean D(G(z)) = {dg[0]:.3g}), G's non-saturating gradient "
                f"is {ratio[0]:.3g}× the minimax one (geometric mean over seeds, 95% CI "
                f"{ratio[1]:.3g}–{ratio[2]:.3g}; mean (1 − D)/D "
                f"{early['mean_theory_ratio'].mean():.3g})")
        train_txt = (f"after {settings['steps']} steps from the same seeds, modes covered: "
                     f"non-saturating {fmt_ci(*mean_ci(by['nonsaturating'], low=0, high=8))}, "
                     f"minimax {fmt_ci(*mean_ci(by['minimax'], low=0, high=8))}; non-saturating "
                     f"is {c.outcome} (paired difference {c.difference:+.3g}, 95% CI "
                     f"{c.lo:+.3g} to {c.hi:+.3g}, margin {margin:g})")
        if c.outcome == "undetermined" and c.seeds_needed:
            train_txt += f"; about {c.seeds_needed} more seeds would decide"
        numbers = {"grad_ratio_ns_over_minimax": ratio, "mean_D_of_fake": list(dg),
                   "max_per_sample_ratio_deviation": deviation, "min_per_sample_cosine": cosine,
                   "modes_nonsaturating": list(mean_ci(by["nonsaturating"], low=0, high=8)),
                   "modes_minimax": list(mean_ci(by["minimax"], low=0, high=8)),
                   "modes_nonsaturating_vs_minimax": c.__dict__}
        return Verdict(f"Early in training {grad}; {theory}. Training: {train_txt}.", numbers,
                       "agrees" if agrees else "disagrees")

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
