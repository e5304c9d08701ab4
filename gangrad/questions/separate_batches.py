"""Is a D update on a real batch then a fake batch the same as one update on a mixed
batch, and how can D learn at all when each step holds one class only?

Theory. D's loss on a real batch ``R`` and a fake batch ``F`` is a sum over samples,

.. math:: L(θ) = \\frac{1}{|R|}\\sum_{x∈R} ℓ(D_θ(x), 1) + \\frac{1}{|F|}\\sum_{x∈F} ℓ(D_θ(x), 0),

so without batch norm the gradient of one mixed forward pass equals the sum of the
real-only and fake-only gradients, exactly: the two classes meet in the parameters, not in
the batch. Two optimizer steps, real then fake, differ from one mixed step only by what
any two steps differ by: under SGD with each step taking one class's term,
``θ − η g_R(θ) − η g_F(θ − η g_R)`` against ``θ − η(g_R + g_F)(θ)``, an ``O(η²)`` curvature
term; under Adam much more, because Adam's first step is ``≈ η·sign(g)`` whatever the
batch holds. With batch norm each pass normalizes by its own batch's statistics, so the
identity fails.

Experiment (``ring8``'s discriminator MLP, with and without ``BatchNorm1d``):

1. *One update* from the same D, real batch and fake batch (from the initial G), per
   seed: the relative difference of the separate and mixed gradients, and of the
   parameter change after two steps real-then-fake, against one mixed step, beside two
   steps on mixed half batches against one mixed step, under Adam and under SGD.
2. *Learning*: D trained from scratch against a fixed fake distribution (ring8's modes,
   four times too wide, std 0.04: a G that has found the modes but not their width) with
   the same samples in the same number of steps, either mixed (each step half real, half
   fake) or alternating (a real-only step, then a fake-only step); held-out accuracy and
   cross-entropy on fresh samples (batch norm in eval mode, its running statistics).

Analysis: paired comparisons over seeds (:func:`gangrad.stats.compare_paired`): for (1),
the departure of real-then-fake from one mixed step against that of two mixed steps
(margin ``UPDATE_MARGIN``); for (2), alternating against mixed held-out accuracy (margin
``ACCURACY_MARGIN``). The verdict's outcome is (2) without batch norm.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
import torch
from torch import nn

from gangrad.plotting import new_figure
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.stats import Comparison, compare_paired, fmt_ci, mean_ci

__all__ = ["SeparateBatches", "auc", "discriminator", "gradients", "learning", "loss",
           "one_update", "plan"]

ROUND_OFF = 1e-4  # relative gradient difference at float32 round-off
UPDATE_MARGIN = 0.05  # relative update differences this close are the same departure
AUC_MARGIN = 0.02  # held-out AUCs this close are the same D
FAKE_RADIUS = 0.95  # the fixed fake distribution: ring8 shrunk to this radius
LR = {"adam": 2e-4, "sgd": 0.05}  # one update (part 1)
LEARNING_LR = {"adam": 1e-3, "sgd": 0.1}  # learning (part 2)


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
         ) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """The ``(real rows, fake rows, loss scale)`` of each step that spends one real and
    one fake batch (rows on dimension −2): ``"one mixed"`` (one step on both),
    ``"two mixed"`` (two steps, each half of each class) or ``"alternating"`` (a real-only
    step, then a fake-only one). Scales make each arm's summed gradient the mixed one, so
    SGD's arms agree to first order in the learning rate (Adam ignores the scale)."""
    h, none_r, none_f = real.shape[-2] // 2, real[..., :0, :], fake[..., :0, :]
    if arm == "one mixed":
        return [(real, fake, 1.0)]
    if arm == "two mixed":
        return [(real[..., :h, :], fake[..., :h, :], 0.5),
                (real[..., h:, :], fake[..., h:, :], 0.5)]
    if arm == "alternating":
        return [(real, none_f, 1.0), (none_r, fake, 1.0)]
    raise ValueError(f"arm must be one of 'one mixed', 'two mixed', 'alternating', got {arm!r}")


