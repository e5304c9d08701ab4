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

import numpy as np
import pandas as pd
import torch
from torch import nn

from gangrad.questions._common import Answer, compare, fmt_ci, mean_ci

NAME = "saturating-loss"
QUESTION = ("Early in training, how large is G's gradient when minimizing log(1 − D(G(z))) "
            "compared with maximizing log D(G(z)), and which trains better?")


def _early_ratio(seed: int, d_steps: int = 300) -> dict[str, float]:
    from gangrad import tasks
    from gangrad.train import generator_loss

    task = tasks.create("ring8")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    G, D = task.make_generator((2,)), task.make_discriminator()
    opt = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for _ in range(d_steps):
        with torch.no_grad():
            fake = G(task.sample_latent(128, generator=gen))
        real = task.sample_real(128, generator=gen)
        loss = (nn.functional.softplus(-D(real)).mean() + nn.functional.softplus(D(fake)).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
    D.requires_grad_(False)
    z = task.sample_latent(256, generator=gen)
    norms = {}
    for kind in ("minimax", "nonsaturating"):
        G.zero_grad()
        generator_loss(kind, D)(G(z)).mean().backward()
        norms[kind] = float(torch.cat([p.grad.reshape(-1) for p in G.parameters()]).norm())
    with torch.no_grad():
        d_fake = float(torch.sigmoid(D(G(z))).mean())
    return {**norms, "D(G(z))": d_fake}


def run(full: bool = False, seed: int = 0) -> Answer:
    import matplotlib.pyplot as plt

    from gangrad.train import train

    seeds = list(range(seed, seed + (10 if full else 3)))
    early = pd.DataFrame([{"seed": s, **_early_ratio(s)} for s in seeds])
    early["log_ratio"] = np.log(early["nonsaturating"] / early["minimax"])
    steps = 4000 if full else 1000
    outcome = []
    for s in seeds:
        for kind in ("minimax", "nonsaturating"):
            h = train("ring8", "pathwise", loss=kind, steps=steps, seed=s, batch_size=128,
                      lr_g=1e-3, lr_d=1e-3, eval_every=steps // 4, eval_samples=2500,
                      device="cpu")
            outcome.append({"seed": s, "loss": kind, "modes": float(h["modes"].iloc[-1]),
                            "high_quality": float(h["high_quality"].iloc[-1]),
                            "curve": h[["step", "modes"]].values.tolist()})
    outcome = pd.DataFrame(outcome)
    lr = mean_ci(early["log_ratio"])
    ratio = [float(np.exp(v)) for v in lr]
    dg = mean_ci(early["D(G(z))"])
    ns = outcome[outcome.loss == "nonsaturating"]["modes"]
    mm = outcome[outcome.loss == "minimax"]["modes"]
    result, diff, lo, hi = compare(ns, mm, lower_is_better=False, name_a="non-saturating",
                                   name_b="minimax")
    if lr[1] > 0:
        grad = (f"with D confident (mean D(G(z)) = {dg[0]:.3g}), the non-saturating gradient "
                f"is {ratio[0]:.3g}× the minimax one (geometric mean over seeds, 95% CI "
                f"{ratio[1]:.3g}–{ratio[2]:.3g})")
    elif lr[2] < 0:
        grad = (f"the minimax gradient is larger, by {1 / ratio[0]:.3g}× (95% CI "
                f"{1 / ratio[2]:.3g}–{1 / ratio[1]:.3g}), at mean D(G(z)) = {dg[0]:.3g}")
    else:
        grad = (f"the gradient ratio {ratio[0]:.3g} (95% CI {ratio[1]:.3g}–{ratio[2]:.3g}) "
                "does not separate the two losses: inconclusive")
    train_txt = (f"after {steps} steps, modes covered: non-saturating {fmt_ci(*mean_ci(ns))}, "
                 f"minimax {fmt_ci(*mean_ci(mm))} — "
                 + ("inconclusive at 95%" if result == "inconclusive" else result)
                 + f" (difference {diff:.3g}, 95% CI {lo:.3g}–{hi:.3g})")
    verdict = f"Early in training {grad}; {train_txt}."
    numbers = {"grad_ratio_ns_over_minimax": ratio, "mean_D_of_fake": list(dg),
               "modes_nonsaturating": list(mean_ci(ns)), "modes_minimax": list(mean_ci(mm)),
               "modes_difference": [diff, lo, hi]}

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
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
    for kind, color in (("minimax", "C3"), ("nonsaturating", "C0")):
        for curve in outcome[outcome.loss == kind]["curve"]:
            c = np.array(curve)
            ax.plot(c[:, 0], c[:, 1], color=color, alpha=0.6,
                    label=kind if curve is outcome[outcome.loss == kind]["curve"].iloc[0]
                    else None)
    ax.set_xlabel("step")
    ax.set_ylabel("modes covered (of 8)")
    ax.set_title("training outcome per seed", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    caption = ("Left: G's gradient norm under the two generator losses once D rejects the "
               "fakes confidently (above the diagonal: non-saturating larger). Right: modes "
               "of ring8 covered during training with each loss, one line per seed.")
    table = pd.concat([early.assign(part="early gradient"),
                       outcome.drop(columns="curve").assign(part="training")],
                      ignore_index=True)
    return Answer(NAME, QUESTION, verdict, numbers, table, fig, caption,
                  {"full": full, "seeds": seeds, "steps": steps})
