"""Is a D update on a real batch then a fake batch the same as one update on a mixed
batch, and how can D learn at all when each step holds one class only?

Theory. D's loss on a real batch ``R`` and a fake batch ``F`` is a sum over samples,

.. math:: L(θ) = \\frac{1}{|R|}\\sum_{x∈R} ℓ(D_θ(x), 1) + \\frac{1}{|F|}\\sum_{x∈F} ℓ(D_θ(x), 0),

so without batch norm the gradient of one mixed forward pass equals the sum of the
real-only and fake-only gradients, exactly: the two classes meet in the parameters, not in
the batch. Two backward passes, one per class, whose gradients accumulate before **one**
optimizer step therefore make the mixed step, up to float rounding, whatever the
optimizer. Two optimizer steps, real then fake, are a different update: under SGD
``θ − η g_R(θ) − η g_F(θ − η g_R)`` against ``θ − η(g_R + g_F)(θ)``, an ``O(η²)``
curvature term; under Adam much more, because Adam's first step is ``≈ η·sign(g)``
whatever the batch holds. With batch norm each pass normalizes by its own batch's
statistics, so even the gradients differ.

Experiment (``ring8``'s discriminator MLP, with and without ``BatchNorm1d``):

1. *One update* from the same D, real batch and fake batch (from the initial G), per
   seed, under Adam and under SGD: the relative difference from one mixed step of the
   parameter change after (a) separate real and fake passes and one step, (b) two steps,
   real then fake, and (c) two steps on mixed half batches; and of the gradients of
   separate and mixed passes.
2. *Learning*: D trained from scratch to tell ring8 (radius 1, std 0.01) from a fixed fake
   distribution, the same ring shrunk to radius 0.95 (a G that has found the modes'
   directions but not their distance), with the same samples in the same number of
   steps, either mixed (each step half real, half fake) or alternating (a real-only step,
   then a fake-only step); held-out AUC (and accuracy at threshold 0, cross-entropy) on
   fresh samples along training. The classes are separable, so a converged D's AUC is 1.

Analysis: (1) the largest relative differences over seeds, beside float32 rounding; the
departure of real-then-fake from one mixed step against that of two mixed steps, paired
over seeds (:func:`gangrad.stats.compare_paired`, margin ``UPDATE_MARGIN``). (2)
alternating against mixed held-out AUC per optimizer, paired over seeds at ``T/2`` and
``T`` under the convergence rule (:func:`gangrad.questions._arms.decide`, margin
``AUC_MARGIN``). The verdict's outcome is (2) under Adam.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
import torch
from torch import nn

from gangrad.plotting import new_figure
from gangrad.questions._arms import Decision, convergence_record, decide
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.stats import Comparison, compare_paired, fmt_ci, mean_ci

__all__ = ["ARMS", "SeparateBatches", "auc", "budget_table", "discriminator", "gradients",
           "learning", "loss", "one_update", "plan"]

ROUND_OFF = 1e-4  # relative differences below this are float32 rounding (Adam's first
# step, ≈ lr·g/(|g| + ε), turns rounding in near-zero gradient entries into up to lr each)
ROUND_OFF_F64 = 1e-9  # the same in float64
UPDATE_MARGIN = 0.05  # relative update differences this close are the same departure
AUC_MARGIN = 0.02  # held-out AUCs this close are the same D
FAKE_RADIUS = 0.95  # the fixed fake distribution: ring8 shrunk to this radius
LR = {"adam": 2e-4, "sgd": 0.05}  # one update (part 1)
LEARNING_LR = {"adam": 1e-3, "sgd": 0.1}  # learning (part 2)
#: the ways of spending one real and one fake batch (:func:`plan`)
ARMS = ("one mixed", "separate passes", "two mixed", "alternating")
OPTIMIZERS = {"adam": "Adam", "sgd": "SGD"}


def discriminator(batch_norm: bool, hidden: int = 128, depth: int = 3) -> nn.Module:
    """ring8's discriminator (2 → depth×hidden LeakyReLU(0.2) → 1 logit, shape ``(B, 1)``),
    optionally with ``BatchNorm1d`` after each hidden ``Linear``."""
    layers, width = [], 2
    for _ in range(depth):
        layers += [nn.Linear(width, hidden)]
        if batch_norm:
            layers += [nn.BatchNorm1d(hidden)]
        layers += [nn.LeakyReLU(0.2)]
        width = hidden
    layers += [nn.Linear(width, 1)]
    return nn.Sequential(*layers)


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def loss(D, real: torch.Tensor, fake: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``scale ×`` D's cross-entropy: the mean over the real rows plus the mean over the
    fake rows (dimension −2), from one forward pass over the rows concatenated; a class
    with no rows adds nothing. ``D`` maps ``(..., N, 2)`` to ``(..., N, 1)``; the result
    keeps the leading dimensions (one value per stacked seed)."""
    n = real.shape[-2]
    logits = D(torch.cat([real, fake], -2))[..., 0]
    out = 0.0
    if n:
        out = out + nn.functional.softplus(-logits[..., :n]).mean(-1)
    if fake.shape[-2]:
        out = out + nn.functional.softplus(logits[..., n:]).mean(-1)
    return scale * out


