"""Can a differentiable generator produce a discrete distribution, and what does each way
of emitting symbols cost?

A generator that is differentiable in its input and parameters maps a continuous z to
continuous values, so its output cannot be exactly one-hot; it can only come close
(Goodfellow, 2016, NIPS 2016 tutorial, arXiv:1701.00160, §3: the generator is a
differentiable function, so a GAN cannot emit discrete data directly). Four ways of
emitting symbols from a head of logits ``θ = G(z)`` are trained as GANs on
``categorical`` (10 Zipf-distributed symbols, exact metrics by enumeration), each the way
it is used:

- **softmax pass-through** (``pathwise``): G emits ``softmax(θ)`` itself, deterministic in
  z, and D sees that vector; symbols are its argmax. The gradient is exact backprop of
  ``f(softmax(θ))``, a different objective from the discrete one;
- **Gumbel-softmax** (Jang et al., 2017; Maddison et al., 2017): G emits the relaxed sample
  ``softmax((θ + g)/τ)``, g Gumbel noise, and D sees it; symbols are its argmax, which is
  an exact ``Cat(softmax θ)`` draw; biased for the discrete objective at ``τ > 0``;
- **straight-through** (Bengio et al., 2013): G emits a hard one-hot draw; the backward pass
  goes through the probabilities (biased);
- **score function** (REINFORCE; Williams, 1992): G emits a hard one-hot draw; unbiased,
  ``f`` is a black box (no backward pass through D), two draws per z with a leave-one-out
  baseline (Kool et al., 2019).

The generator reads ``z ∈ R⁴`` (an MLP ``4 → 64 → 64 → logits``, :class:`LatentCategorical`):
the pass-through is deterministic given z, so only a G that maps regions of z to symbols
can produce a distribution at all (the task's own G ignores z).

Fairness:

- **equal tuning budget**: every arm's learning rates come from the same grid (``GRID``),
  chosen on tuning seeds the verdict does not use (:func:`gangrad.questions._arms.tune`);
- **equal f-evaluations**: the score function calls ``f`` twice per row, so its batch is
  half the others' (32 rows × 2 draws = 64 evaluations of f and 64 fakes for D per step,
  as the others' 64 rows);
- **D that can see what matters**: the task's MLP on the whole emitted vector sees
  softness as well as symbols;
- **convergence**: every arm is read at ``T/2`` and ``T`` on the same runs
  (:func:`gangrad.questions._arms.decide`); an outcome is stated only when every arm
  converged and it holds at both budgets.

Measured, per arm and seed: the task's ``kl`` (``KL(q ‖ p)`` of the argmax histogram of
2000 draws; margin 0.01 nats) every ``T/40`` steps, the headline at each budget being the
mean of the last ``WINDOW`` evaluations up to it (G and D chase each other, so one
evaluation catches a point of an oscillation); the **softness** of what G emits,
``s = mean_i (1 − max_k x_ik)`` (0 for one-hot vectors); and whether a **converged fresh
D** tells the emitted vectors from real one-hot data better than it tells their own
argmax symbols (``one_hot(argmax x)``) from them: the paired difference of held-out
accuracies isolates what softness alone gives away, apart from a wrong histogram. Cost:
f-evaluations and backward passes through D per step, time per step, and the bias and
variance of each estimator's G gradient against the exact gradient of the discrete
objective ``E_{x ~ Cat(softmax G(z))} f(x)`` (enumeration over the 10 symbols,
:func:`gangrad.measure.gradient_stats`), all four measured on the same trained G and D
(the score-function arm's at ``T``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
import torch
from torch import nn

from gangrad.plotting import new_figure
from gangrad.questions._arms import Arm, convergence_record, decide, train_budgets, tune
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.stats import BUDGET_DEPENDENT, compare_paired, fmt_ci, mean_ci
from gangrad.tasks import Categorical
from gangrad.tasks._nets import mlp_generator

__all__ = ["ARMS", "DiscreteOutputs", "LatentArm", "LatentCategorical",
           "fresh_discriminator_accuracy", "hardened", "softness"]

PASS_THROUGH = "softmax pass-through"
#: label -> (estimator key, hyper-parameters, training overrides)
ARMS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    PASS_THROUGH: ("pathwise", {}, {}),
    "Gumbel-softmax (τ = 0.5)": ("gumbel_softmax", {"temperature": 0.5}, {}),
    "straight-through": ("straight_through", {}, {}),
    "score function (2 draws per z)": ("score_function", {"baseline": "mean", "samples": 2},
                                       {"batch_size": 32}),
}
SOFT = (PASS_THROUGH, "Gumbel-softmax (τ = 0.5)")  # arms whose emitted vectors are soft
#: the arm whose trained G and D every estimator's gradient is measured on
PROBE = "score function (2 draws per z)"
#: the tuning grid every arm gets (learning rates of G and D)
GRID = {"lr_g": [3e-3, 1e-2], "lr_d": [3e-2]}
#: evaluations every ``T/CHECKPOINTS`` steps; the headline KL at a budget is the mean of
#: the last ``WINDOW`` of them up to it (a GAN's G oscillates around its level)
CHECKPOINTS = 40
WINDOW = 3
EVAL_SAMPLES = 2000
ACCURACY_MARGIN = 0.02  # fresh-D accuracies this close are equally separable
CONVERGED = 1e-2  # relative change of a fresh D's training loss that counts as converged
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


@dataclass(frozen=True)
class LatentArm(Arm):
    """An :class:`~gangrad.questions._arms.Arm` on :class:`LatentCategorical` (``task``
    names the registered task it extends; ``task_params`` go to the class)."""

    def make_task(self) -> LatentCategorical:
        return LatentCategorical(**self.task_params)


def softness(x: torch.Tensor) -> float:
    """``mean_i (1 − max_k x_ik)`` of vectors ``x (N, 1, K)`` on the simplex: 0 for one-hot
    vectors, ``1 − 1/K`` for the uniform one."""
    return float((1 - x.double().amax(-1)).mean())


def hardened(x: torch.Tensor) -> torch.Tensor:
    """``one_hot(argmax x)``: the symbols a soft vector is read as, same shape."""
    return nn.functional.one_hot(x.argmax(-1), x.shape[-1]).to(x.dtype)


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


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def window_mean(curves: pd.DataFrame, arm: str, seed: int, step: int, every: int) -> float:
    """The mean KL of ``arm``'s run from ``seed`` over the :data:`WINDOW` evaluations
    ``every`` steps apart that end at ``step`` (NaN unless all are there)."""
    wanted = {step - i * every for i in range(WINDOW)}
    rows = curves[(curves["arm"] == arm) & (curves["seed"] == seed)
                  & curves["step"].isin(wanted)]
    return float(rows["kl"].mean()) if len(rows) == WINDOW else float("nan")


def _arms() -> list[LatentArm]:
    return [LatentArm(label, "categorical", {}, key, hyper, {"device": "cpu", **train})
            for label, (key, hyper, train) in ARMS.items()]


class DiscreteOutputs(AbstractQuestion):
    name = "discrete-outputs"
    question = ("Can a differentiable generator produce a discrete distribution, and what "
                "does each way of emitting symbols (softmax pass-through, Gumbel-softmax, "
                "straight-through, score function) cost?")
    origin = ("How can a differentiable G produce a discrete distribution? "
              "(Cross Validated 470753, question 4; Data Science SE 32082)")
    quick = {"seeds": 8, "tuning_seeds": 4, "steps": 2000, "tuning_steps": 500,
             "samples": 1000, "replicates": 400, "probe_seeds": 2}
    full = {"seeds": 20, "tuning_seeds": 8, "steps": 16000, "tuning_steps": 4000,
            "samples": 4000, "replicates": 2000, "probe_seeds": 4}

    def experiment(self, settings: dict[str, Any], seed: int) -> dict[str, pd.DataFrame]:
        from gangrad.measure import gradient_stats
        from gangrad.train.step import fakes

        task = LatentCategorical()
        seeds = list(range(seed, seed + settings["seeds"]))
        tuning = list(range(seed + 1000, seed + 1000 + settings["tuning_seeds"]))
        tuned, grids = [], []
        for arm in _arms():
            best, grid = tune(arm, GRID, tuning, "kl", False, steps=settings["tuning_steps"])
            tuned.append(best)
            grids.append(grid.assign(tuned_for=arm.label))

        T, n = settings["steps"], settings["samples"]
        if T % (2 * CHECKPOINTS):
            raise ValueError(f"{self.name}: steps must be a multiple of {2 * CHECKPOINTS}, "
                             f"got {T}")
        emitted: dict[tuple[str, int, int], torch.Tensor] = {}
        probes: dict[int, tuple[nn.Module, nn.Module]] = {}
        curve = []

        def keep(arm, s, step, state):
            if step == 0:
                return
            gen = torch.Generator().manual_seed(s + 17)  # the same z for every arm
            with torch.no_grad():
                z = task.sample_latent(EVAL_SAMPLES, generator=gen)
                params = state.G(z)
                symbols = state.estimator.sample(params, space=task.space, generator=gen)
                curve.append({"arm": arm.label, "seed": s, "step": step,
                              "kl": task.evaluate(symbols.cpu())["kl"]})
                if step in (T // 2, T):
                    # what f and D see: the relaxed vector for Gumbel-softmax, the
                    # softmax for the pass-through, hard draws otherwise
                    noise = state.estimator.noise(params[:n], space=task.space,
                                                  generator=gen)
                    emitted[arm.label, s, step] = fakes(state.estimator, params[:n], noise,
                                                        task.space)[:n].cpu()
            if arm.label == PROBE and step == T and s in seeds[:settings["probe_seeds"]]:
                probes[s] = (copy.deepcopy(state.G), copy.deepcopy(state.D))

        runs = train_budgets(tuned, seeds, steps=T, checkpoints=CHECKPOINTS,
                             on_checkpoint=keep)
        curves = pd.DataFrame(curve)
        runs = runs.rename(columns={"kl": "kl_at_step"})
        runs["kl"] = [window_mean(curves, a, s, st, T // CHECKPOINTS) for a, s, st in
                      zip(runs["arm"], runs["seed"], runs["step"], strict=True)]
        runs["softness"] = [softness(emitted[a, s, st]) for a, s, st in
                            zip(runs["arm"], runs["seed"], runs["step"], strict=True)]

        # a converged fresh D on the emitted vectors, and on their argmax symbols
        soft_runs = [(a, s) for a in SOFT for s in seeds]
        judged = ([emitted[a, s, T] for a, s in soft_runs]
                  + [hardened(emitted[a, s, T]) for a, s in soft_runs])
        sep = fresh_discriminator_accuracy(task, judged, seed)
        half = len(soft_runs)
        separable = pd.DataFrame([{"arm": a, "seed": s,
                                   **{f"{k}_emitted": v for k, v in sep[i].items()},
                                   **{f"{k}_symbols": v for k, v in sep[half + i].items()}}
                                  for i, (a, s) in enumerate(soft_runs)])

        # bias and variance of every estimator on the same trained G and D
        frames = []
        for s, (G, D) in probes.items():
            df = gradient_stats(task, [(key, hyper) for key, hyper, _ in ARMS.values()],
                                G=G, D=D, replicates=settings["replicates"], batch_size=64,
                                seed=s, step=T)
            df = df[df["layer"] == "total"].copy()
            df.insert(0, "arm", list(ARMS))
            df.insert(1, "probe_seed", s)
            frames.append(df)
        return {"runs": runs, "curves": curves, "separability": separable,
                "gradients": pd.concat(frames, ignore_index=True),
                "tuning": pd.concat(grids, ignore_index=True)}

    def analyse(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]) -> Verdict:
        runs, sep, grads = data["runs"], data["separability"], data["gradients"]
        labels = list(ARMS)
        margin = LatentCategorical().metric("kl").margin
        at_T = runs[runs["budget"] == "T"]
        means = at_T.groupby("arm")["kl"].mean()
        samplers = [a for a in labels if a != PASS_THROUGH]
        best = str(means.loc[samplers].idxmin())  # the best generator that samples symbols
        decision = decide(runs, [a for a in labels if a != best], best, "kl", False, margin)
        numbers: dict[str, Any] = {"metric": "kl", "margin": margin, "best": best,
                                   "steps": settings["steps"]}
        kl = {a: {b: list(mean_ci(runs[(runs.arm == a) & (runs.budget == b)]["kl"], low=0))
                  for b in ("T/2", "T")} for a in labels}
        soft = {a: list(mean_ci(at_T[at_T.arm == a]["softness"], low=0, high=1))
                for a in labels}
        numbers.update(kl=kl, softness=soft,
                       comparisons={a: decision.numbers(a) for a in labels if a != best})

        # what softness alone gives away to a converged D (paired: the same vectors)
        gives = {}
        for a, g in sep.groupby("arm", sort=False):
            by = g.set_index("seed")
            c = compare_paired(by["d_accuracy_emitted"].to_dict(),
                               by["d_accuracy_symbols"].to_dict(), False, ACCURACY_MARGIN,
                               names=(f"{a}: emitted vectors", f"{a}: their symbols"))
            gives[a] = {"emitted": list(mean_ci(by["d_accuracy_emitted"], low=0, high=1)),
                        "symbols": list(mean_ci(by["d_accuracy_symbols"], low=0, high=1)),
                        "difference": [c.difference, c.lo, c.hi], "outcome": c.outcome,
                        "d_steps": int(by["d_steps_emitted"].max())}
        numbers["fresh_d_accuracy"] = gives

        # cost: calls of f and backward passes through D per step, time, bias, variance
        from gangrad import estimators

        space = LatentCategorical().space
        cost = {}
        for a, (key, hyper, train) in ARMS.items():
            est = estimators.create(key, **hyper)
            rows = train.get("batch_size", 64)
            g = grads[grads["arm"] == a]
            rel_bias = g["bias"] / g["reference_norm"]
            rel_lo, rel_hi = g["bias_lo"] / g["reference_norm"], g["bias_hi"] / g[
                "reference_norm"]
            steps = at_T[at_T.arm == a]
            cost[a] = {"f_evaluations_per_step": rows * est.evaluations(space),
                       "backward_through_d": bool(est.differentiable_f),
                       "step_time_ms": float(1e3 * steps["elapsed_s"].max() / settings["steps"]),
                       "estimate_time_ms": float(g["time_ms"].mean()),
                       "relative_bias": [float(rel_bias.mean()), float(rel_lo.min()),
                                         float(rel_hi.max())],
                       "cosine": [float(g["cosine"].mean()), float(g["cosine"].min()),
                                  float(g["cosine"].max())],
                       "variance": [float(g["variance"].mean()), float(g["variance"].min()),
                                    float(g["variance"].max())],
                       "variance_x_evaluations": float(g["var_x_evals"].mean())}
        numbers["cost"] = cost
        numbers["tuned"] = {a: _tuned(data["tuning"], a) for a in labels}

        outcome = decision.outcomes[PASS_THROUGH]
        pt = kl[PASS_THROUGH]["T"]
        s_pt = soft[PASS_THROUGH]
        softness_seen = gives.get(PASS_THROUGH, {}).get("outcome")
        seen = {"worse": "a converged D tells them from real symbols better than it tells "
                         "their own argmax symbols",
                "equivalent": "a converged D tells them from real symbols no better than "
                              "it tells their own argmax symbols",
                "better": "a converged D tells them from real symbols less well than their "
                          "own argmax symbols",
                "undetermined": "whether a converged D sees that softness is "
                                "undetermined"}.get(softness_seen, "")
        word = {"worse": "worse than", "equivalent": "as well as", "better": "better than",
                "undetermined": "not distinguishably from",
                BUDGET_DEPENDENT: {"worse": "worse than", "better": "better than"}.get(
                    decision.end[PASS_THROUGH].outcome, "not reliably as well as")}[outcome]
        versus = (f"after {settings['steps']} steps their argmax matched p {word} the best "
                  f"generator that samples symbols ({best}: KL {kl[best]['T'][0]:.3g} "
                  f"against {pt[0]:.3g}"
                  + ("; budget-dependent, as not every arm had converged or the outcome "
                     "changed from T/2 to T" if outcome == BUDGET_DEPENDENT else "") + ")")
        evals = {cost[a]["f_evaluations_per_step"] for a in labels}
        biased = [a for a in samplers if cost[a]["relative_bias"][1] > 0]
        unbiased = [a for a in samplers if a not in biased]
        lead = "Only approximately" if s_pt[0] > 0 else "Yes"
        answer = (
            f"{lead}: a differentiable G emits soft vectors, which GAN training pushed to "
            f"within {s_pt[0]:.2g} of one-hot on average"
            + (f" ({seen})" if seen else "") + f", and {versus}; "
            + (f"every way costs the same {evals.pop():g} f-evaluations per step here"
               if len(evals) == 1 else "the ways differ in f-evaluations per step")
            + (f", with no gradient bias resolved for {_join(unbiased)}" if unbiased else "")
            + (f" and a biased gradient for {_join(biased)}" if biased else "") + ".")

        lines = [f"- **Symbols**: KL(q ‖ p) of the argmax histogram (nats; margin "
                 f"{margin:g}), each seed's the mean of its last {WINDOW} evaluations "
                 f"({settings['steps'] // CHECKPOINTS} steps apart) up to the budget; mean "
                 f"over {settings['seeds']} seeds at T/2 → T:"]
        lines += [f"  - {a}: {fmt_ci(*kl[a]['T/2'])} → {fmt_ci(*kl[a]['T'])}"
                  for a in labels]
        lines += [f"- **Against the best generator that samples symbols ({best})**:"]
        lines += [f"  - {decision.sentence(a)}" for a in labels if a != best]
        lines += ["- **Softness** of what G emits, mean 1 − max_k x_k at T (0 = one-hot): "
                  + "; ".join(f"{a} {fmt_ci(*soft[a])}" for a in labels) + "."]
        for a, v in gives.items():
            lines.append(
                f"- **A converged fresh D** (≤ {v['d_steps']} full-batch steps, held-out "
                f"accuracy; 0.5 = indistinguishable) on {a}: emitted vectors "
                f"{fmt_ci(*v['emitted'])}, their argmax symbols {fmt_ci(*v['symbols'])}; "
                f"softness adds {v['difference'][0]:+.3g} [95% CI {v['difference'][1]:+.3g}, "
                f"{v['difference'][2]:+.3g}] ({v['outcome']} within ±{ACCURACY_MARGIN:g}).")
        lines.append("- **Cost per G step** (f-evaluations; backward pass through D; "
                     "gradient bias against the exact discrete gradient, relative to its "
                     "norm, and variance, on the score-function arm's trained G and D, "
                     f"{len(grads['probe_seed'].unique())} seeds):")
        lines += [f"  - {a}: {c['f_evaluations_per_step']:g} f-evaluations, "
                  f"{'a' if c['backward_through_d'] else 'no'} backward pass through D, "
                  f"relative bias {c['relative_bias'][0]:.3g} (the probes' 95% CIs span "
                  f"{c['relative_bias'][1]:.3g}–{c['relative_bias'][2]:.3g}; cosine to "
                  "the exact gradient "
                  f"{c['cosine'][0]:.3g}), variance {c['variance'][0]:.3g}"
                  for a, c in cost.items()]
        lines.append("- Tuned on separate seeds (" + "; ".join(
            f"{a}: " + ", ".join(f"{k} {v:g}" for k, v in numbers["tuned"][a].items())
            for a in labels) + ").")
        unsettled = [a for a in labels if not decision.convergence[a].converged]
        changes = (
            (f"A longer budget: {_join(unsettled)} had not settled between T/2 and T "
             f"within ±{margin:g} nats. " if unsettled else "")
            + "A generator that cannot read z (the task's own), which leaves the "
            "pass-through one fixed vector and so one symbol; a lower or annealed "
            "Gumbel-softmax temperature (fixed at 0.5 here); a D that reads only the argmax "
            "symbols, which would hide softness entirely; longer sequences (binary_digits, "
            "oracle_seq), where the score function's variance grows with the length.")
        return Verdict("\n".join(lines), numbers, outcome, answer=answer,
                       convergence=convergence_record(decision), changes=changes)

    def table(self, data: dict[str, pd.DataFrame]) -> pd.DataFrame:
        return data["runs"]

    def figure(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]):
        runs, sep = data["runs"], data["separability"]
        labels = list(ARMS)
        fig, axes = new_figure(1, 3, width=15, height=4.2)
        ax = axes[0]
        curves = data["curves"]
        for i, a in enumerate(labels):
            c = curves[curves.arm == a].assign(kl=lambda d: d["kl"].clip(lower=1e-3))
            c = c.groupby("step")["kl"]
            m, lo, hi = c.mean(), c.quantile(0.25), c.quantile(0.75)
            ax.plot(m.index, m, color=f"C{i}", label=a)
            ax.fill_between(m.index, lo, hi, color=f"C{i}", alpha=0.15, lw=0)
        for b in (settings["steps"] // 2, settings["steps"]):
            ax.axvline(b, color="grey", ls=":", lw=0.8)
        ax.set_yscale("log")
        ax.set(xlabel="step", ylabel="KL(q ‖ p) of the argmax symbols (floor 1e-3)",
               title="symbols along training (mean; band: seeds' quartiles)")
        ax.legend(fontsize=7)
        ax = axes[1]
        at_T = runs[runs.budget == "T"]
        for i, a in enumerate(labels):
            v = np.maximum(at_T[at_T.arm == a]["softness"].to_numpy(), 1e-9)
            ax.scatter(np.full(len(v), i), v, s=12, color=f"C{i}")
        ax.set_yscale("log")
        ax.set_xticks(range(len(labels)), labels, rotation=12, fontsize=7)
        ax.set(ylabel="softness 1 − max_k x_k (floor 1e-9 = one-hot)",
               title="what G emits, at T")
        ax = axes[2]
        for i, a in enumerate(SOFT):
            g = sep[sep.arm == a]
            for j, col in enumerate(("d_accuracy_emitted", "d_accuracy_symbols")):
                x = i + (j - 0.5) * 0.35
                ax.scatter(np.full(len(g), x), g[col], s=10, alpha=0.5,
                           color=f"C{labels.index(a)}", marker="o" if j == 0 else "x")
            for _, r in g.iterrows():
                ax.plot([i - 0.175, i + 0.175], [r["d_accuracy_emitted"],
                                                 r["d_accuracy_symbols"]],
                        color="grey", lw=0.5, alpha=0.6)
        ax.axhline(0.5, color="grey", ls="--", lw=0.8)
        ax.set_xticks(range(len(SOFT)), [f"{a}\n(○ emitted, × argmax)" for a in SOFT],
                      fontsize=7)
        ax.set(ylabel="fresh-D held-out accuracy", title="does a converged D see softness?")
        fig.tight_layout()
        return fig, ("Left: KL of each arm's argmax symbols against p along training (mean "
                     "over seeds, band: quartiles); the convergence check compares T/2 and T "
                     "(dotted). Middle: how far what G emits is from one-hot at T "
                     "(per seed). Right: held-out accuracy of a converged fresh D on the "
                     "soft arms' emitted vectors and on their own argmax symbols (lines pair "
                     "a seed); the gap is what softness alone gives away.")


def _tuned(tuning: pd.DataFrame, label: str) -> dict[str, float]:
    """The grid setting :func:`tune` chose for ``label`` (lowest mean KL)."""
    t = tuning[tuning["tuned_for"] == label]
    means = t.groupby("arm")["kl"].mean()
    chosen = str(means.idxmin())
    setting = chosen[chosen.index("[") + 1:chosen.rindex("]")]
    return {k: float(v) for k, v in (p.split("=") for p in setting.split(", "))}
