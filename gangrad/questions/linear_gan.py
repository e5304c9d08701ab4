"""Does the linear GAN reach the data distribution, "the Nash equilibrium where G works
perfectly"? What can its logistic D see, and what changes when D also sees ``x²``?

Setting (``gaussian1d``): data ``N(μ, s²)``, ``G(z) = w·z + b`` with ``z ~ N(0, 1)``, so
G emits ``N(b, w²)``; ``D(x) = σ(ℓ(x))`` with a logit linear in the features ``φ(x)``.

Theory. For fixed G, D's loss ``E_data softplus(−ℓ) + E_G softplus(ℓ)`` is a logistic
regression, convex in D's coefficients; its minimiser is the best response ``D*``.

- ``φ(x) = x`` (``ℓ = a·x + c``): at ``a = 0``, ``∂L/∂c = σ(c) − σ(−c)`` vanishes at
  ``c = 0``, and there ``∂L/∂a = (b − μ)/2``: so for **equal means D* is constant, ½,
  whatever the two scales** (the loss is convex, the stationary point is the minimum). G's
  cost through a constant D is constant: ``w`` gets no gradient. Every ``(b = μ, w)`` is a
  fixed point of the game; the scale is not identified and drifts, and with a nearly optimal D the
  non-saturating cost (convex in x) shrinks ``|w|`` on the way (Jensen).
- ``φ(x) = (x, x²)``: the log density ratio of two Gaussians,
  ``log p_data/p_G = (1/(2w²) − 1/(2s²))·x² + (μ/s² − b/w²)·x + const``, is in the class,
  so ``D*`` is the optimal discriminator of Goodfellow et al. (2014, Prop. 1): its ``x²``
  coefficient is non-zero unless ``|w| = s``, and G's gradient moves ``|w|`` towards ``s``.
  The only fixed point is ``(b, |w|) = (μ, s)``: the data distribution.

"What D can see" is measured by ``log 4 − min_D L_D`` over D's class (0: the class cannot
tell the two apart; ``2·JSD(p_data ‖ p_G)`` when the class holds the optimal D), computed
by Gauss–Hermite quadrature and Newton's method (:func:`best_discriminator`).

Experiment: both D classes trained from the same seeds with the same G (pathwise, several
D steps per G step so D stays near its best response), read at ``T/2`` and ``T``: G's mean
``b`` and scale ``|w|`` against the data's, each D class's view of G, and W1. Verdict:
whether the data agree with the theory (mean matched in both; scale learned only with
``x²``), from paired tests with practical margins, and the W1 gain of ``x²`` (paired). It
is stated only when every arm has converged on W1 and on ``|w|/s`` (the rule of
:mod:`gangrad.stats`) and the checks read the same at both budgets; otherwise it is
``budget-dependent``.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import torch

from gangrad.exact import gauss_hermite
from gangrad.plotting import new_figure
from gangrad.questions._arms import (
    Arm,
    arm_convergence,
    at_budget,
    comparison_numbers,
    convergence_record,
    decide,
    train_budgets,
)
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.stats import BUDGET_DEPENDENT, compare_paired
from gangrad.tasks.gaussian1d import Gaussian1D

__all__ = ["LinearGAN", "best_discriminator", "generator_gradient"]

LOC, SCALE = 4.0, 1.25  # gaussian1d's data
MEAN_MARGIN = 0.1  # |b − μ| below this (data units, 0.08·s) counts as matched
SCALE_MARGIN = 0.1  # | |w|/s − 1 | below this counts as matched
ARMS = ("D on x", "D on x, x²")


def _features(x: torch.Tensor, features: str) -> torch.Tensor:
    return x[:, None] if features == "linear" else torch.stack([x, x * x], dim=1)


def best_discriminator(loc: float, scale: float, b: float, w: float, features: str = "linear",
                       degree: int = 96, iterations: int = 100) -> dict[str, Any]:
    """D's best response to ``G = N(b, w²)`` against data ``N(loc, scale²)`` in the
    logistic class on ``features`` (``"linear"``: ``x``; ``"quadratic"``: ``x, x²``).

    Minimises ``L(θ) = E_data softplus(−ℓ_θ) + E_G softplus(ℓ_θ)`` (expectations by
    Gauss–Hermite quadrature) by Newton's method with backtracking in standardised
    coordinates ``u = (x − loc)/scale``, float64. Returns the logit's coefficients in ``x``
    (``coef``: ``[x]`` or ``[x, x²]``; ``bias``), the loss and ``seen = log 4 − loss``.
    When the class separates the two perfectly (G a point mass, quadratic D) the minimum
    is not attained; the result is then the last iterate.
    """
    if features not in ("linear", "quadratic"):
        raise ValueError(f"features must be 'linear' or 'quadratic', got {features!r}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    z, weights = gauss_hermite(degree)
    up = z  # the data in standard units
    uq = (b + abs(w) * z - loc) / scale
    fp, fq = _features(up, features), _features(uq, features)
    k = fp.shape[1] + 1
    fp = torch.cat([fp, torch.ones(degree, 1, dtype=fp.dtype)], 1)  # degree x k
    fq = torch.cat([fq, torch.ones(degree, 1, dtype=fq.dtype)], 1)

    def loss(theta: torch.Tensor) -> torch.Tensor:
        return ((weights * torch.nn.functional.softplus(-(fp @ theta))).sum()
                + (weights * torch.nn.functional.softplus(fq @ theta)).sum())

    theta = torch.zeros(k, dtype=torch.float64)
    for _ in range(iterations):
        sp, sq = torch.sigmoid(fp @ theta), torch.sigmoid(fq @ theta)
        grad = fp.T @ (weights * (sp - 1)) + fq.T @ (weights * sq)
        if float(grad.norm()) < 1e-13:
            break
        hess = (fp.T * (weights * sp * (1 - sp))) @ fp + (fq.T * (weights * sq * (1 - sq))) @ fq
        step = torch.linalg.solve(hess + 1e-12 * torch.eye(k, dtype=hess.dtype), grad)
        t, current = 1.0, float(loss(theta))
        while float(loss(theta - t * step)) > current - 1e-4 * t * float(grad @ step) and t > 1e-8:
            t /= 2
        theta = theta - t * step
    value = float(loss(theta))
    a = theta[:-1].tolist()  # standardised: ℓ = a₁u (+ a₂u²) + c
    c = float(theta[-1])
    if features == "linear":
        coef = [a[0] / scale]
        bias = c - a[0] * loc / scale
    else:
        coef = [a[0] / scale - 2 * a[1] * loc / scale**2, a[1] / scale**2]
        bias = c - a[0] * loc / scale + a[1] * loc**2 / scale**2
    return {"coef": coef, "bias": bias, "loss": value, "seen": math.log(4) - value}


def generator_gradient(loc: float, scale: float, b: float, w: float, features: str = "linear",
                       degree: int = 96) -> tuple[float, float]:
    """``(∂/∂b, ∂/∂w)`` of G's non-saturating cost ``E_z softplus(−ℓ*(w·z + b))`` through
    D's best response ``ℓ*`` (:func:`best_discriminator`), exact up to quadrature."""
    d = best_discriminator(loc, scale, b, w, features, degree)
    z, weights = gauss_hermite(degree)
    params = torch.tensor([b, w], dtype=torch.float64, requires_grad=True)
    x = params[0] + params[1] * z
    coef = torch.tensor(d["coef"], dtype=torch.float64)
    logit = _features(x, features) @ coef + d["bias"]
    cost = (weights * torch.nn.functional.softplus(-logit)).sum()
    gb, gw = torch.autograd.grad(cost, params)[0].tolist()
    return gb, gw


