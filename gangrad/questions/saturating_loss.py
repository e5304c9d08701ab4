"""Minimizing log(1 − D(G(z))) (minimax, "saturating") vs maximizing log D(G(z))
(non-saturating): gradient magnitude early in training, and which trains better.

Theory (Goodfellow et al., 2014, section 3): with ``D = σ(d)``, the minimax cost
``log(1 − σ(d))`` has ``∂/∂x = −σ(d)·d′(x)`` and the non-saturating ``−log σ(d)`` has
``−(1 − σ(d))·d′(x)``, so per sample the non-saturating gradient is ``(1 − D)/D`` times the
minimax one, in the same direction: when D rejects the fakes (D → 0) the minimax gradient
vanishes. Adam (Kingma & Ba, 2015) divides each parameter's step by a running root mean
square of its gradient, so a gradient uniformly ``(1 − D)/D`` times smaller gives nearly
the same steps; the factor is not uniform over samples, so the two losses still weight the
fakes differently.

Experiment. (i) Early gradient: on ``ring8``, from a fresh G, D is trained a few hundred
steps against that fixed G, so that it rejects the fakes confidently, as it does early in
real training; then G's gradient (pathwise, same z) is computed under both losses: the
per-sample ratio against theory (relative deviation below ``ROUND_OFF``, cosine 1) and the
G-parameter ratio (geometric mean over seeds). This part trains no G: it is a measurement.
(ii) Training: G and D trained from scratch with each loss from the same seeds (same initial
G and D, data and latents), every arm with the same optimiser settings, read at ``T/2`` and
``T``; along the runs, D's mean output on the fakes and G's gradient norm under both losses
at the current state. The settings of ``plan``: ``gaussian1d`` with an MLP D on ``x`` (G
starts about three data standard deviations from the data's mean; the verdict's setting),
and ``ring8`` in the full run.

Verdict: non-saturating against minimax on each setting's headline metric at both budgets
(paired, the task's margin) under the convergence rule of :mod:`gangrad.stats`; the outcome
is that comparison in the first setting, or ``budget-dependent``. The early-gradient check
against theory is reported beside it (``agrees``/``disagrees``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from gangrad.plotting import new_figure
from gangrad.questions._arms import Arm, at_budget, convergence_record, decide, train_budgets
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.stats import BUDGET_DEPENDENT, mean_ci

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


NS, MM = "non-saturating", "minimax"
ARM_LOSS = {NS: "nonsaturating", MM: "minimax"}
PROBE = 512  # fakes per seed behind the gradient norms and D's output along a run


def gradient_norms(G, D, z: torch.Tensor) -> dict[str, float]:
    """G's parameter-gradient norm under each loss at ``z`` (pathwise: ``x = G(z)``), and
    D's mean output ``σ(D(G(z)))``; no ``.grad`` is touched."""
    from gangrad.losses import generator_loss

    params = [p for p in G.parameters()]
    out = {}
    for kind in LOSS_KINDS:
        grads = torch.autograd.grad(generator_loss(kind, D)(G(z)).mean(), params)
        out[kind] = float(torch.cat([g.reshape(-1) for g in grads]).norm())
    with torch.no_grad():
        out["D(G(z))"] = float(torch.sigmoid(D(G(z))).mean())
    return out


def _label(setting: str, arm: str) -> str:
    return f"{setting}: {arm}"


def _metric(p: dict[str, Any]) -> str:
    from gangrad import tasks

    return p.get("metric", next(iter(tasks.create(p["task"], **p["params"]).metrics)))


