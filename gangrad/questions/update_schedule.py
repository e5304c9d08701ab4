"""Should D and G be updated at the same time from the same state, or in turn (D on odd
iterations, G on even), and does it help to take k D steps per G step?

Theory (Mescheder, Nowozin & Geiger, 2017, "The numerics of GANs"; Mescheder, Geiger &
Nowozin, 2018, "Which training methods for GANs do actually converge?", §2, the Dirac-GAN).
Data ``δ₀``, ``G = θ`` (a point), ``D(x) = σ(ψ·x)``, plain gradient steps of size ``h``.
Near the equilibrium ``(0, 0)`` the vector field is a rotation,
``(θ, ψ) ↦ (θ + hψ/2, ψ − hθ/2)`` for the simultaneous step, whose modulus is
``√(1 + h²/4) > 1``: the iterates spiral **out** whatever ``h``. Alternating steps give
``[[1 − h²/4, h/2], [−h/2, 1]]``, determinant 1 and trace ``2 − h²/4``: for ``h < 4``
both eigenvalues lie **on** the unit circle, so the iterates stay bounded (and circle).
:func:`dirac_gan` runs both through :func:`gangrad.train.train_step` itself and the
verdict reports the measured growth beside the theory's.

Experiment: ``gaussian1d`` with a D on ``x`` and ``x²`` (a game whose equilibrium is the
data, see :mod:`gangrad.questions.linear_gan`), centred data ``N(0, 1.25²)`` so that a run
converges in a few hundred steps, and one arm per schedule
(:class:`gangrad.train.TrainConfig`): ``update_order="alternating"`` with
``d_steps = k`` (each G step descends through the D just updated; Gauss–Seidel) and
``update_order="simultaneous"`` with ``k = 1`` (D's and G's gradients both taken at the
iteration's starting state; Jacobi).

Cost. A D step and a G step each take one forward and one backward pass over a batch, so
an iteration with k D steps costs ``k + 1`` network updates. Every arm gets the same
compute, ``C`` updates (``C/(k + 1)`` iterations, i.e. G steps), and the same tuning
budget: Adam's learning rates for G and D chosen from one grid by :func:`tune` at that
compute on seeds the verdict does not use. Each tuned arm is then trained once on the
verdict's seeds and evaluated along the way, which gives two views of the same runs:

- **equal compute**: every arm after ``C`` updates (and ``C/2``, for the convergence rule);
- **equal G steps**: every arm after ``C/(k_max + 1)`` G steps (and half that), the budget
  of the arm with the most D steps, which there spends ``(k_max + 1)/2`` times the compute
  of ``k = 1``.

Verdict (:func:`gangrad.questions._arms.decide`): paired comparisons on W1 at the task's
margin, at both budgets of each view, with every arm's convergence check; alternating
against simultaneous (both ``k = 1``: the same compute in either view), and each ``k > 1``
against ``k = 1`` in both views.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from gangrad.plotting import new_figure
from gangrad.questions._arms import Arm, convergence_record, decide, tune
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.spaces import Continuous
from gangrad.stats import fmt_ci, mean_ci
from gangrad.tasks import AbstractTask, Metric
from gangrad.tasks._nets import Generator

__all__ = ["DiracGAN", "UpdateSchedule", "budgets", "dirac_gan", "dirac_growth",
           "schedule_arms", "views"]

ALTERNATING, SIMULTANEOUS = "alternating", "simultaneous"
EQUAL_COMPUTE, EQUAL_STEPS = "equal compute", "equal G steps"


class _Slope(nn.Module):
    """``x (B, 1) -> ψ·x (B,)``: the Dirac-GAN's discriminator logit."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)