def _update(D: nn.Module, optimizer: str, arm: str, real, fake) -> torch.Tensor:
    """D's parameter change after ``arm``'s steps on one real and one fake batch."""
    D = copy.deepcopy(D)
    p0 = _flat(D.parameters())
    opt = _optimizer(D.parameters(), optimizer)
    for r, f, scale in plan(arm, real, fake):
        opt.zero_grad()
        loss(D, r, f, scale).backward()
        opt.step()
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
    for opt in ("adam", "sgd"):
        one = _update(D, opt, "one mixed", real, fake)
        row[f"{opt}_real_then_fake"] = _rel(_update(D, opt, "alternating", real, fake), one)
        row[f"{opt}_two_mixed"] = _rel(_update(D, opt, "two mixed", real, fake), one)
    return row


def auc(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> float:
    """Area under the ROC curve, ``P(D(real) > D(fake))`` (ties count ½), by the
    Mann–Whitney rank sum: how well D ranks real above fake, whatever its offset."""
    n, m = len(real_logits), len(fake_logits)
    ranks = scipy.stats.rankdata(torch.cat([real_logits, fake_logits]).numpy())
    return float((ranks[:n].sum() - n * (n + 1) / 2) / (n * m))


def learning(seeds: list[int], optimizer: str, steps: int, batch: int = 128,
             held_out: int = 2000) -> pd.DataFrame:
    """Part (2): D (no batch norm) trained from each seed on the same samples, mixed or
    alternating by class, all seeds as one stacked model; held-out accuracy and
    cross-entropy per seed and arm."""
    from gangrad import tasks
    from gangrad.train.stacked import Stack

    real_task, fake_task = tasks.create("ring8"), tasks.create("ring8", radius=FAKE_RADIUS)
    pairs = max(steps // 2, 1)  # each pair of steps spends one real and one fake batch
    data = {k: [] for k in ("real", "fake", "test_real", "test_fake")}
    nets = []
    for s in seeds:
        gen = torch.Generator().manual_seed(s)
        data["real"].append(real_task.sample_real(pairs * batch, generator=gen))
        data["fake"].append(fake_task.sample_real(pairs * batch, generator=gen))
        data["test_real"].append(real_task.sample_real(held_out, generator=gen))
        data["test_fake"].append(fake_task.sample_real(held_out, generator=gen))
        torch.manual_seed(s)
        nets.append(discriminator(False))
    S = len(seeds)
    real = torch.stack(data["real"]).reshape(S, pairs, batch, 2)
    fake = torch.stack(data["fake"]).reshape(S, pairs, batch, 2)
    test_real, test_fake = torch.stack(data["test_real"]), torch.stack(data["test_fake"])
    rows = {s: {"seed": s, "optimizer": optimizer} for s in seeds}
    for arm in ("two mixed", "alternating"):
        D = Stack([copy.deepcopy(n) for n in nets])
        opt = _optimizer(list(D.params.values()), optimizer, LEARNING_LR)
        for p in range(pairs):
            for r, f, scale in plan(arm, real[:, p], fake[:, p]):
                opt.zero_grad()
                loss(D, r, f, scale).sum().backward()
                opt.step()
        with torch.no_grad():
            lr_, lf = D(test_real)[..., 0], D(test_fake)[..., 0]
        acc = ((lr_ > 0).float().mean(1) + (lf < 0).float().mean(1)) / 2
        bce = (nn.functional.softplus(-lr_).mean(1) + nn.functional.softplus(lf).mean(1)) / 2
        key = "mixed" if arm == "two mixed" else arm
        for i, s in enumerate(seeds):
            rows[s][f"{key}_auc"] = auc(lr_[i], lf[i])
            rows[s][f"{key}_accuracy"] = float(acc[i])
            rows[s][f"{key}_bce"] = float(bce[i])
    return pd.DataFrame(list(rows.values()))


def _cmp_text(c: Comparison, what: str) -> str:
    text = (f"{c.outcome} ({what}: difference {c.difference:+.3g}, 95% paired CI "
            f"{c.lo:+.3g} to {c.hi:+.3g}, {c.seeds} seeds")
    if c.outcome == "undetermined" and c.seeds_needed:
        text += f"; about {c.seeds_needed} more seeds would decide"
    return text + ")"


class SeparateBatches(AbstractQuestion):
    name = "separate-batches"
    question = ("Is a D update on a real batch then a fake batch the same as one update on a "
                "mixed batch, and how can D learn when each step holds one class only?")
    origin = ("How can D learn when the real and the fake samples come in separate steps? "
              "(Cross Validated 303368, question 4)")
    quick = {"seeds": 8, "learning_steps": 200}
    full = {"seeds": 30, "learning_steps": 2000}

    def experiment(self, settings: dict[str, Any], seed: int) -> dict[str, pd.DataFrame]:
        seeds = list(range(seed, seed + settings["seeds"]))
        update = pd.DataFrame([{"batch_norm": bn, "seed": s, **one_update(bn, s)}
                               for bn in (False, True) for s in seeds])
        learn = pd.concat([learning(seeds, opt, settings["learning_steps"])
                           for opt in ("adam", "sgd")], ignore_index=True)
        return {"update": update, "learning": learn}

    def table(self, data: dict[str, pd.DataFrame]) -> pd.DataFrame:
        learn = data["learning"].pivot(index="seed", columns="optimizer")
        learn.columns = [f"learning_{opt}_{col}" for col, opt in learn.columns]
        return data["update"].merge(learn.reset_index(), on="seed")

    def analyse(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]) -> Verdict:
        numbers: dict[str, Any] = {}
        parts = []
        for bn in (False, True):
            name = "with batch norm" if bn else "without batch norm"
            u = data["update"][data["update"]["batch_norm"] == bn].set_index("seed")
            nums: dict[str, Any] = {"grad_rel_diff": list(mean_ci(u["grad_rel_diff"], low=0)),
                                    "max_grad_rel_diff": float(u["grad_rel_diff"].max())}
            cmp = {}
            for opt in ("adam", "sgd"):
                for arm in ("real_then_fake", "two_mixed"):
                    nums[f"{opt}_{arm}"] = list(mean_ci(u[f"{opt}_{arm}"], low=0))
                cmp[opt] = compare_paired(u[f"{opt}_real_then_fake"].to_dict(),
                                          u[f"{opt}_two_mixed"].to_dict(),
                                          higher_is_better=False, margin=UPDATE_MARGIN,
                                          names=("real then fake", "two mixed"))
                nums[f"{opt}_real_then_fake_vs_two_mixed"] = cmp[opt].__dict__
            numbers[name] = nums
            if not bn:
                two_steps = cmp["adam"].outcome == "equivalent"
            same = nums["max_grad_rel_diff"] < ROUND_OFF
            grad = (f"the gradient of separate real and fake passes equals the mixed one up "
                    f"to round-off (largest relative difference {nums['max_grad_rel_diff']:.1e})"
                    if same else
                    f"the gradient of separate passes differs from the mixed one by "
                    f"{fmt_ci(*nums['grad_rel_diff'])} relative (each pass normalizes by its "
                    "own batch statistics)")
            parts.append(
                f"{name.capitalize()}, {grad}. One update from the same D and batches: "
                f"real-then-fake departs from one mixed step by "
                f"{nums['adam_real_then_fake'][0]:.3g} relative under Adam, two mixed "
                f"half-batch steps by {nums['adam_two_mixed'][0]:.3g}; real-then-fake against "
                f"two mixed steps: " + _cmp_text(cmp["adam"], "Adam") + f"; under SGD "
                f"(lr {LR['sgd']:g}, each step half the mixed gradient) "
                f"{nums['sgd_real_then_fake'][0]:.3g} and "
                f"{nums['sgd_two_mixed'][0]:.3g}: " + _cmp_text(cmp["sgd"], "SGD") + ".")
        learn = data["learning"]
        steps = settings["learning_steps"]
        result = {}
        for opt in ("adam", "sgd"):
            lr = learn[learn["optimizer"] == opt].set_index("seed")
            c = compare_paired(lr["alternating_auc"].to_dict(), lr["mixed_auc"].to_dict(),
                               higher_is_better=True, margin=AUC_MARGIN,
                               names=("alternating", "mixed"))
            result[opt] = c
            numbers[f"learning {opt}"] = {
                **{f"{arm}_{m}": list(mean_ci(lr[f"{arm}_{m}"], low=0,
                                              high=math.inf if m == "bce" else 1))
                   for arm in ("mixed", "alternating") for m in ("auc", "accuracy", "bce")},
                "alternating_vs_mixed_auc": c.__dict__, "lr": LEARNING_LR[opt]}
        adam, sgd = numbers["learning adam"], numbers["learning sgd"]
        learning_text = (
            f"Learning from scratch ({steps} steps, the same samples, no batch norm): with "
            f"Adam, held-out AUC alternating {fmt_ci(*adam['alternating_auc'])} against mixed "
            f"{fmt_ci(*adam['mixed_auc'])}, alternating is "
            + _cmp_text(result["adam"], f"AUC, margin {AUC_MARGIN}")
            + f"; with SGD (lr {LEARNING_LR['sgd']:g}) {fmt_ci(*sgd['alternating_auc'])} "
              f"against {fmt_ci(*sgd['mixed_auc'])}, "
            + _cmp_text(result["sgd"], f"AUC, margin {AUC_MARGIN}")
            + f". Right after a one-class step D's offset is off: accuracy at threshold 0 is "
              f"{adam['alternating_accuracy'][0]:.3g} (Adam) and "
              f"{sgd['alternating_accuracy'][0]:.3g} (SGD) for alternating, "
              f"{adam['mixed_accuracy'][0]:.3g} and {sgd['mixed_accuracy'][0]:.3g} for mixed.")
        how = ("D can learn from one-class steps because its loss is a sum over samples: the "
               "real step's change is still in the parameters when the fake step comes, so "
               "two steps add up to the mixed gradient")
        if result["sgd"].outcome == "equivalent":
            how += ", and with small SGD steps that is as good as mixing"
        if result["adam"].outcome == "worse":
            how += ("; with Adam, though, each one-class step is normalized on its own and "
                    "mostly moves every logit up or down together, so on the same samples D "
                    "separates the classes far less well than with mixed batches")
        text = (how + ". " + ("With Adam, the difference between one real-then-fake update and "
                              "one mixed update is that of two optimizer steps against one. "
                              if two_steps else "")
                + " ".join(parts) + " " + learning_text)
        return Verdict(text, numbers, result["adam"].outcome)

    def figure(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]):
        fig, axes = new_figure(1, 2, width=12, height=4.0)
        u, learn = data["update"], data["learning"]
        cols = ["grad_rel_diff", "adam_real_then_fake", "adam_two_mixed", "sgd_real_then_fake",
                "sgd_two_mixed"]
        labels = ["gradient:\nseparate vs mixed", "Adam: real then\nfake vs one mixed",
                  "Adam: two mixed\nvs one mixed", "SGD: real then\nfake vs one mixed",
                  "SGD: two mixed\nvs one mixed"]
        ax = axes[0]
        for j, bn in enumerate((False, True)):
            b = u[u["batch_norm"] == bn]
            for i, c in enumerate(cols):
                m, lo, hi = (max(v, 1e-12) for v in mean_ci(b[c], low=0))
                ax.errorbar([i + (j - 0.5) * 0.2], [m], yerr=[[m - lo], [hi - m]], fmt="o",
                            capsize=3, color=f"C{j}",
                            label=("with batch norm" if bn else "without batch norm")
                            if i == 0 else None)
        ax.axhline(ROUND_OFF, color="grey", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(cols)), labels, fontsize=7)
        ax.set_ylabel("relative difference")
        ax.set_title("one update from the same D and batches", fontsize=9)
        ax.legend(fontsize=8)
        ax = axes[1]
        for j, opt in enumerate(("adam", "sgd")):
            b = learn[learn["optimizer"] == opt]
            for i, arm in enumerate(("mixed", "alternating")):
                x = j * 2.5 + i
                ax.scatter(np.full(len(b), x), b[f"{arm}_auc"], color=f"C{i + 2}", alpha=0.4,
                           s=12)
                m, lo, hi = mean_ci(b[f"{arm}_auc"], low=0, high=1)
                ax.errorbar([x + 0.15], [m], yerr=[[m - lo], [hi - m]], fmt="s", capsize=4,
                            color=f"C{i + 2}", label=arm if j == 0 else None)
        ax.axhline(0.5, color="grey", ls="--", lw=0.8)
        ax.set_xticks([0.5, 3.0], ["Adam", f"SGD (lr {LEARNING_LR['sgd']:g})"])
        ax.set_ylabel("held-out AUC (0.5 = chance)")
        ax.set_title(f"D trained {settings['learning_steps']} steps on the same samples",
                     fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig, ("Left: relative difference between ways of making D's update from one "
                     "real and one fake batch (ring8's D at initialisation; mean and 95% "
                     f"interval over seeds; dashed: round-off {ROUND_OFF:g}). Right: held-out "
                     "AUC of D trained against a shrunken ring (radius "
                     f"{FAKE_RADIUS:g}) with mixed or alternating one-class steps on the same "
                     "samples, per seed (dots) and mean with 95% interval.")