class SaturatingLoss(AbstractQuestion):
    name = "saturating-loss"
    question = ("Early in training, how large is G's gradient when minimizing "
                "log(1 − D(G(z))) compared with maximizing log D(G(z)), and which trains "
                "better?")
    origin = ("How is the generator trained: min log(1 − D(G(z))) or max log D(G(z))? "
              "(Goodfellow et al., 2014, section 3)")
    #: the first setting of the plan decides the training outcome
    quick = {"seeds": 8, "early_d_steps": 300, "plan": [
        {"setting": "gaussian1d, D an MLP on x", "task": "gaussian1d",
         "params": {"features": "mlp"}, "steps": 3200,
         "train": {"batch_size": 256, "lr_g": 1e-2, "lr_d": 1e-2}}]}
    full = {"seeds": 30, "early_d_steps": 300, "plan": [
        {"setting": "gaussian1d, D an MLP on x", "task": "gaussian1d",
         "params": {"features": "mlp"}, "steps": 8000,
         "train": {"batch_size": 256, "lr_g": 1e-2, "lr_d": 1e-2}},
        {"setting": "ring8", "task": "ring8", "params": {}, "steps": 10000,
         "train": {"batch_size": 256, "lr_g": 5e-4, "lr_d": 5e-4}}]}

    def experiment(self, settings: dict[str, Any], seed: int) -> dict[str, pd.DataFrame]:
        seeds = list(range(seed, seed + settings["seeds"]))
        early = pd.DataFrame([{"seed": s, **_early_ratio(s, settings["early_d_steps"])}
                              for s in seeds])
        early["log_ratio"] = np.log(early["nonsaturating"] / early["minimax"])
        curves, probes, finals = [], {}, []

        def track(arm: Arm, seed_: int, step: int, state) -> None:
            task = arm.make_task()
            if (arm.task, seed_) not in probes:
                gen = torch.Generator().manual_seed(10_000 + seed_)
                probes[arm.task, seed_] = (task.sample_latent(PROBE, generator=gen),
                                           task.sample_latent(2000, generator=gen))
            z, z_eval = (t.to(next(state.G.parameters()).device)
                         for t in probes[arm.task, seed_])
            with torch.no_grad():
                x = state.estimator.sample(state.G(z_eval), space=task.space)
            curves.append({"arm": arm.label, "seed": seed_, "step": step,
                           **gradient_norms(state.G, state.D, z),
                           **task.evaluate(x)})

        for p in settings["plan"]:
            arms = [Arm(_label(p["setting"], name), p["task"], p["params"],
                        train={**p["train"], "steps": p["steps"], "loss": loss})
                    for name, loss in ARM_LOSS.items()]
            finals.append(train_budgets(arms, seeds, eval_samples=2500, checkpoints=24,
                                        on_checkpoint=track).assign(setting=p["setting"]))
        return {"early": early, "finals": pd.concat(finals, ignore_index=True),
                "curves": pd.DataFrame(curves)}

    def table(self, data: dict[str, pd.DataFrame]) -> pd.DataFrame:
        return pd.concat([data["early"].assign(part="early gradient"),
                          data["finals"].assign(part="training")], ignore_index=True)

    def analyse(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]) -> Verdict:
        from gangrad import tasks

        early, finals, curves = data["early"], data["finals"], data["curves"]
        lr = mean_ci(early["log_ratio"])
        ratio = [float(np.exp(v)) for v in lr]
        dg = mean_ci(early["D(G(z))"], low=0, high=1)
        deviation = float(early["max_ratio_deviation"].max())
        cosine = float(early["min_cosine"].min())
        agrees = deviation < ROUND_OFF and cosine > 1 - ROUND_OFF
        theory = (f"per sample, the non-saturating gradient is (1 − D)/D times the minimax one "
                  f"in the same direction, as theory says: largest relative deviation "
                  f"{deviation:.1e}, smallest cosine {cosine:.6f} over {len(early)} seeds"
                  if agrees else
                  f"per sample, the gradient ratio departs from theory's (1 − D)/D by up to "
                  f"{deviation:.3g} relative (smallest cosine {cosine:.6f})")
        lines = [f"- **Early gradient** (ring8, D trained {settings['early_d_steps']} steps "
                 f"against a fresh G): with D confident (mean D(G(z)) = {dg[0]:.3g}), G's "
                 f"non-saturating gradient is {ratio[0]:.3g}× the minimax one (geometric mean "
                 f"over seeds, 95% CI {ratio[1]:.3g}–{ratio[2]:.3g}; mean (1 − D)/D "
                 f"{early['mean_theory_ratio'].mean():.3g}); {theory}."]
        numbers: dict[str, Any] = {
            "grad_ratio_ns_over_minimax": ratio, "mean_D_of_fake": list(dg),
            "max_per_sample_ratio_deviation": deviation, "min_per_sample_cosine": cosine,
            "theory": "agrees" if agrees else "disagrees"}
        decisions, first = [], None
        for p in settings["plan"]:
            setting, metric = p["setting"], _metric(p)
            spec = tasks.create(p["task"], **p["params"]).metric(metric)
            sub = finals[finals.setting == setting]
            ns, mm = _label(setting, NS), _label(setting, MM)
            dec = decide(sub, [ns], mm, metric, spec.higher_is_better, spec.margin)
            decisions.append(dec)
            end = at_budget(sub, "T")
            means = {name: mean_ci(end[end.arm == _label(setting, name)][metric],
                                   low=spec.low, high=spec.high) for name in ARM_LOSS}
            # the checkpoint where D rejected the fakes most confidently, over both runs
            c = curves[curves.arm.str.startswith(setting + ": ") & (curves.step > 0)]
            by_step = c.groupby("step")["D(G(z))"].mean()
            first_step = int(by_step.idxmin())
            at_first = c[c.step == first_step]
            early_ratio = float(np.exp(np.log(at_first["nonsaturating"]
                                              / at_first["minimax"]).mean()))
            d_first = float(by_step.min())
            numbers[setting] = {
                "metric": metric, "steps": p["steps"],
                "mean_at_T": {k: list(v) for k, v in means.items()},
                "non_saturating_vs_minimax": dec.numbers(ns),
                "most_confident_checkpoint": {"step": first_step, "mean_D_of_fake": d_first,
                                              "grad_ratio_ns_over_minimax": early_ratio}}
            lines.append(
                f"- **Training, {setting}** ({settings['seeds']} seeds, {p['steps']} steps, "
                f"both losses the same optimiser settings): {metric} at T, non-saturating "
                f"{means[NS][0]:.3g} [{means[NS][1]:.3g}, {means[NS][2]:.3g}], minimax "
                f"{means[MM][0]:.3g} [{means[MM][1]:.3g}, {means[MM][2]:.3g}]; "
                f"{dec.sentence(ns).replace(setting + ': ', '')}. D rejected the fakes most "
                f"confidently at step {first_step} (mean D(G(z)) = {d_first:.3g} over both "
                f"runs), where G's non-saturating gradient was {early_ratio:.3g}× the "
                f"minimax one (geometric mean).")
            if first is None:
                first = (setting, dec, ns, metric, early_ratio, d_first)
        setting, dec, ns, metric, early_ratio, d_first = first
        outcome = dec.outcomes[ns]
        c = dec.end[ns]
        size = (f"G's gradient under log(1 − D(G(z))) is about {ratio[0]:.2g} times smaller "
                f"than under −log D(G(z)) once D rejects the fakes, the factor D/(1 − D) "
                f"theory gives" if agrees else
                f"G's gradient under log(1 − D(G(z))) is {ratio[0]:.2g} times smaller than "
                f"under −log D(G(z)), but not by theory's factor D/(1 − D)")
        if outcome == BUDGET_DEPENDENT:
            train_txt = (f"which trains better is not decided at this budget ({setting}: "
                         f"{metric} difference {c.difference:+.3g} [95% CI {c.lo:+.3g}, "
                         f"{c.hi:+.3g}] at T, see the convergence check)")
        elif outcome == "equivalent":
            train_txt = (f"both losses end equivalent once converged ({setting}, {metric} "
                         f"difference {c.difference:+.3g} [95% CI {c.lo:+.3g}, {c.hi:+.3g}] "
                         f"at T/2 and T)")
        else:
            word = {"better": "trains better", "worse": "trains worse",
                    "undetermined": "is not distinguished from minimax"}[outcome]
            train_txt = (f"and the non-saturating loss {word} ({setting}, {metric} "
                         f"difference {c.difference:+.3g} [95% CI {c.lo:+.3g}, {c.hi:+.3g}] "
                         f"at T/2 and T)")
        seen = (f"in training D rejected the fakes at best with mean D(G(z)) = {d_first:.2g}, "
                f"where the factor was {early_ratio:.2g}")
        answer = f"{size}; {seen}; {train_txt}."
        answer = answer[0].upper() + answer[1:]
        changes = (
            "The optimiser and how confident D is. Adam rescales a uniformly smaller gradient "
            "back to full-size steps; plain SGD does not, and then the minimax loss's factor "
            "D/(1 − D) slows G while D rejects the fakes. A G that starts close to the data "
            "(D never confident) shrinks the factor. A budget at which an arm is still moving "
            "makes the outcome budget-dependent; the full run adds ring8, where losing modes "
            "is what a weak gradient would cost.")
        return Verdict("\n".join(lines), numbers, outcome, answer=answer,
                       convergence=convergence_record(*decisions), changes=changes)

    def figure(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]):
        early, curves = data["early"], data["curves"]
        plan = settings["plan"]
        fig, axes = new_figure(1, 1 + 2 * len(plan), width=4.2 * (1 + 2 * len(plan)),
                               height=3.6, squeeze=False)
        axes = axes[0]
        ax = axes[0]
        ax.scatter(early["minimax"], early["nonsaturating"], color="C0")
        lim = [min(early[["minimax", "nonsaturating"]].min()) * 0.5,
               max(early[["minimax", "nonsaturating"]].max()) * 2]
        ax.plot(lim, lim, color="grey", ls="--", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="‖∇G‖ minimax log(1 − D)",
               ylabel="‖∇G‖ non-saturating −log D")
        ax.set_title("ring8: early gradient per seed (D confident)", fontsize=9)
        for i, p in enumerate(plan):
            setting, metric = p["setting"], _metric(p)
            c = curves[curves.arm.str.startswith(setting + ": ")]
            ax_m, ax_d = axes[1 + 2 * i], axes[2 + 2 * i]
            for name, color in ((MM, "C3"), (NS, "C0")):
                g = c[c.arm == _label(setting, name)]
                for j, (_, s) in enumerate(g.groupby("seed")):
                    ax_m.plot(s["step"], s[metric], color=color, alpha=0.5, lw=0.8,
                              label=name if j == 0 else None)
                    ax_d.plot(s["step"], s["D(G(z))"], color=color, alpha=0.5, lw=0.8,
                              label=name if j == 0 else None)
            for ax in (ax_m, ax_d):
                ax.axvline(p["steps"] // 2, color="grey", ls=":", lw=0.8)
                ax.set_xlabel("step")
                ax.legend(fontsize=8)
            ax_m.set(ylabel=metric, title=f"{setting}: training", yscale="log"
                     if metric == "w1" else "linear")
            ax_d.set(ylabel="mean D(G(z))", yscale="log", title=f"{setting}: D on the fakes")
        fig.tight_layout()
        return fig, ("Left: G's gradient norm under the two losses once D rejects the fakes "
                     "confidently (above the diagonal: non-saturating larger). Then, per "
                     "setting: the headline metric during training with each loss, and D's "
                     "mean output on the fakes (how confidently D rejects them), one line per "
                     "seed; dotted: T/2, where the convergence check first reads the runs.")