def gradients(D: nn.Module, real: torch.Tensor, fake: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """D's parameter gradient of the loss from one mixed forward pass, and of the sum of
    the real-only and fake-only losses from two separate passes."""
    none = real[:0]
    mixed, separate = copy.deepcopy(D), copy.deepcopy(D)
    g_mix = torch.autograd.grad(loss(mixed, real, fake), list(mixed.parameters()))
    g_sep = torch.autograd.grad(loss(separate, real, none) + loss(separate, none, fake),
                                list(separate.parameters()))
    return _flat(g_mix), _flat(g_sep)


def _optimizer(params, optimizer: str, lr: dict[str, float] = LR) -> torch.optim.Optimizer:
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr["adam"], betas=(0.5, 0.999))
    return torch.optim.SGD(params, lr=lr["sgd"])


def plan(arm: str, real: torch.Tensor, fake: torch.Tensor
         ) -> list[list[tuple[torch.Tensor, torch.Tensor, float]]]:
    """The optimizer steps of ``arm`` (:data:`ARMS`) that spend one real and one fake batch
    (rows on dimension −2), each step a list of backward passes ``(real rows, fake rows,
    loss scale)`` whose gradients accumulate before it: ``"one mixed"`` (one step, one
    pass on both), ``"separate passes"`` (one step, a real-only and a fake-only pass),
    ``"two mixed"`` (two steps, each on half of each class) or ``"alternating"`` (a
    real-only step, then a fake-only one). Scales make each arm's summed gradient the
    mixed one, so SGD's arms agree to first order in the learning rate (Adam ignores the
    scale)."""
    h, none_r, none_f = real.shape[-2] // 2, real[..., :0, :], fake[..., :0, :]
    if arm == "one mixed":
        return [[(real, fake, 1.0)]]
    if arm == "separate passes":
        return [[(real, none_f, 1.0), (none_r, fake, 1.0)]]
    if arm == "two mixed":
        return [[(real[..., :h, :], fake[..., :h, :], 0.5)],
                [(real[..., h:, :], fake[..., h:, :], 0.5)]]
    if arm == "alternating":
        return [[(real, none_f, 1.0)], [(none_r, fake, 1.0)]]
    raise ValueError(f"arm must be one of {', '.join(repr(a) for a in ARMS)}, got {arm!r}")


def _step(D, opt: torch.optim.Optimizer, passes) -> None:
    opt.zero_grad()
    for r, f, scale in passes:
        total = loss(D, r, f, scale)
        (total.sum() if total.dim() else total).backward()
    opt.step()


def _update(D: nn.Module, optimizer: str, arm: str, real, fake) -> torch.Tensor:
    """D's parameter change after ``arm``'s steps on one real and one fake batch."""
    D = copy.deepcopy(D)
    p0 = _flat(D.parameters())
    opt = _optimizer(D.parameters(), optimizer)
    for passes in plan(arm, real, fake):
        _step(D, opt, passes)
    return _flat(D.parameters()) - p0


def one_update(batch_norm: bool, seed: int, batch: int = 128) -> dict[str, float]:
    """Part (1) for one seed: relative differences against one mixed step."""
    from gangrad import tasks

    task = tasks.create("ring8")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    G, D = task.make_generator((2,)), discriminator(batch_norm)
    real = task.sample_real(batch, generator=gen)
    with torch.no_grad():
        fake = G(task.sample_latent(batch, generator=gen))
    g_mix, g_sep = gradients(D, real, fake)
    row: dict[str, float] = {"grad_rel_diff": _rel(g_sep, g_mix)}
    for opt in OPTIMIZERS:
        one = _update(D, opt, "one mixed", real, fake)
        for arm in ("separate passes", "alternating", "two mixed"):
            row[f"{opt}_{arm.replace(' ', '_')}"] = _rel(_update(D, opt, arm, real, fake), one)
    # the same in float64: a difference that is float32 rounding shrinks by ~1e9
    D64, real64, fake64 = copy.deepcopy(D).double(), real.double(), fake.double()
    row["grad_rel_diff_f64"] = _rel(*gradients(D64, real64, fake64)[::-1])
    for opt in OPTIMIZERS:
        row[f"{opt}_separate_passes_f64"] = _rel(
            _update(D64, opt, "separate passes", real64, fake64),
            _update(D64, opt, "one mixed", real64, fake64))
    return row