def _theory_check(finals: pd.DataFrame) -> dict[str, Any]:
    """The paired tests of one budget's runs against theory: G's mean error and scale ratio
    of each arm against their targets, and whether the data agree with the theory."""
    lin, quad = ARMS

    def vs(label, column, target, margin):
        rows = finals[(finals.arm == label) & finals[column].notna()]
        a = {int(s): float(v) for s, v in zip(rows.seed, rows[column], strict=True)}
        return compare_paired(a, {s: target for s in a}, False, margin,
                              (f"{label}: {column}", "target"))

    mean = {a: vs(a, "mean_error", 0.0, MEAN_MARGIN) for a in ARMS}
    scale = {a: vs(a, "scale_ratio", 1.0, SCALE_MARGIN) for a in ARMS}
    checks = {"mean matched with D on x": mean[lin].outcome == "equivalent",
              "mean matched with D on x, x²": mean[quad].outcome == "equivalent",
              "scale not learned with D on x": scale[lin].outcome in ("better", "worse"),
              "scale learned with D on x, x²": scale[quad].outcome == "equivalent"}
    contradicted = (any(mean[a].outcome in ("better", "worse") for a in ARMS)
                    or scale[lin].outcome == "equivalent"
                    or scale[quad].outcome in ("better", "worse"))
    outcome = ("agrees" if all(checks.values()) else
               "disagrees" if contradicted else "undetermined")
    return {"mean": mean, "scale": scale, "checks": checks, "outcome": outcome}


