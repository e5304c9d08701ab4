"""How is G trained through a frozen D, and what do the usual mistakes in that step do?

The public question (Cross Validated 237944, "How is the generator in a GAN trained?"):
"Do you essentially attach the generator's outputs to the discriminator's inputs and then
treat the entire thing like one giant network where the weights in the discriminator
portion are constant?"

Theory (Goodfellow et al., 2014, Algorithm 1). G's step descends

.. math:: ∇_θ \\frac{1}{m}\\sum_i f(D_ψ(G_θ(z_i)))
          = \\frac{1}{m}\\sum_i J_θ G_θ(z_i)^⊤ ∇_x f(D_ψ(x))\\big|_{x = G_θ(z_i)}

at the current ``ψ``: backpropagation runs through ``D ∘ G`` as one network, and only G's
parameters ``θ`` move (``f(d) = softplus(−d)``, the non-saturating loss). D's step
descends its cross-entropy on a real batch and on fakes ``G_θ(z)`` taken as data: their
dependence on ``θ`` is not differentiated. In PyTorch three habits carry this: D's
parameters are out of G's update (D frozen, or at least not in G's optimizer), the fakes
are detached in D's step, and each optimizer clears its gradients right before its own
backward pass. :data:`LOOPS` writes the usual mistakes as explicit loops
(:func:`iteration`), each one habit broken:

- **D not frozen** (G's loss also fills D's ``.grad``), with G's optimizer holding G's
  parameters only and D clearing its gradients before its backward: nothing reads those
  gradients, so the update is unchanged; the mistake only costs a backward pass into D's
  parameters;
- **fakes not detached** in D's step (D's loss also fills G's ``.grad``), with G clearing
  its gradients before its backward: G's clearing discards them, so again the update is
  unchanged, at the cost of a backward pass through G;
- **G's optimizer steps D too** (one optimizer over both networks, or a combined model
  compiled while D is trainable): each iteration D's parameters also take a step *down*
  G's loss, i.e. towards calling the fakes real;
- **D's gradients never cleared**: each D step follows the sum of every D gradient so far;
- **G's loss left in D's gradients**: D not frozen, and D clears its gradients after its
  step instead of before its backward: G's loss gradient for D (towards calling the fakes
  real) is added to D's next update;
- **D's loss left in G's gradients**: fakes not detached, and G's gradients cleared at the
  top of the iteration instead of right before G's backward: D's loss gradient for G
  (towards fakes that D rejects more easily) is added to G's update.

Experiment: ``gaussian1d`` with a D on ``x`` and ``x²`` (so D can see the scale and the
equilibrium is the data; centred data ``N(0, 1.25²)``, so that the correct loop converges
in a few hundred iterations), every seed's G, D, data and latents from
:class:`gangrad.train.TrainState` and all seeds stacked
(:class:`gangrad.train.seeds.StackedSeeds`), so every loop of a seed starts from the same
networks and draws the same batches: the correct loop is :func:`gangrad.train.gan_step`
bit for bit.

1. *Exact*: from the same state and batches, each loop's parameters after a few
   iterations against the correct loop's: identical bits, or how far apart.
2. *Training*: the loops that change the update, trained with the same settings as the
   correct loop (no loop is tuned), evaluated along the way; paired comparisons of W1 with
   the correct loop at ``T/2`` and ``T`` under the convergence rule
   (:func:`gangrad.questions._arms.decide`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import torch
from torch import nn

from gangrad.losses import discriminator_loss
from gangrad.plotting import new_figure
from gangrad.questions._arms import convergence_record, decide
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.stats import BUDGET_DEPENDENT

__all__ = ["CLEAR_D", "CLEAR_G", "LOOPS", "FrozenD", "Loop", "exact_check", "iteration",
           "train_loop"]

#: when D's gradients are cleared: right before D's backward, right after D's step, never
CLEAR_D = ("before", "after", "never")
#: when G's gradients are cleared: right before G's backward, or at the top of the
#: iteration (before D's step)
CLEAR_G = ("before", "iteration")


@dataclass(frozen=True)
class Loop:
    """One way of writing a GAN iteration (one D step, then one G step); the defaults are
    the correct one."""

    key: str
    label: str
    #: the line that differs from the correct loop, as a user would write it
    code: str = ""
    #: D passes no gradient to its parameters in G's step
    freeze_d: bool = True
    #: D's step sees the fakes detached from G
    detach_fakes: bool = True
    #: G's optimizer also holds (and steps) D's parameters
    g_optimizer_holds_d: bool = False
    clear_d: str = "before"
    clear_g: str = "before"

    def __post_init__(self) -> None:
        if self.clear_d not in CLEAR_D:
            raise ValueError(f"Loop {self.key!r}: clear_d must be one of {CLEAR_D}, got "
                             f"{self.clear_d!r}")
        if self.clear_g not in CLEAR_G:
            raise ValueError(f"Loop {self.key!r}: clear_g must be one of {CLEAR_G}, got "
                             f"{self.clear_g!r}")


CORRECT = Loop("correct", "correct")
#: the correct loop and the usual mistakes (module doc)
LOOPS: tuple[Loop, ...] = (
    CORRECT,
    Loop("d-not-frozen", "D not frozen", "G's loss backpropagates into D's parameters",
         freeze_d=False),
    Loop("fakes-not-detached", "fakes not detached", "d_loss uses D(G(z)), not "
         "D(G(z).detach())", detach_fakes=False),
    Loop("g-optimizer-steps-d", "G's optimizer steps D",
         "opt_g = Adam([*G.parameters(), *D.parameters()])", freeze_d=False,
         g_optimizer_holds_d=True),
    Loop("d-grads-never-cleared", "D's gradients never cleared", "no opt_d.zero_grad()",
         clear_d="never"),
    Loop("g-loss-left-in-d", "G's loss left in D's gradients",
         "D not frozen; opt_d.zero_grad() after opt_d.step()", freeze_d=False,
         clear_d="after"),
    Loop("d-loss-left-in-g", "D's loss left in G's gradients",
         "fakes not detached; opt_g.zero_grad() at the top of the iteration",
         detach_fakes=False, clear_g="iteration"),
)


def _loop(key: str) -> Loop:
    for loop in LOOPS:
        if loop.key == key:
            return loop
    raise ValueError(f"no loop {key!r}; loops: {', '.join(lp.key for lp in LOOPS)}")


def g_optimizer(seeds, loop: Loop) -> torch.optim.Optimizer:
    """G's optimizer for ``loop``: the stack's own (G's parameters), or one Adam with G's
    settings over G's and D's parameters."""
    if not loop.g_optimizer_holds_d:
        return seeds.opt_g
    cfg = seeds.cfg
    return torch.optim.Adam([*seeds.G.params.values(), *seeds.D.params.values()],
                            lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))


def iteration(seeds, loop: Loop, opt_g: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """One iteration written as ``loop`` says, on stacked seeds
    (:class:`gangrad.train.seeds.StackedSeeds`, every tensor ``(S, N, ...)``): one D step
    on a real batch and fakes, then one G step through D. The random streams are drawn
    in :func:`gangrad.train.gan_step`'s order. Returns each seed's losses ``(S,)``."""
    if loop.clear_g == "iteration":
        opt_g.zero_grad(set_to_none=True)
    z = seeds.latents()
    if loop.detach_fakes:
        with torch.no_grad():
            fake = seeds.generate(z)
    else:
        fake = seeds.generate(z)
    real = seeds.real(fake)
    d_loss = discriminator_loss(seeds.D(real), seeds.D(fake))
    if loop.clear_d == "before":
        seeds.opt_d.zero_grad(set_to_none=True)
    d_loss.sum().backward()
    seeds.opt_d.step()
    if loop.clear_d == "after":
        seeds.opt_d.zero_grad(set_to_none=True)

    x = seeds.generate(seeds.latents())
    g_loss = nn.functional.softplus(-seeds.D(x, frozen=loop.freeze_d)).mean(-1)
    if loop.clear_g == "before":
        opt_g.zero_grad(set_to_none=True)
    g_loss.sum().backward()
    opt_g.step()
    seeds.advance()
    return {"g_loss": g_loss.detach(), "d_loss": d_loss.detach()}


def _start(task, cfg, seeds: list[int], loop: Loop):
    """Every seed's fresh state and record (:class:`gangrad.train.loop.Run`), stacked."""
    from gangrad import estimators
    from gangrad.train import TrainState
    from gangrad.train.loop import Run
    from gangrad.train.seeds import StackedSeeds

    est = estimators.create("pathwise")
    device = torch.device(cfg.device)
    runs = [Run(task, est, replace(cfg, seed=s), TrainState.fresh(task, est, s, device), None,
                tag_seed=True) for s in seeds]
    stacked = StackedSeeds([r.state for r in runs], task, cfg)
    return runs, stacked, g_optimizer(stacked, loop)


def train_loop(task, cfg, seeds: list[int], loop: Loop, every: int) -> list[pd.DataFrame]:
    """``cfg.steps`` iterations of ``loop`` for every seed (stacked), evaluated every
    ``every`` iterations: one history per seed, as :func:`gangrad.train.train_seeds`
    returns them (a seed whose losses or networks stop being finite is recorded as
    diverged and no longer read)."""
    runs, stacked, opt_g = _start(task, cfg, seeds, loop)
    start = time.perf_counter()
    for run in runs:
        run.record(0, start)
    for step in range(1, cfg.steps + 1):
        losses = iteration(stacked, loop, opt_g)
        for i, run in enumerate(runs):
            if run.ok:
                run.pending.append({k: v[i] for k, v in losses.items()})
        if step % every == 0 or step == cfg.steps:
            for run in runs:
                if run.ok:
                    run.record(step, start)
    return [run.history() for run in runs]


def exact_check(task, cfg, seeds: list[int], iterations: int) -> pd.DataFrame:
    """Each loop's G and D parameters after ``iterations`` from the same state and batches
    as the correct loop, per seed: the largest absolute difference and the relative
    difference ``‖Δ‖/‖θ‖`` of G's and of D's parameters."""
    finals = {}
    for loop in LOOPS:
        _, stacked, opt_g = _start(task, cfg, seeds, loop)
        for _ in range(iterations):
            iteration(stacked, loop, opt_g)
        finals[loop.key] = {net: torch.cat([p.detach().flatten(1) for p in stack.params.values()],
                                           1)
                            for net, stack in (("G", stacked.G), ("D", stacked.D))}
    rows = []
    ref = finals[CORRECT.key]
    for loop in LOOPS:
        for i, seed in enumerate(seeds):
            row = {"loop": loop.label, "seed": seed, "iterations": iterations}
            for net in ("G", "D"):
                a, b = finals[loop.key][net][i], ref[net][i]
                row[f"{net}_max_abs_diff"] = float((a - b).abs().max())
                row[f"{net}_rel_diff"] = float((a - b).norm() / b.norm())
            rows.append(row)
    return pd.DataFrame(rows)


def _config(task, settings: dict[str, Any]):
    from gangrad.train import TrainConfig

    return TrainConfig(steps=settings["steps"], lr_g=settings["lr_g"], lr_d=settings["lr_d"],
                       eval_samples=settings["eval_samples"], device="cpu").resolved(task)


class FrozenD(AbstractQuestion):
    name = "frozen-d"
    question = ("How is the generator trained through a frozen discriminator, and what do "
                "the usual mistakes in that step (D not frozen, its gradients not cleared, "
                "fakes not detached) do to training?")
    origin = ("How is the generator in a GAN trained? 'treat the entire thing like one giant "
              "network where the weights in the discriminator portion are constant?' "
              "(Cross Validated 237944)")
    quick = {"seeds": 12, "steps": 1200, "loc": 0.0, "lr_g": 0.01, "lr_d": 0.03,
             "exact_iterations": 20, "eval_every": 50, "eval_samples": 2000}
    full = {"seeds": 30, "steps": 4000, "loc": 0.0, "lr_g": 0.01, "lr_d": 0.03,
            "exact_iterations": 200, "eval_every": 100, "eval_samples": 2500}

    def experiment(self, settings: dict[str, Any], seed: int) -> dict[str, pd.DataFrame]:
        from gangrad import tasks

        if settings["steps"] % 2 or settings["steps"] % settings["eval_every"] or (
                settings["steps"] // 2) % settings["eval_every"]:
            raise ValueError(f"frozen-d: steps ({settings['steps']}) must be even and T/2 a "
                             f"multiple of eval_every ({settings['eval_every']})")
        task = tasks.create("gaussian1d", features="quadratic", loc=settings["loc"])
        cfg = _config(task, settings)
        seeds = list(range(seed, seed + settings["seeds"]))
        exact = exact_check(task, cfg, seeds, settings["exact_iterations"])
        same = exact.groupby("loop")[["G_max_abs_diff", "D_max_abs_diff"]].max().max(axis=1)
        rows = []
        for loop in LOOPS:
            if loop is not CORRECT and same[loop.label] == 0:
                continue  # bit for bit the correct loop: its training is the correct one's
            for s, h in zip(seeds, train_loop(task, cfg, seeds, loop, settings["eval_every"]),
                            strict=True):
                ok = h.attrs["status"] == "ok"
                for rec in h.to_dict("records"):
                    rows.append({"arm": loop.label, "seed": s, "step": int(rec["step"]),
                                 "status": h.attrs["status"],
                                 **{m: (float(rec[m]) if ok and m in rec else math.nan)
                                    for m in ("w1", "ks", "d_loss", "g_loss")}})
        return {"curves": pd.DataFrame(rows), "exact": exact}

    def table(self, data: dict[str, pd.DataFrame]) -> pd.DataFrame:
        return data["curves"]

    def analyse(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]) -> Verdict:
        from gangrad import tasks

        curves, exact = data["curves"], data["exact"]
        T = settings["steps"]
        margin = tasks.create("gaussian1d").metric("w1").margin
        diff = exact.groupby("loop")[["G_max_abs_diff", "D_max_abs_diff", "G_rel_diff",
                                      "D_rel_diff"]].max()
        labels = [lp.label for lp in LOOPS if lp is not CORRECT]
        same = [lab for lab in labels if diff.loc[lab, ["G_max_abs_diff",
                                                         "D_max_abs_diff"]].max() == 0]
        changed = [lab for lab in labels if lab not in same]
        table = pd.concat([curves[curves["step"] == T // 2].assign(budget="T/2"),
                           curves[curves["step"] == T].assign(budget="T")],
                          ignore_index=True)
        decision = decide(table.assign(W1=table["w1"]), changed, CORRECT.label, "W1", False,
                          margin)
        end = table[table["budget"] == "T"].groupby("arm")[["w1", "d_loss"]].mean()
        code = {lp.label: lp.code for lp in LOOPS}
        n = settings["exact_iterations"]

        outcomes = {lab: decision.outcomes[lab] for lab in changed}
        harm = [lab for lab in changed if outcomes[lab] == "worse"]
        harmless = [lab for lab in changed if outcomes[lab] == "equivalent"]
        # not converged, but the same resolved outcome at both budgets
        steady = [lab for lab in changed if outcomes[lab] == BUDGET_DEPENDENT
                  and decision.half[lab].outcome == decision.end[lab].outcome
                  in ("better", "worse")]
        unsettled = [lab for lab in changed if lab not in harm + harmless + steady
                     and outcomes[lab] != "better"]
        helped = [lab for lab in changed if outcomes[lab] == "better"]
        clauses = []
        if same:
            clauses.append(f"{_join(same)} {_verb(same, 'leaves', 'leave')} the update bit "
                           "for bit unchanged (only a backward pass is wasted)")
        if harm:
            clauses.append(f"{_join(harm)} {_verb(harm, 'makes', 'make')} training end worse")
        if helped:
            clauses.append(f"{_join(helped)} {_verb(helped, 'makes', 'make')} training end "
                           "better")
        if harmless:
            clauses.append(f"{_join(harmless)} {_verb(harmless, 'changes', 'change')} the "
                           f"update but {_verb(harmless, 'ends', 'end')} equivalent once "
                           "converged")
        for lab in steady:
            clauses.append(f"'{lab}' is {decision.end[lab].outcome} at both budgets and has "
                           "not converged")
        if unsettled:
            clauses.append(f"{_join(unsettled)} {_verb(unsettled, 'changes', 'change')} the "
                           "update with an effect not settled within this budget")
        answer = ("Yes: G's loss is backpropagated through D ∘ G as one network and only G's "
                  "parameters are stepped, D's held constant; of the usual mistakes, "
                  + _join(clauses, quote=False) + ".")

        lines = ["- Exact, from the same state and batches, parameters after "
                 f"{n} iterations against the correct loop (largest absolute difference "
                 "over seeds, G and D):"]
        for lab in labels:
            d = diff.loc[lab]
            lines.append(f"  - {lab} (`{code[lab]}`): "
                         + ("identical bits (difference 0)" if lab in same else
                            f"G {d['G_max_abs_diff']:.3g} (relative {d['G_rel_diff']:.3g}), "
                            f"D {d['D_max_abs_diff']:.3g} (relative {d['D_rel_diff']:.3g})"))
        lines.append(
            f"- Training (gaussian1d, data N({settings['loc']:g}, 1.25²), D on x and x², "
            f"Adam lr_g {settings['lr_g']:g}, lr_d {settings['lr_d']:g}, the same for every "
            f"loop, {settings['seeds']} seeds, {T} iterations; correct loop: W1 "
            f"{end.loc[CORRECT.label, 'w1']:.3f}, D's loss {end.loc[CORRECT.label, 'd_loss']:.3f}"
            f" against 2·log 2 = {2 * math.log(2):.3f} at equilibrium):")
        for lab in changed:
            head = f"{lab}: " if outcomes[lab] == BUDGET_DEPENDENT else ""
            lines.append(f"  - {head}{decision.sentence(lab)} (mean W1 "
                         f"{end.loc[lab, 'w1']:.3f}, "
                         f"D's loss {end.loc[lab, 'd_loss']:.3f}).")
        numbers = {"exact": {lab: {k: float(v) for k, v in diff.loc[lab].items()}
                             for lab in labels},
                   "same_update": same, "changed_update": changed,
                   "training": {lab: decision.numbers(lab) for lab in changed},
                   "w1_mean_at_T": end["w1"].to_dict(), "d_loss_at_T": end["d_loss"].to_dict()}
        outcome = ("worse" if harm else "better" if helped
                   else "equivalent" if harmless and not (steady or unsettled)
                   else BUDGET_DEPENDENT if steady or unsettled else "agrees")
        changes = (
            "A bit-for-bit check holds only for loops written exactly as here: a mistake "
            "that is harmless because some later line clears the stray gradients becomes "
            "harmful when that line moves (the last two loops). The training effects are "
            "measured on a small GAN with one D step per G step, the same learning rates "
            "for every loop and the non-saturating loss; with several D steps per G step, "
            "other learning rates, or SGD's plain (unnormalised) steps, their size can "
            "differ. A loop tuned on its own might recover part of what it loses.")
        return Verdict("\n".join(lines), numbers, outcome, answer=answer,
                       convergence=convergence_record(decision), changes=changes)

    def figure(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]):
        curves, exact = data["curves"], data["exact"]
        fig, axes = new_figure(1, 2, width=12, height=4.0)
        diff = exact.groupby("loop")[["G_rel_diff", "D_rel_diff"]].max()
        labels = [lp.label for lp in LOOPS if lp is not CORRECT]
        for j, net in enumerate(("G", "D")):
            values = [max(diff.loc[lab, f"{net}_rel_diff"], 1e-12) for lab in labels]
            axes[0].barh([i + 0.4 * j for i in range(len(labels))], values, height=0.4,
                         color=f"C{j}", label=f"{net}'s parameters")
        for i, lab in enumerate(labels):
            if max(diff.loc[lab, "G_rel_diff"], diff.loc[lab, "D_rel_diff"]) == 0:
                axes[0].text(3e-12, i + 0.2, "identical bits", va="center", fontsize=8)
        axes[0].set_yticks([i + 0.2 for i in range(len(labels))], labels, fontsize=8)
        axes[0].set_xscale("log")
        axes[0].axvline(1e-12, color="k", lw=0.8)
        axes[0].set(xlabel="relative difference from the correct loop",
                    title=f"after {settings['exact_iterations']} iterations, same batches")
        axes[0].legend(fontsize=8)
        for i, (arm, g) in enumerate(curves.groupby("arm", sort=False)):
            stats = g.groupby("step")["w1"].agg(["mean", "min", "max"])
            axes[1].plot(stats.index, stats["mean"], color=f"C{i}", lw=1.5, label=arm)
            axes[1].fill_between(stats.index, stats["min"], stats["max"], color=f"C{i}",
                                 alpha=0.12)
        axes[1].axvline(settings["steps"] // 2, color="k", ls=":", lw=0.8)
        axes[1].set(xlabel="iteration", ylabel="W1", yscale="log",
                    title="gaussian1d, D on x and x²")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        return fig, ("Left: how far each mistaken loop's parameters are from the correct "
                     "loop's after the same iterations on the same batches (largest over "
                     "seeds; 'identical bits': no difference at all). Right: W1 along training of "
                     "the correct loop and of each loop that changes the update (mean over "
                     "seeds; band: min to max; dotted: T/2 of the convergence check).")


def _verb(items: list[str], one: str, many: str) -> str:
    return one if len(items) == 1 else many


def _join(items: list[str], quote: bool = True) -> str:
    items = [f"'{i}'" if quote else i for i in items]
    if len(items) < 3 or quote:
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    return ", ".join(items[:-1]) + ", and " + items[-1]