class DiracGAN(AbstractTask):
    """Mescheder et al.'s Dirac-GAN: data ``δ₀``, ``G(z) = w·z + θ`` trained with
    ``latent="none"`` (so ``G = θ``), ``D(x) = σ(ψ·x)``. Its equilibrium is
    ``θ = ψ = 0``."""

    name = "dirac"
    description = "data at 0, G a point, a one-slope D (Mescheder et al., 2018)"
    metrics = {"distance": Metric(False, low=0.0)}

    def __init__(self) -> None:
        self.space = Continuous(1)
        self.latent_dim = 1

    def sample_real(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.zeros(n, 1)

    def make_generator(self, param_shape: tuple[int, ...]) -> nn.Module:
        return Generator(nn.Identity(), 1, param_shape)

    def make_discriminator(self) -> nn.Module:
        return _Slope()

    def evaluate(self, x: torch.Tensor) -> dict[str, float]:
        return {"distance": float(x.double().mean().abs())}


def dirac_growth(h: float, order: str) -> float:
    """Spectral radius of one linearised Dirac-GAN step of size ``h`` (module doc):
    ``√(1 + h²/4)`` simultaneous; 1 alternating (for ``h < 4``)."""
    if order == SIMULTANEOUS:
        return math.sqrt(1 + h * h / 4)
    m = np.array([[1 - h * h / 4, h / 2], [-h / 2, 1.0]])
    return float(np.abs(np.linalg.eigvals(m)).max())


def dirac_gan(order: str, h: float = 0.1, steps: int = 400, start: float = 0.01
              ) -> np.ndarray:
    """``(θ, ψ)`` after each of ``steps`` iterations of :func:`gangrad.train.train_step`
    on :class:`DiracGAN` with plain SGD of step ``h`` for D and G, from ``θ = start``,
    ``ψ = 0``; ``(steps + 1, 2)``."""
    from gangrad import estimators
    from gangrad.train import TrainConfig, TrainState, train_step

    task, est = DiracGAN(), estimators.create("pathwise")
    cfg = TrainConfig(steps=steps, batch_size=2, lr_g=h, lr_d=h, d_steps=1, latent="none",
                      update_order=order, device="cpu").resolved(task)
    state = TrainState.fresh(task, est, 0, torch.device("cpu"))
    with torch.no_grad():
        state.G.head.linear.bias.fill_(start)
        state.D.linear.weight.fill_(0.0)
    state.opt_g = torch.optim.SGD(state.G.parameters(), lr=h)
    state.opt_d = torch.optim.SGD(state.D.parameters(), lr=h)
    path = [(start, 0.0)]
    for _ in range(steps):
        train_step(state, task, cfg)
        path.append((float(state.G.head.linear.bias.detach()),
                     float(state.D.linear.weight.detach())))
    return np.array(path)


def _label(order: str, k: int) -> str:
    return f"{order}, k={k}"


def budgets(updates: int, d_steps: list[int], eval_every: int | None = None
            ) -> dict[str, Any]:
    """G steps per arm at equal compute (``updates // (k + 1)``), the equal-G-steps budget
    (that of the largest k) and the evaluation interval: ``eval_every`` G steps, which
    must divide every budget's half, or by default the largest that does. ``ValueError``
    unless every budget is an even whole number of G steps."""
    if sorted(set(d_steps)) != sorted(d_steps) or 1 not in d_steps or min(d_steps) < 1:
        raise ValueError(f"d_steps must be distinct positive integers including 1, got "
                         f"{d_steps}")
    steps = {k: updates // (k + 1) for k in d_steps}
    bad = [k for k in d_steps if updates % (k + 1) or steps[k] % 2]
    if bad:
        raise ValueError(f"updates={updates} must split into an even number of G steps of "
                         f"k + 1 updates for every k; it does not for k in {bad}")
    equal_steps = steps[max(d_steps)]
    every = math.gcd(*(s // 2 for s in steps.values()))
    if eval_every is not None:
        if eval_every < 1 or every % eval_every:
            raise ValueError(f"eval_every={eval_every} must divide every budget's half "
                             f"({sorted({s // 2 for s in steps.values()})} G steps)")
        every = eval_every
    return {"steps": steps, "equal_steps": equal_steps, "eval_every": every}


def schedule_arms(settings: dict[str, Any]) -> list[tuple[Arm, int]]:
    """The untuned arms with their k: alternating for every k of ``settings["d_steps"]``
    and simultaneous with k = 1, each trained for its equal-compute G steps."""
    task = {"features": "quadratic", "loc": settings["loc"]}
    steps = budgets(settings["updates"], settings["d_steps"])["steps"]
    arms = [(Arm(_label(ALTERNATING, k), "gaussian1d", task,
                 train={"d_steps": k, "steps": steps[k]}), k) for k in settings["d_steps"]]
    arms.append((Arm(_label(SIMULTANEOUS, 1), "gaussian1d", task,
                     train={"d_steps": 1, "update_order": SIMULTANEOUS, "steps": steps[1]}),
                 1))
    return arms


def _curves(arms: list[tuple[Arm, int]], seeds: list[int], every: int,
            eval_samples: int) -> pd.DataFrame:
    """Each arm trained on ``seeds`` (batched), evaluated every ``every`` G steps: one row
    per (arm, seed, step) with ``updates`` and the task's metrics (NaN for a seed that
    diverged, at every step)."""
    from gangrad.train import train_seeds

    rows = []
    for arm, k in arms:
        train = dict(arm.train)
        steps = train.pop("steps")
        histories = train_seeds(arm.make_task(), arm.estimator, seeds, steps=steps,
                                eval_every=every, eval_samples=eval_samples, **train)
        for seed, h in zip(seeds, histories, strict=True):
            ok = h.attrs["status"] == "ok"
            for rec in h.to_dict("records"):
                rows.append({"arm": arm.label, "k": k, "seed": seed, "step": int(rec["step"]),
                             "updates": int(rec["step"]) * (k + 1),
                             "lr_g": train["lr_g"], "lr_d": train["lr_d"],
                             **{m: (float(rec[m]) if ok else math.nan) for m in ("w1", "ks")}})
    return pd.DataFrame(rows)


def views(curves: pd.DataFrame, updates: int, equal_steps: int) -> pd.DataFrame:
    """The :func:`~gangrad.questions._arms.train_budgets`-shaped rows of both views:
    arm ``"equal compute: <arm>"`` at ``updates/2`` and ``updates`` (``budget`` ``T/2``,
    ``T``), and ``"equal G steps: <arm>"`` at ``equal_steps/2`` and ``equal_steps``; W1
    also under the name ``W1``, as the verdict's sentences print it."""
    parts = []
    for view, unit, total in ((EQUAL_COMPUTE, "updates", updates),
                              (EQUAL_STEPS, "step", equal_steps)):
        for budget, at in (("T/2", total // 2), ("T", total)):
            rows = curves[curves[unit] == at].copy()
            rows["arm"] = f"{view}: " + rows["arm"]
            rows["budget"] = budget
            parts.append(rows.assign(W1=rows["w1"]))
    return pd.concat(parts, ignore_index=True)


def _word(outcome: str) -> str:
    return {"better": "better than", "worse": "worse than", "equivalent": "equivalent to",
            "undetermined": "not distinguishable from",
            "budget-dependent": "not settled against"}[outcome]


class UpdateSchedule(AbstractQuestion):
    name = "update-schedule"
    question = ("Should D and G be updated every iteration from the same state, or in turn "
                "(D on odd iterations, G on even), and do k D steps per G step help?")
    origin = ("How is the generator in a GAN trained? 'should we update D and G every time "
              "or D on odd iterations and G on even' (Cross Validated 237944)")
    quick = {"seeds": 12, "tuning_seeds": 4, "updates": 2400, "d_steps": [1, 5],
             "loc": 0.0, "grid": {"lr_g": [0.01, 0.03], "lr_d": [0.01, 0.03, 0.1]},
             "eval_every": 50, "eval_samples": 2000, "dirac_h": 0.1, "dirac_steps": 400}
    full = {"seeds": 30, "tuning_seeds": 8, "updates": 12000, "d_steps": [1, 2, 5],
            "loc": 0.0, "grid": {"lr_g": [0.003, 0.01, 0.03], "lr_d": [0.003, 0.01, 0.03, 0.1]},
            "eval_every": 100, "eval_samples": 2500, "dirac_h": 0.1, "dirac_steps": 2000}

    def experiment(self, settings: dict[str, Any], seed: int) -> dict[str, pd.DataFrame]:
        plan = budgets(settings["updates"], settings["d_steps"], settings["eval_every"])
        seeds = list(range(seed, seed + settings["seeds"]))
        # tuning seeds come after the verdict's: the verdict never sees them
        tuning = list(range(seed + settings["seeds"],
                            seed + settings["seeds"] + settings["tuning_seeds"]))
        tuned, grids = [], []
        for arm, k in schedule_arms(settings):
            best, grid = tune(arm, settings["grid"], tuning, "w1", higher_is_better=False,
                              eval_samples=settings["eval_samples"])
            tuned.append((best, k))
            grids.append(grid[["arm", "seed", "w1"]].assign(
                schedule=arm.label, chosen=lambda g, b=best: g["arm"].str.endswith(
                    f"lr_g={b.train['lr_g']}, lr_d={b.train['lr_d']}]")))
        curves = _curves(tuned, seeds, plan["eval_every"], settings["eval_samples"])
        h, n = settings["dirac_h"], settings["dirac_steps"]
        dirac = []
        for order in (ALTERNATING, SIMULTANEOUS):
            path = dirac_gan(order, h, n)
            radius = np.hypot(path[:, 0], path[:, 1])
            dirac += [{"order": order, "step": t, "theta": path[t, 0], "psi": path[t, 1],
                       "radius": radius[t]} for t in range(len(path))]
        return {"curves": curves, "tuning": pd.concat(grids, ignore_index=True),
                "dirac": pd.DataFrame(dirac)}

    def analyse(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]) -> Verdict:
        from gangrad import tasks

        curves, dirac = data["curves"], data["dirac"]
        plan = budgets(settings["updates"], settings["d_steps"], settings["eval_every"])
        margin = tasks.create("gaussian1d").metric("w1").margin
        table = views(curves, settings["updates"], plan["equal_steps"])
        alt1, sim = _label(ALTERNATING, 1), _label(SIMULTANEOUS, 1)
        ks = [_label(ALTERNATING, k) for k in settings["d_steps"] if k != 1]
        c, s = f"{EQUAL_COMPUTE}: ", f"{EQUAL_STEPS}: "
        order = decide(table, [c + alt1], c + sim, "W1", False, margin)
        compute = decide(table, [c + k for k in ks], c + alt1, "W1", False, margin)
        steps = decide(table, [s + k for k in ks], s + alt1, "W1", False, margin)
        h, n = settings["dirac_h"], settings["dirac_steps"]
        growth = {o: float(g["radius"].iloc[-1] / g["radius"].iloc[0]) ** (1 / n)
                  for o, g in dirac.groupby("order")}
        theory = {o: dirac_growth(h, o) for o in (ALTERNATING, SIMULTANEOUS)}
        lrs = curves.groupby("arm")[["lr_g", "lr_d"]].first()
        mean_at = table[table["budget"] == "T"].groupby("arm")["w1"].mean().to_dict()

        o = order.outcomes[c + alt1]
        if o == "equivalent":
            first = ("It makes no practical difference: once both have converged, updating "
                     "D and G in turn and updating them at once end equivalent")
        elif o in ("better", "worse"):
            first = (f"Updating them {'in turn' if o == 'better' else 'at once'} ends "
                     f"better once both have converged")
        elif o == "budget-dependent":
            first = ("Within this budget the order is not settled: the comparison changes "
                     "between the two budgets or an arm has not converged")
        else:
            first = (f"With {settings['seeds']} seeds the order makes no difference that "
                     "can be told apart")
        per_k = []
        for k in ks:
            oc, os_ = compute.outcomes[c + k], steps.outcomes[s + k]
            per_k.append(f"{k.split(', ')[1]} is {_word(oc)} k=1 both at equal compute and "
                         f"at equal G steps" if oc == os_ else
                         f"{k.split(', ')[1]} is {_word(oc)} k=1 at equal compute and "
                         f"{_word(os_)} it at equal G steps")
        answer = f"{first}; and with learning rates tuned alike, " + "; ".join(per_k) + "."

        e, kmax = plan["eval_every"], max(settings["d_steps"])
        ks_all = [_label(ALTERNATING, k) for k in settings["d_steps"]]
        early = {a: curves[(curves["arm"] == a) & (curves["step"] == e)]["w1"] for a in ks_all}
        cheap = {a: curves[(curves["arm"] == a) & (curves["updates"] == e * (kmax + 1))]["w1"]
                 for a in ks_all}

        def lr(arm: str) -> str:
            return f"lr_g {lrs.loc[arm, 'lr_g']:g}, lr_d {lrs.loc[arm, 'lr_d']:g}"

        tuned = ", ".join(f"{a}: {lr(a)}" for a in lrs.index)
        lines = [
            f"- Dirac-GAN, plain gradient steps h = {h}: simultaneous updates spiral out by "
            f"{growth[SIMULTANEOUS]:.5f} per step (theory √(1 + h²/4) = "
            f"{theory[SIMULTANEOUS]:.5f}); alternating ones keep their distance "
            f"({growth[ALTERNATING]:.5f} per step; theory {theory[ALTERNATING]:.5f}).",
            f"- gaussian1d (data N({settings['loc']:g}, 1.25²), D on x and x², Adam, "
            f"{settings['seeds']} seeds; learning rates tuned per arm on "
            f"{settings['tuning_seeds']} other seeds from "
            f"{', '.join(f'{k} ∈ {v}' for k, v in settings['grid'].items())}: {tuned}).",
            f"- Alternating against simultaneous (k = 1, {plan['steps'][1]} G steps = "
            f"{settings['updates']} updates each): {order.sentence(c + alt1)}.",
            f"- Equal compute ({settings['updates']} updates: "
            + ", ".join(f"k={k} {plan['steps'][k]} G steps" for k in settings["d_steps"])
            + "): " + "; ".join(compute.sentence(c + k) for k in ks) + ".",
            f"- Equal G steps ({plan['equal_steps']} G steps: "
            + ", ".join(f"k={k} {plan['equal_steps'] * (k + 1)} updates"
                        for k in settings["d_steps"])
            + "): " + "; ".join(steps.sentence(s + k) for k in ks) + ".",
            f"- Along the way (description, not a verdict: nothing has converged there): W1 "
            f"after {e} G steps " + ", ".join(
                f"{a.split(', ')[1]} {fmt_ci(*mean_ci(early[a], low=0))}" for a in ks_all)
            + f"; after {e * (kmax + 1)} updates " + ", ".join(
                f"{a.split(', ')[1]} {fmt_ci(*mean_ci(cheap[a], low=0))}" for a in ks_all)
            + ".",
            "- Mean W1 at T: "
            + "; ".join(f"{view}: " + ", ".join(f"{a.split(': ', 1)[1]} {v:.3f}"
                                                 for a, v in mean_at.items()
                                                 if a.startswith(view))
                        for view in (EQUAL_COMPUTE, EQUAL_STEPS)) + ".",
        ]
        numbers = {"alternating_vs_simultaneous": order.numbers(c + alt1),
                   "equal_compute": {k: compute.numbers(c + k) for k in ks},
                   "equal_g_steps": {k: steps.numbers(s + k) for k in ks},
                   "w1_mean_at_T": mean_at, "tuned_lr": lrs.to_dict("index"),
                   "w1_after_first_g_steps": {a: list(mean_ci(v, low=0)) for a, v in early.items()},
                   "w1_after_first_updates": {a: list(mean_ci(v, low=0)) for a, v in cheap.items()},
                   "tuning_w1_mean": {sched: g.groupby("arm")["w1"].mean().to_dict()
                                      for sched, g in data["tuning"].groupby("schedule")},
                   "g_steps": {_label(ALTERNATING, k): v for k, v in plan["steps"].items()},
                   "equal_g_steps_budget": plan["equal_steps"],
                   "dirac_growth_per_step": growth, "dirac_theory": theory}
        changes = (
            "A task where D lags far behind G (a harder D problem, a richer D), or a "
            "learning-rate grid that does not contain each arm's best rate, could make "
            "k D steps worth their cost; the comparison at equal G steps charges the arms "
            "with more D steps nothing for them, so it favours them by construction. "
            "Plain SGD instead of Adam brings the Dirac-GAN's rotation back into play "
            "(simultaneous steps spiral out).")
        return Verdict("\n".join(lines), numbers, o, answer=answer,
                       convergence=convergence_record(order, compute, steps),
                       changes=changes)

    def table(self, data: dict[str, pd.DataFrame]) -> pd.DataFrame:
        return data["curves"]

    def figure(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]):
        curves, dirac = data["curves"], data["dirac"]
        plan = budgets(settings["updates"], settings["d_steps"], settings["eval_every"])
        fig, axes = new_figure(1, 3, width=15, height=3.9)
        for i, (order, g) in enumerate(dirac.groupby("order", sort=False)):
            axes[0].plot(g["theta"], g["psi"], color=f"C{i}", lw=0.8, label=order)
        axes[0].plot([0], [0], "k+", ms=10)
        axes[0].set(xlabel="θ (G's point)", ylabel="ψ (D's slope)", aspect="equal",
                    title=f"Dirac-GAN, SGD h = {settings['dirac_h']}")
        axes[0].legend(fontsize=8)
        for i, (arm, g) in enumerate(curves.groupby("arm", sort=False)):
            stats = g.groupby("step").agg(updates=("updates", "first"),
                                          mean=("w1", "mean"), lo=("w1", "min"),
                                          hi=("w1", "max"))
            for ax, x in ((axes[1], stats.index), (axes[2], stats["updates"])):
                ax.plot(x, stats["mean"], color=f"C{i}", lw=1.5, label=arm)
                ax.fill_between(x, stats["lo"], stats["hi"], color=f"C{i}", alpha=0.12)
        axes[1].axvline(plan["equal_steps"], color="k", ls=":", lw=0.8)
        axes[2].axvline(settings["updates"], color="k", ls=":", lw=0.8)
        axes[1].set(xlabel="G steps", ylabel="W1", yscale="log",
                    title="gaussian1d, D on x and x²: per G step")
        axes[2].set(xlabel="updates (D steps + G steps)", ylabel="W1", yscale="log",
                    title="per unit of compute")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        return fig, ("Left: the Dirac-GAN's (θ, ψ) under simultaneous and alternating "
                     "gradient steps from θ = 0.01 (+: the equilibrium). Middle and right: W1 "
                     "of each tuned schedule along training (mean over seeds; band: min to "
                     "max), against G steps and against updates; dotted: the budget of the "
                     "equal-G-steps and of the equal-compute comparison.")