def _ratio(c) -> str:
    """A scale-ratio comparison against 1 as ``|w|/s = r [95% CI lo, hi]``."""
    return f"|w|/s = {1 + c.difference:.3f} [95% CI {1 + c.lo:.3f}, {1 + c.hi:.3f}]"


def _against(c, target: float, margin: float) -> str:
    """A comparison with its target in words: matched, different, or not decided."""
    word = {"equivalent": "matched", "better": "differs", "worse": "differs"}.get(
        c.outcome, "not decided")
    return f"{word}: against {target:g} with margin ±{margin:g}"


class LinearGAN(AbstractQuestion):
    name = "linear-gan"
    question = ("Does the linear GAN (G(z) = w₁z + b₁, logistic D(x) = σ(w₂x + b₂)) reach the "
                "data distribution, the Nash equilibrium 'where G works perfectly'? What can D "
                "see, and what changes when D also sees x²?")
    origin = ("Some confusion on learning of Generative Adversarial Networks "
              "(Cross Validated 303368)")
    quick = {"seeds": 8, "steps": 3000, "d_steps": 5, "checkpoints": 20}
    full = {"seeds": 24, "steps": 8000, "d_steps": 5, "checkpoints": 40}

    def experiment(self, settings: dict[str, Any], seed: int) -> dict[str, pd.DataFrame]:
        seeds = list(range(seed, seed + settings["seeds"]))
        if settings["checkpoints"] < 2 or settings["checkpoints"] % 2:
            raise ValueError(f"linear-gan: checkpoints must be even and at least 2 (T/2 is "
                             f"read from a checkpoint), got {settings['checkpoints']}")
        arms = [Arm(label, "gaussian1d", {"features": f}, train={"d_steps": settings["d_steps"]})
                for label, f in zip(ARMS, ("linear", "quadratic"), strict=True)]
        track = []

        def record(arm, seed_, step, state):
            with torch.no_grad():
                w = abs(float(state.G.head.linear.weight.reshape(-1)[0]))
                b = float(state.G.head.linear.bias.reshape(-1)[0])
                coef = state.D.linear.weight.reshape(-1).tolist()
            track.append({"arm": arm.label, "seed": seed_, "step": step, "b": b, "w": w,
                          "d_x": coef[0], "d_x2": coef[1] if len(coef) > 1 else 0.0})

        # checkpoints at multiples of T/checkpoints: T/2 among them for an even count
        finals = train_budgets(arms, seeds, settings["steps"],
                               checkpoints=settings["checkpoints"], on_checkpoint=record)
        track = pd.DataFrame(track)
        at = track.set_index(["arm", "seed", "step"])
        for col in ("b", "w", "d_x", "d_x2"):
            finals[col] = [at[col].get((a, s, t), math.nan) if ok else math.nan
                           for a, s, t, ok in zip(finals["arm"], finals["seed"], finals["step"],
                                                  finals["w1"].notna(), strict=True)]
        finals["mean_error"] = finals["b"] - LOC
        finals["scale_ratio"] = finals["w"] / SCALE
        for f in ("linear", "quadratic"):  # what each D class can see of G at that budget
            finals[f"seen_by_{f}"] = [
                best_discriminator(LOC, SCALE, b, w, f)["seen"] if b == b else math.nan
                for b, w in zip(finals["b"], finals["w"], strict=True)]
        return {"finals": finals, "trajectory": track}

    def analyse(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]) -> Verdict:
        finals = data["finals"]
        lin, quad = ARMS
        end, half = at_budget(finals, "T"), at_budget(finals, "T/2")
        tests = {"T": _theory_check(end), "T/2": _theory_check(half)}
        mean, scale = tests["T"]["mean"], tests["T"]["scale"]
        w1_margin = Gaussian1D.metric("w1").margin
        w1 = decide(finals, [quad], lin, "w1", False, w1_margin)
        checks = [arm_convergence(finals, a, m, margin) for a in ARMS
                  for m, margin in (("w1", w1_margin), ("scale_ratio", SCALE_MARGIN))]
        converged = all(c.converged for c in checks)
        same = tests["T"]["outcome"] == tests["T/2"]["outcome"]
        outcome = tests["T"]["outcome"] if converged and same else BUDGET_DEPENDENT
        theory = {f: generator_gradient(LOC, SCALE, LOC, 0.5 * SCALE, f)
                  for f in ("linear", "quadratic")}
        seen_at_equal_means = {f: best_discriminator(LOC, SCALE, LOC, 0.5 * SCALE, f)["seen"]
                               for f in ("linear", "quadratic")}
        floor = SCALE * math.sqrt(2 / math.pi)

        def med(label, col):
            return float(end[end.arm == label][col].median())

        w1_mean = {a: float(end[end.arm == a]["w1"].mean()) for a in ARMS}
        steps = settings["steps"]
        if outcome == "agrees":
            answer = (f"No, not with a logistic D on x: it matches the mean but its scale "
                      f"collapses towards a point ({_ratio(scale[lin])} after {steps} steps), "
                      f"a fixed point of a game whose D cannot see scale; once D also sees x², "
                      f"the linear GAN reaches the data ({_ratio(scale[quad])}).")
        elif outcome == "disagrees":
            answer = (f"The runs contradict the theory that only a D which sees x² can fix "
                      f"G's scale: with D on x, {_ratio(scale[lin])} "
                      f"({scale[lin].outcome} to 1 within ±{SCALE_MARGIN}); with D on x and x², "
                      f"{_ratio(scale[quad])} ({scale[quad].outcome}).")
        else:
            why = ("an arm has not converged" if not converged else
                   f"the runs read '{tests['T/2']['outcome']}' at T/2 and "
                   f"'{tests['T']['outcome']}' at T" if not same else
                   "the intervals are too wide")
            answer = (f"Not decided by these runs ({why}): with D on x, {_ratio(scale[lin])}; "
                      f"with D on x and x², {_ratio(scale[quad])} after {steps} steps.")
        text = "\n".join([
            f"- **Theory** (exact, by quadrature): at equal means the best logistic D on x is "
            f"constant: it sees {abs(seen_at_equal_means['linear']):.1g} nats of the difference "
            f"between N(μ, s²) and N(μ, (s/2)²), where a D on x and x² sees "
            f"{seen_at_equal_means['quadratic']:.3f}. G's scale gets gradient "
            f"{theory['linear'][1]:.2g} through the first, {theory['quadratic'][1]:.3f} "
            f"through the second (towards |w| = s).",
            f"- **D on x** ({settings['seeds']} seeds, {steps} G steps, {settings['d_steps']} "
            f"D steps each): b − μ = {mean[lin].difference:.3f} [95% CI "
            f"{mean[lin].lo:.3f}, {mean[lin].hi:.3f}] ({_against(mean[lin], 0, MEAN_MARGIN)}); "
            f"{_ratio(scale[lin])} ({_against(scale[lin], 1, SCALE_MARGIN)}). The trained D's "
            f"slope ends at "
            f"|w₂| = {end[end.arm == lin]['d_x'].abs().median():.3g} (median: D nearly "
            f"constant); a best linear D would see "
            f"{max(med(lin, 'seen_by_linear'), 0):.2g} nats of a difference a D on x, x² sees "
            f"as {med(lin, 'seen_by_quadratic'):.3g}. W1 {w1_mean[lin]:.3f}, against "
            f"{floor:.3f} for the best point mass s·√(2/π).",
            f"- **D on x and x²**: b − μ = {mean[quad].difference:.3f} [95% CI "
            f"{mean[quad].lo:.3f}, {mean[quad].hi:.3f}] ({_against(mean[quad], 0, MEAN_MARGIN)}), "
            f"{_ratio(scale[quad])} ({_against(scale[quad], 1, SCALE_MARGIN)}); W1 "
            f"{w1_mean[quad]:.3f}.",
            f"- **W1, D on x and x² against D on x**: {w1.sentence(quad)}.",
            f"- **Both budgets**: the theory checks read '{tests['T/2']['outcome']}' at T/2 "
            f"(step {steps // 2}) and '{tests['T']['outcome']}' at T (step {steps}); "
            f"{'every arm converged' if converged else 'not every arm converged'} on W1 and "
            f"|w|/s (convergence table below)."])
        changes = (
            "What D can see decides it. Any D class that holds the log density ratio of two "
            "Gaussians (x and x², or an MLP on x) gives G's scale a gradient towards s, and "
            "the answer becomes yes. With a logistic D on x alone no budget changes it: at "
            "equal means its best response is constant, so the scale is not identified, and "
            "the non-saturating cost, convex in x, shrinks it (Jensen); fewer D steps per G "
            "step keep D further from its best response and slow the collapse without "
            "identifying the scale.")
        numbers = {
            "mean_error": {a: comparison_numbers(mean[a]) for a in ARMS},
            "scale_ratio_minus_1": {a: comparison_numbers(scale[a]) for a in ARMS},
            "w1_quadratic_minus_linear": w1.numbers(quad),
            "checks": tests["T"]["checks"],
            "theory_outcome_by_budget": {b: t["outcome"] for b, t in tests.items()},
            "w1_mean": w1_mean, "point_mass_floor": floor,
            "theory_at_equal_means_half_scale": {
                f: {"seen": seen_at_equal_means[f], "grad_b": theory[f][0],
                    "grad_w": theory[f][1]} for f in theory},
            "seen_by_linear_median": {a: med(a, "seen_by_linear") for a in ARMS},
            "seen_by_quadratic_median": {a: med(a, "seen_by_quadratic") for a in ARMS}}
        return Verdict(text, numbers, outcome, answer=answer,
                       convergence=convergence_record(checks), changes=changes)

    def figure(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]):
        finals, track = data["finals"], data["trajectory"]
        end = at_budget(finals, "T")
        fig, axes = new_figure(1, 3, width=13, height=3.8)
        for i, (label, g) in enumerate(track.groupby("arm", sort=False)):
            for _, s in g.groupby("seed"):
                axes[0].plot(s["step"], s["w"] / SCALE, color=f"C{i}", lw=0.8, alpha=0.6)
                axes[1].plot(s["step"], s["b"], color=f"C{i}", lw=0.8, alpha=0.6)
            axes[0].plot([], [], color=f"C{i}", label=label)
        for ax in axes[:2]:
            ax.axvline(settings["steps"] // 2, color="grey", ls=":", lw=0.8)
        axes[0].axhline(1.0, color="k", ls="--", lw=0.8)
        axes[0].set(yscale="log", xlabel="G step", ylabel="|w| / s  (G's scale / data's)",
                    title="G's scale against the data's")
        axes[0].legend(fontsize=8)
        axes[1].axhline(LOC, color="k", ls="--", lw=0.8)
        axes[1].set(xlabel="G step", ylabel="b (G's mean)", title="G's mean against the data's")
        labels = list(dict.fromkeys(end["arm"]))
        wide = end.pivot(index="seed", columns="arm", values="w1")[labels]
        for _, row in wide.iterrows():
            axes[2].plot(range(len(labels)), row.values, color="grey", lw=0.8, marker="o", ms=3)
        axes[2].set_xticks(range(len(labels)), labels)
        axes[2].set(ylabel="final W1 to the data", title="paired seeds", yscale="log")
        axes[2].axhline(SCALE * math.sqrt(2 / math.pi), color="k", ls=":", lw=0.8)
        fig.tight_layout()
        return fig, ("Left and middle: G's scale |w|/s and mean b during training, one line "
                     "per seed, for a logistic D on x (blue) and on x and x² (orange); dashed: "
                     "the data; dotted vertical: T/2, where the convergence check reads the "
                     "runs a first time. Right: W1 at T of each seed's two runs (lines join a "
                     "seed); dotted: W1 of the best point mass, s·√(2/π).")