def auc(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> float:
    """Area under the ROC curve, ``P(D(real) > D(fake))`` (ties count ½), by the
    Mann–Whitney rank sum: how well D ranks real above fake, whatever its offset."""
    n, m = len(real_logits), len(fake_logits)
    ranks = scipy.stats.rankdata(torch.cat([real_logits, fake_logits]).numpy())
    return float((ranks[:n].sum() - n * (n + 1) / 2) / (n * m))


def learning(seeds: list[int], optimizer: str, steps: int, eval_every: int,
             hidden: int = 128, batch: int = 128, held_out: int = 2000) -> pd.DataFrame:
    """Part (2): D (no batch norm, ``hidden`` units per layer) trained from each seed on
    the same samples, mixed or alternating by class, all seeds as one stacked model,
    evaluated every ``eval_every`` steps (and at 0): one row per (arm, seed, step) with
    held-out ``auc``, ``accuracy`` at threshold 0 and ``bce``."""
    from gangrad import tasks
    from gangrad.train.stacked import Stack

    if steps % 2 or eval_every % 2:
        raise ValueError(f"learning: steps ({steps}) and eval_every ({eval_every}) must be "
                         "even: each pair of steps spends one real and one fake batch")
    real_task, fake_task = tasks.create("ring8"), tasks.create("ring8", radius=FAKE_RADIUS)
    pairs = steps // 2
    data = {k: [] for k in ("real", "fake", "test_real", "test_fake")}
    nets = []
    for s in seeds:
        gen = torch.Generator().manual_seed(s)
        data["real"].append(real_task.sample_real(pairs * batch, generator=gen))
        data["fake"].append(fake_task.sample_real(pairs * batch, generator=gen))
        data["test_real"].append(real_task.sample_real(held_out, generator=gen))
        data["test_fake"].append(fake_task.sample_real(held_out, generator=gen))
        torch.manual_seed(s)
        nets.append(discriminator(False, hidden=hidden))
    S = len(seeds)
    real = torch.stack(data["real"]).reshape(S, pairs, batch, 2)
    fake = torch.stack(data["fake"]).reshape(S, pairs, batch, 2)
    test_real, test_fake = torch.stack(data["test_real"]), torch.stack(data["test_fake"])
    rows = []

    def evaluate(D, arm: str, step: int) -> None:
        with torch.no_grad():
            lr_, lf = D(test_real)[..., 0], D(test_fake)[..., 0]
        acc = ((lr_ > 0).float().mean(1) + (lf < 0).float().mean(1)) / 2
        bce = (nn.functional.softplus(-lr_).mean(1) + nn.functional.softplus(lf).mean(1)) / 2
        for i, s in enumerate(seeds):
            rows.append({"optimizer": optimizer, "arm": "mixed" if arm == "two mixed" else arm,
                         "seed": s, "step": step, "auc": auc(lr_[i], lf[i]),
                         "accuracy": float(acc[i]), "bce": float(bce[i])})

    for arm in ("two mixed", "alternating"):
        D = Stack([copy.deepcopy(n) for n in nets])
        opt = _optimizer(list(D.params.values()), optimizer, LEARNING_LR)
        evaluate(D, arm, 0)
        for p in range(pairs):
            for passes in plan(arm, real[:, p], fake[:, p]):
                _step(D, opt, passes)
            if (2 * (p + 1)) % eval_every == 0:
                evaluate(D, arm, 2 * (p + 1))
    return pd.DataFrame(rows)


def _cmp_text(c: Comparison, what: str) -> str:
    text = (f"{c.outcome} ({what}: difference {c.difference:+.3g}, 95% paired CI "
            f"{c.lo:+.3g} to {c.hi:+.3g}, {c.seeds} seeds")
    if c.outcome == "undetermined" and c.seeds_needed:
        text += f"; about {c.seeds_needed} more seeds would decide"
    return text + ")"


def _label(optimizer: str, arm: str) -> str:
    return f"{OPTIMIZERS[optimizer]}: {arm}"


def _learning_phrase(d: Decision, optimizer: str) -> str:
    """What alternating steps do against mixed ones under ``optimizer``, in words, from the
    decision at both budgets."""
    alt, mix = _label(optimizer, "alternating"), _label(optimizer, "mixed")
    outcome = d.outcomes[alt]
    than = {"better": "better than", "worse": "less well than"}
    if outcome in than:
        return f"separates the classes {than[outcome]} with mixed batches once both converged"
    if outcome == "equivalent":
        return "separates the classes as well as with mixed batches once both converged"
    if outcome == "undetermined":
        return "cannot be told apart from mixed batches with these seeds"
    half, end = d.half[alt].outcome, d.end[alt].outcome
    if half == end and end in than:
        moving = [a.split(": ")[1] for a in (alt, mix) if not d.convergence[a].converged]
        which = (f"{moving[0]} training has not converged" if len(moving) == 1
                 else "neither arm's training has converged")
        return (f"separates the classes {than[end]} with mixed batches at both budgets, "
                f"though {which}")
    return "has not settled against mixed batches within the budget"


def budget_table(learn: pd.DataFrame, steps: int) -> pd.DataFrame:
    """The learning rows at ``T/2`` and ``T`` as :func:`~gangrad.questions._arms.decide`
    reads them (``arm`` ``"Adam: mixed"`` etc., ``budget``)."""
    parts = []
    for budget, at in (("T/2", steps // 2), ("T", steps)):
        rows = learn[learn["step"] == at].copy()
        rows["arm"] = [_label(o, a) for o, a in zip(rows["optimizer"], rows["arm"],
                                                     strict=True)]
        parts.append(rows.assign(budget=budget))
    return pd.concat(parts, ignore_index=True)


class SeparateBatches(AbstractQuestion):
    name = "separate-batches"
    question = ("Is a D update on a real batch then a fake batch the same as one update on a "
                "mixed batch, and how can D learn when each step holds one class only?")
    origin = ("How can D learn when the real and the fake samples come in separate steps? "
              "(Cross Validated 303368, question 4)")
    quick = {"seeds": 8, "learning_steps": 4000, "eval_every": 200, "hidden": 64}
    full = {"seeds": 30, "learning_steps": 10000, "eval_every": 500, "hidden": 128}

    def experiment(self, settings: dict[str, Any], seed: int) -> dict[str, pd.DataFrame]:
        seeds = list(range(seed, seed + settings["seeds"]))
        update = pd.DataFrame([{"batch_norm": bn, "seed": s, **one_update(bn, s)}
                               for bn in (False, True) for s in seeds])
        learn = pd.concat([learning(seeds, opt, settings["learning_steps"],
                                    settings["eval_every"], hidden=settings["hidden"])
                           for opt in OPTIMIZERS], ignore_index=True)
        return {"update": update, "learning": learn}

    def table(self, data: dict[str, pd.DataFrame]) -> pd.DataFrame:
        return data["learning"]

    def analyse(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]) -> Verdict:
        numbers: dict[str, Any] = {}
        exact, lines = {}, []
        for bn in (False, True):
            name = "with batch norm" if bn else "without batch norm"
            u = data["update"][data["update"]["batch_norm"] == bn].set_index("seed")
            nums: dict[str, Any] = {"max_grad_rel_diff": float(u["grad_rel_diff"].max())}
            cmp = {}
            for opt in OPTIMIZERS:
                nums[f"max_{opt}_separate_passes"] = float(u[f"{opt}_separate_passes"].max())
                for arm in ("alternating", "two_mixed"):
                    nums[f"{opt}_{arm}"] = list(mean_ci(u[f"{opt}_{arm}"], low=0))
                cmp[opt] = compare_paired(u[f"{opt}_alternating"].to_dict(),
                                          u[f"{opt}_two_mixed"].to_dict(),
                                          higher_is_better=False, margin=UPDATE_MARGIN,
                                          names=("real then fake", "two mixed"))
                nums[f"{opt}_real_then_fake_vs_two_mixed"] = cmp[opt].__dict__
            for key in ("grad_rel_diff_f64", "adam_separate_passes_f64",
                        "sgd_separate_passes_f64"):
                nums[f"max_{key}"] = float(u[key].max())
            f32 = max(nums["max_grad_rel_diff"], nums["max_adam_separate_passes"],
                      nums["max_sgd_separate_passes"])
            f64 = max(nums["max_grad_rel_diff_f64"], nums["max_adam_separate_passes_f64"],
                      nums["max_sgd_separate_passes_f64"])
            same = f32 < ROUND_OFF and f64 < ROUND_OFF_F64
            exact[bn] = (same, f32, f64)
            numbers[name] = nums
            lines.append(
                f"- {name.capitalize()}: separate real and fake passes, then one optimizer "
                f"step, {'make' if same else 'do not make'} the mixed step. Largest relative "
                f"difference of the step over {len(u)} seeds: "
                f"{nums['max_adam_separate_passes']:.2g} (Adam), "
                f"{nums['max_sgd_separate_passes']:.2g} (SGD); of the gradients: "
                f"{nums['max_grad_rel_diff']:.2g}; in float64 "
                f"{nums['max_adam_separate_passes_f64']:.2g}, "
                f"{nums['max_sgd_separate_passes_f64']:.2g} and "
                f"{nums['max_grad_rel_diff_f64']:.2g}"
                + (" (float rounding: it shrinks with the precision)." if same else
                   " (each pass normalizes by its own batch's statistics)."))
            lines.append(
                f"  Two optimizer steps instead, real then fake, depart from one mixed step by "
                f"{fmt_ci(*nums['adam_alternating'])} relative under Adam (two mixed "
                f"half-batch steps: {fmt_ci(*nums['adam_two_mixed'])}; real then fake "
                f"against them: " + _cmp_text(cmp["adam"], "Adam") + ") and by "
                f"{fmt_ci(*nums['sgd_alternating'])} under SGD at lr {LR['sgd']:g} (two mixed: "
                f"{fmt_ci(*nums['sgd_two_mixed'])}; " + _cmp_text(cmp["sgd"], "SGD") + ").")

        learn, steps = data["learning"], settings["learning_steps"]
        table = budget_table(learn, steps)
        scored = table.rename(columns={"auc": "AUC"})
        decisions = {opt: decide(scored, [_label(opt, "alternating")], _label(opt, "mixed"),
                                 "AUC", True, AUC_MARGIN) for opt in OPTIMIZERS}
        end = table[table["budget"] == "T"].groupby("arm")[["auc", "accuracy", "bce"]].mean()
        half = table[table["budget"] == "T/2"].groupby("arm")["auc"].mean()
        for opt, d in decisions.items():
            alt, mix = _label(opt, "alternating"), _label(opt, "mixed")
            numbers[f"learning {opt}"] = {
                **d.numbers(alt), "lr": LEARNING_LR[opt],
                "auc_at_T": {a: float(end.loc[a, "auc"]) for a in (alt, mix)},
                "auc_at_half_T": {a: float(half.loc[a]) for a in (alt, mix)},
                "accuracy_at_T": {a: float(end.loc[a, "accuracy"]) for a in (alt, mix)},
                "bce_at_T": {a: float(end.loc[a, "bce"]) for a in (alt, mix)}}
            lines.append(
                f"- Learning from scratch with {OPTIMIZERS[opt]} (lr {LEARNING_LR[opt]:g}, "
                f"{steps} steps, the same samples, no batch norm, {settings['hidden']} units "
                f"per layer): held-out AUC alternating {end.loc[alt, 'auc']:.4f} against mixed "
                f"{end.loc[mix, 'auc']:.4f} (at step {steps // 2}: {half.loc[alt]:.4f} against "
                f"{half.loc[mix]:.4f}); {d.sentence(alt)}. Accuracy at threshold 0: "
                f"{end.loc[alt, 'accuracy']:.3f} against {end.loc[mix, 'accuracy']:.3f}.")

        adam, sgd = decisions["adam"], decisions["sgd"]
        oa = adam.outcomes[_label("adam", "alternating")]
        a_alt, a_mix = end.loc["Adam: alternating", "auc"], end.loc["Adam: mixed", "auc"]
        s_alt, s_mix = end.loc["SGD: alternating", "auc"], end.loc["SGD: mixed", "auc"]
        same, f32, f64 = exact[False]
        grad = numbers["without batch norm"]["max_grad_rel_diff"]
        exact_part = (
            f"Yes, exactly, when both passes' gradients go into one optimizer step: that "
            f"update is the mixed batch's up to float rounding (relative differences "
            f"{grad:.1g} in the gradient and at most {f32:.1g} in the step in float32, at "
            f"most {f64:.1g} in float64)" if same else
            f"Not even with one optimizer step after both passes (relative difference up to "
            f"{f32:.2g} in float32, {f64:.2g} in float64)")
        if not exact[True][0]:
            exact_part += f", except with batch norm ({exact[True][2]:.2g})"
        how = ("; one optimizer step per class is a different update, yet D learns from it "
               "because the real step's change is still in its parameters when the fake "
               "step comes")
        answer = (exact_part + how
                  + f": with Adam it {_learning_phrase(adam, 'adam')} (held-out AUC "
                    f"{a_alt:.4f} against {a_mix:.4f}), and with plain SGD at lr "
                    f"{LEARNING_LR['sgd']:g} it {_learning_phrase(sgd, 'sgd')} "
                    f"({s_alt:.3f} against {s_mix:.3f}).")
        changes = (
            "Batch norm breaks the exact identity (each pass has its own batch statistics). "
            "The learning comparison uses one fixed, separable fake distribution and one "
            "learning rate per optimizer shared by both arms: a learning rate tuned per arm, "
            "SGD with momentum, or far longer SGD runs could move the SGD result, and a "
            "fake distribution that overlaps the real one would compare the arms below an "
            "AUC of 1.")
        return Verdict("\n".join(lines), numbers, oa, answer=answer,
                       convergence=convergence_record(*decisions.values()), changes=changes)

    def figure(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]):
        fig, axes = new_figure(1, 2, width=13, height=4.4)
        u, learn = data["update"], data["learning"]
        cols = ["grad_rel_diff", "adam_separate_passes", "sgd_separate_passes",
                "adam_alternating", "adam_two_mixed", "sgd_alternating", "sgd_two_mixed"]
        labels = ["gradient:\nseparate\nvs mixed", "Adam:\nseparate\npasses,\n1 step",
                  "SGD:\nseparate\npasses,\n1 step", "Adam:\nreal then\nfake",
                  "Adam:\ntwo\nmixed", "SGD:\nreal then\nfake", "SGD:\ntwo\nmixed"]
        ax = axes[0]
        groups = [("without batch norm", u[~u["batch_norm"]], ""),
                  ("without batch norm, float64", u[~u["batch_norm"]], "_f64"),
                  ("with batch norm", u[u["batch_norm"]], "")]
        for j, (name, b, suffix) in enumerate(groups):
            for i, c in enumerate(cols):
                if c + suffix not in b:
                    continue
                v = b[c + suffix].clip(lower=1e-16)
                ax.scatter(i + (j - 1) * 0.22 + np.linspace(-0.05, 0.05, len(v)), v, s=10,
                           color=f"C{j}", marker="x" if suffix else "o",
                           label=name if i == 0 else None)
        ax.axhline(ROUND_OFF, color="grey", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(cols)), labels, fontsize=7)
        ax.set_ylabel("relative difference from one mixed step")
        ax.set_title("one update from the same D and batches", fontsize=9)
        ax.legend(fontsize=8)
        ax = axes[1]
        for i, ((opt, arm), g) in enumerate(learn.groupby(["optimizer", "arm"], sort=False)):
            stats = g.groupby("step")["auc"].agg(["mean", "min", "max"])
            ax.plot(stats.index, stats["mean"], color=f"C{i + 3}", lw=1.5,
                    label=_label(opt, arm), ls="-" if opt == "adam" else "--")
            ax.fill_between(stats.index, stats["min"], stats["max"], color=f"C{i + 3}",
                            alpha=0.12)
        ax.axhline(0.5, color="grey", ls=":", lw=0.8)
        ax.axvline(settings["learning_steps"] // 2, color="k", ls=":", lw=0.8)
        ax.set(xlabel="D steps", ylabel="held-out AUC (0.5 = chance)",
               title="D trained on the same samples, mixed or alternating")
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig, ("Left: relative difference from one mixed step of other ways of making "
                     "D's update from one real and one fake batch (ring8's D at "
                     "initialisation; one point per seed; dashed: float32 rounding "
                     f"{ROUND_OFF:g}; crosses: the same in float64). Right: held-out AUC "
                     "along training of a D "
                     f"learning ring8 against the same ring shrunk to radius {FAKE_RADIUS:g}, "
                     "with mixed or alternating one-class steps on the same samples (mean "
                     "over seeds; band: min to max; dotted: T/2 of the convergence check).")
