r"""Which way of training a GAN with discrete outputs gives the best samples at equal
f-evaluations?

The GAN literature trained discrete generators with its own estimators, which use D's
output as a reward or an importance weight; since 2024 the same score-function family
trains language models from rewards. Arms, each the way its paper uses it:

- **straight-through** (Bengio et al., 2013): a hard one-hot draw forward, the softmax's
  gradient backward (biased);
- **annealed Gumbel-softmax** (Jang et al., 2017; GSGAN, Kusner & Hernández-Lobato, 2016;
  RelGAN, Nie et al., 2019): D sees ``softmax((θ + g)/τ)`` with ``τ`` annealed from 1 to
  0.01 along RelGAN's ``lin`` policy (inverse temperature rising linearly to 100 over the
  run: :class:`gangrad.schedules.Schedule` ``inverse_linear``);
- **REINFORCE with group baselines** over ``S`` draws per z: **RLOO** (leave-one-out mean;
  Kool et al., 2019), **Dr. GRPO** (the group mean including the draw; Liu et al., 2025:
  RLOO scaled by ``(S − 1)/S``) and **GRPO** (the group-normalised advantage
  ``(f − mean)/std``; Shao et al., 2024), :mod:`gangrad.estimators.score_function`;
- **MaliGAN** (Che et al., 2017): REINFORCE weighted by ``D/(1 − D)``, normalised over the
  batch, minus the mean weight (:mod:`gangrad.estimators.maligan`);
- **BGAN** (Hjelm et al., 2018): REINFORCE weighted by ``softmax`` of D's logit over ``S``
  draws per z (:mod:`gangrad.estimators.bgan`);
- **SeqGAN** (Yu et al., 2017): REINFORCE whose every prefix is valued by Monte Carlo
  roll-outs (:mod:`gangrad.estimators.seqgan_rollout`). With one symbol there is no prefix
  to complete, so it runs only on sequences.

Settings (exact metrics by enumeration in both):

- ``categorical``: one symbol of ``K`` with Zipf probabilities, the task's G (one learned
  logit vector, :mod:`gangrad.tasks.categorical`), so the generator's distribution is
  ``q = softmax(θ)`` exactly;
- ``sequence`` (the full run): ``oracle_seq`` at a small vocabulary and length, its MLP G
  of per-position logits given z and its convolutional D. Its ``V^L`` sequences are
  enumerated: the oracle's probabilities exactly, the generator's
  ``q(x) = E_z Π_t softmax(G(z)_t)[x_t]`` over a fixed set of latent draws shared by every
  arm and seed. Roll-outs complete a prefix from G's own per-position distributions, which
  are exact given z (``G_β = G_θ``).

Headline metric: ``kl_exact = KL(q ‖ p)`` in nats (per sequence for sequences), the
direction of the task's own ``kl``, with the task's practical margin (0.01 for
``categorical``, 0.05 for ``oracle_seq``); ``KL(p ‖ q)``, which punishes missing modes, is
reported beside it.

Fairness:

- **equal f-evaluations**: every arm calls ``f`` (D through the generator's loss) the same
  number of times per G step, ``budget`` (64): its batch is ``budget`` divided by its calls
  per row (:meth:`~gangrad.estimators.AbstractEstimator.evaluations`: ``S`` for the group
  estimators and BGAN, ``1 + N(L − 1)`` for SeqGAN with ``N`` roll-outs), and all train
  the same number of steps, so equal steps are equal f-evaluations in total. D trains on
  the fakes ``f`` sees first: ``budget`` draws per step for every arm but SeqGAN, whose
  roll-outs are evaluated and not trained on (its D sees its ``budget/(1 + N(L − 1))``
  sampled sequences);
- **equal tuning budget**: every arm's learning rate of G is chosen from the same grid on
  tuning seeds the verdict does not use (:func:`gangrad.questions._arms.tune`, by
  ``kl_exact`` after ``tuning_steps``, half the verdict's runs, with the temperature
  annealed over those steps);
- **convergence**: every arm is read at ``T/2`` and ``T`` on the same runs and compared
  with the best at both (:func:`gangrad.questions._arms.decide`); an outcome is stated only
  when both arms converged and it is the same at both budgets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from gangrad import estimators
from gangrad.plotting import new_figure
from gangrad.questions._arms import (
    Arm,
    Decision,
    arm_convergence,
    at_budget,
    convergence_record,
    decide,
    train_budgets,
    tune,
)
from gangrad.questions._base import AbstractQuestion, Verdict
from gangrad.schedules import Schedule
from gangrad.spaces import Discrete
from gangrad.stats import BUDGET_DEPENDENT, fmt_ci, mean_ci
from gangrad.tasks import Categorical, Metric, OracleSeq

__all__ = ["ARMS", "ExactArm", "ExactCategorical", "ExactOracleSeq", "GANDiscrete",
           "arms_for", "exact_metrics", "log_marginal", "summarise"]

#: label -> (estimator key, hyper-parameters); ``S`` stands for the group size and ``N``
#: for SeqGAN's roll-outs per prefix, filled from the settings
ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    "straight-through": ("straight_through", {}),
    "annealed Gumbel-softmax": ("gumbel_softmax", {}),
    "RLOO": ("score_function", {"baseline": "mean", "samples": "S"}),
    "Dr. GRPO": ("score_function", {"baseline": "group_mean", "samples": "S"}),
    "GRPO": ("score_function", {"baseline": "group_norm", "samples": "S"}),
    "MaliGAN": ("maligan", {}),
    "BGAN": ("bgan", {"samples": "S"}),
    "SeqGAN": ("seqgan_rollout", {"rollouts": "N"}),
}
SEQUENCE_ONLY = ("SeqGAN",)
#: RelGAN's ``lin`` policy with β_max = 100: τ from 1 to 0.01 over the run
TEMPERATURE = (1.0, 0.01, "inverse_linear")
LATENT_DRAWS = 2048  # fixed latent draws for the generator's marginal on sequences
MAX_SUPPORT = 2 ** 16  # sequences enumerated at most


def log_marginal(logits: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """``log q(x) = log (1/Z) Σ_z Π_t softmax(logits_z,t)[x_t]`` for every sequence ``x``
    of ``V^L``, in lexicographic order (the first position varies slowest, as
    ``itertools.product``), from ``logits (Z, L, V)`` (one row per latent draw); float64,
    on the CPU. Computed on the logits' device, ``chunk`` latent draws at a time, by outer
    sums position after position (``Z·V^L`` additions, no gather)."""
    Z, L, _ = logits.shape
    log_p = logits.double().log_softmax(-1)
    parts = []
    for block in log_p.split(chunk):  # c x L x V
        acc = block[:, 0]  # c x V
        for t in range(1, L):
            acc = (acc.unsqueeze(-1) + block[:, t].unsqueeze(1)).flatten(1)  # c x V^(t+1)
        parts.append(torch.logsumexp(acc, 0))
    return (torch.logsumexp(torch.stack(parts), 0) - math.log(Z)).cpu()


def exact_metrics(log_q: torch.Tensor, log_p: torch.Tensor) -> dict[str, float]:
    """``kl_exact = KL(q ‖ p)``, ``kl_forward = KL(p ‖ q)`` and ``tv_exact`` from the log
    probabilities of the same enumerated outcomes (each normalised over them first, so that
    rounding leaves both summing to one)."""
    log_q, log_p = log_q.double().log_softmax(0), log_p.double().log_softmax(0)
    q, p = log_q.exp(), log_p.exp()
    return {"kl_exact": float((q * (log_q - log_p)).sum()),
            "kl_forward": float((p * (log_p - log_q)).sum()),
            "tv_exact": float(0.5 * (q - p).abs().sum())}


class ExactCategorical(Categorical):
    """``categorical`` with the exact metrics of G's own distribution: ``q = softmax(θ)``
    against ``p`` by enumeration of the ``K`` symbols (:func:`exact_metrics`)."""

    generator_metrics = {"kl_exact": Metric(False, margin=0.01, low=0.0),
                         "kl_forward": Metric(False, margin=0.01, low=0.0),
                         "tv_exact": Metric(False, margin=0.01, low=0.0, high=1.0)}

    @torch.no_grad()
    def evaluate_generator(self, G, param_kind, generator=None):
        # the task's G ignores z: one draw gives softmax(θ)
        device = next((p.device for p in G.parameters()), torch.device("cpu"))
        logits = G(self.sample_latent(1, torch.Generator().manual_seed(0)).to(device))
        log_q = logits.double().log_softmax(-1).reshape(-1).cpu()
        return exact_metrics(log_q, self.probs.double().log())


class ExactOracleSeq(OracleSeq):
    """``oracle_seq`` with the exact metrics of G's distribution over all ``V^L``
    sequences: the oracle's log-probabilities exactly, G's marginal over
    :data:`LATENT_DRAWS` fixed latent draws (:func:`log_marginal`), beside the task's own
    ``nll_test``."""

    generator_metrics = {**OracleSeq.generator_metrics,
                         "kl_exact": Metric(False, margin=0.05, low=0.0),
                         "kl_forward": Metric(False, margin=0.05, low=0.0),
                         "tv_exact": Metric(False, margin=0.01, low=0.0, high=1.0)}

    def __init__(self, vocab: int = 4, length: int = 8, hidden: int = 32,
                 oracle_seed: int = 0) -> None:
        if vocab ** length > MAX_SUPPORT:
            raise ValueError(f"ExactOracleSeq enumerates vocab**length sequences; at most "
                             f"{MAX_SUPPORT}, got {vocab}**{length} = {vocab ** length}")
        super().__init__(vocab=vocab, length=length, hidden=hidden, oracle_seed=oracle_seed)
        grids = torch.meshgrid(*[torch.arange(vocab)] * length, indexing="ij")
        # V^L x L, lexicographic (the order of log_marginal)
        self.support = torch.stack([g.flatten() for g in grids], 1)
        self.log_p_oracle = self.oracle.log_prob(self.support).double()
        self.latents = self.sample_latent(LATENT_DRAWS, torch.Generator().manual_seed(0))

    @torch.no_grad()
    def evaluate_generator(self, G, param_kind, generator=None, **kwargs):
        out = super().evaluate_generator(G, param_kind, generator, **kwargs)
        device = next((p.device for p in G.parameters()), torch.device("cpu"))
        logits = torch.cat([G(z.to(device)) for z in self.latents.split(256)])  # on G's device
        out.update(exact_metrics(log_marginal(logits), self.log_p_oracle))
        return out


_TASKS = {"categorical": ExactCategorical, "sequence": ExactOracleSeq}
_TASK_KEYS = {"categorical": "categorical", "sequence": "oracle_seq"}


@dataclass(frozen=True)
class ExactArm(Arm):
    """An :class:`~gangrad.questions._arms.Arm` on the task with exact metrics
    (:class:`ExactCategorical`, :class:`ExactOracleSeq`; ``task`` names the registered
    task it extends)."""

    def make_task(self):
        return {"categorical": ExactCategorical, "oracle_seq": ExactOracleSeq}[self.task](
            **self.task_params)


def arms_for(setting: str, task_params: dict[str, Any], budget: int, group: int,
             rollouts: int, steps: int, lr_g: float | None = None,
             device: str | None = "cpu") -> list[ExactArm]:
    """The arms of one setting (``"categorical"`` or ``"sequence"``), each labelled
    ``"setting: arm"``, at ``budget`` f-evaluations per G step (batch = budget / calls of
    ``f`` per row), the annealed temperature spanning ``steps``, trained on ``device``
    (``None``: a GPU when there is one); ``ValueError`` when a batch would not be a whole
    number of at least 2 rows."""
    space = (Discrete(1, task_params["classes"]) if setting == "categorical" else
             Discrete(task_params["length"], task_params["vocab"]))
    out = []
    for label, (key, hyper) in ARMS.items():
        if setting == "categorical" and label in SEQUENCE_ONLY:
            continue
        hyper = {k: {"S": group, "N": rollouts}.get(v, v) if isinstance(v, str) else v
                 for k, v in hyper.items()}
        calls = estimators.create(key, **hyper).evaluations(space)
        rows = budget / calls
        if rows != int(rows) or rows < 2:
            raise ValueError(f"gan-discrete: {label} calls f {calls:g} times per row, so "
                             f"budget={budget} f-evaluations per step is not a whole batch "
                             "of at least 2 rows")
        train: dict[str, Any] = {"batch_size": int(rows), "device": device}
        if key == "gumbel_softmax":
            start, end, kind = TEMPERATURE
            train["schedules"] = {"temperature": Schedule(start, end, steps, kind)}
        if lr_g is not None:
            train["lr_g"] = lr_g
        out.append(ExactArm(f"{setting}: {label}", _TASK_KEYS[setting], dict(task_params),
                            key, hyper, train))
    return out


def summarise(table: pd.DataFrame, setting: str, margin: float) -> dict[str, Any]:
    """One setting's decision: the best arm at ``T`` (lowest mean ``kl_exact`` among the
    arms that converged, or among all when none did), every other arm against it at both
    budgets (:func:`gangrad.questions._arms.decide`), and the setting's outcome."""
    rows = table[table["arm"].str.startswith(f"{setting}: ")]
    labels = list(dict.fromkeys(rows["arm"]))
    end = at_budget(rows, "T").groupby("arm")["kl_exact"].mean()
    converged = [a for a in labels
                 if arm_convergence(rows, a, "kl_exact", margin).converged]
    pool = converged or labels
    best = str(end.loc[pool].idxmin())
    others = [a for a in labels if a != best]
    decision = decide(rows, others, best, "kl_exact", False, margin)
    outcomes = [decision.outcomes[a] for a in others]
    if BUDGET_DEPENDENT in outcomes:
        outcome = BUDGET_DEPENDENT
    elif "undetermined" in outcomes:
        outcome = "undetermined"
    elif "worse" in outcomes:
        outcome = "better"
    else:
        outcome = "equivalent"
    return {"setting": setting, "labels": labels, "best": best, "others": others,
            "decision": decision, "outcome": outcome, "margin": margin}


def _short(label: str) -> str:
    return label.split(": ", 1)[1]


def _within(c, margin: float) -> str:
    """A comparison's outcome, with "by less than the margin" when it is a clear difference
    whose whole interval lies inside ``±margin``."""
    if c.outcome in ("better", "worse") and -margin < c.lo and c.hi < margin:
        return f"{c.outcome} by less than {margin:g} nats"
    return c.outcome


def _listing(words: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


class GANDiscrete(AbstractQuestion):
    name = "gan-discrete"
    question = ("Which way of training a GAN with discrete outputs gives the best samples at "
                "equal f-evaluations: SeqGAN's roll-outs, MaliGAN, BGAN, Gumbel-softmax with "
                "annealing, REINFORCE with group baselines (RLOO, Dr. GRPO, GRPO) or "
                "straight-through?")
    origin = ("SeqGAN (Yu et al., 2017), MaliGAN (Che et al., 2017), BGAN (Hjelm et al., "
              "2018), RelGAN (Nie et al., 2019), GRPO (Shao et al., 2024), Dr. GRPO (Liu et "
              "al., 2025)")
    quick = {"seeds": 8, "tuning_seeds": 2, "budget": 64, "group": 4, "rollouts": 1,
             "checkpoints": 10, "device": "cpu",
             "categorical": {"classes": 50, "steps": 1000, "tuning_steps": 500,
                             "lr_g": [3e-3, 1e-2, 3e-2]},
             "sequence": None}
    full = {"seeds": 16, "tuning_seeds": 4, "budget": 64, "group": 4, "rollouts": 1,
            "checkpoints": 20, "device": None,
            "categorical": {"classes": 50, "steps": 4000, "tuning_steps": 2000,
                            "lr_g": [1e-3, 3e-3, 1e-2, 3e-2]},
            "sequence": {"vocab": 4, "length": 8, "steps": 8000, "tuning_steps": 4000,
                         "lr_g": [3e-4, 1e-3, 3e-3]}}

    def experiment(self, settings: dict[str, Any], seed: int) -> dict[str, pd.DataFrame]:
        seeds = list(range(seed, seed + settings["seeds"]))
        tuning_seeds = list(range(seed + 1000, seed + 1000 + settings["tuning_seeds"]))
        present = {s: settings[s] for s in ("categorical", "sequence") if settings.get(s)}
        sizes = {s: ({"classes": spec["classes"]} if s == "categorical" else
                     {"vocab": spec["vocab"], "length": spec["length"]},
                     settings["budget"], settings["group"], settings["rollouts"])
                 for s, spec in present.items()}
        for s, size in sizes.items():  # every setting's batches are whole, before any run
            arms_for(s, *size, present[s]["steps"])
        runs, tunings, curves, arms = [], [], [], []
        for setting, spec in present.items():
            size = sizes[setting]
            task = _TASKS[setting](**size[0])  # built once: the sequences' enumeration
            T, T_tune = spec["steps"], spec["tuning_steps"]
            chosen = []
            for arm in arms_for(setting, *size, T_tune, device=settings["device"]):
                best, grid = tune(arm, {"lr_g": spec["lr_g"]}, tuning_seeds, "kl_exact",
                                  False, steps=T_tune)
                tunings.append(grid.assign(tuned_for=arm.label, setting=setting))
                lr_g = best.train["lr_g"]
                final = next(a for a in arms_for(setting, *size, T, lr_g=lr_g,
                                                 device=settings["device"])
                             if a.label == arm.label)  # the temperature spans T
                chosen.append(final)
                est = estimators.create(arm.estimator, **arm.hyper)
                arms.append({"setting": setting, "arm": arm.label,
                             "estimator": est.label, "batch_size": final.train["batch_size"],
                             "calls_per_row": est.evaluations(task.space), "lr_g": lr_g})

            def record(arm, s, step, state, setting=setting, task=task):
                curves.append({"setting": setting, "arm": arm.label, "seed": s, "step": step,
                               "kl_exact": task.evaluate_generator(state.G, "logits")[
                                   "kl_exact"]})

            runs.append(train_budgets(chosen, seeds, T, checkpoints=settings["checkpoints"],
                                      on_checkpoint=record).assign(setting=setting))
        return {"runs": pd.concat(runs, ignore_index=True), "arms": pd.DataFrame(arms),
                "curves": pd.DataFrame(curves),
                "tuning": pd.concat(tunings, ignore_index=True)}

    def table(self, data: dict[str, pd.DataFrame]) -> pd.DataFrame:
        return data["runs"]

    def analyse(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]) -> Verdict:
        runs = data["runs"]
        margins = {"categorical": ExactCategorical.metric("kl_exact").margin,
                   "sequence": ExactOracleSeq.metric("kl_exact").margin}
        present = [s for s in ("categorical", "sequence") if (runs["setting"] == s).any()]
        parts = {s: summarise(runs, s, margins[s]) for s in present}
        numbers: dict[str, Any] = {"budget_f_evaluations_per_step": settings["budget"],
                                   "group": settings["group"],
                                   "rollouts": settings["rollouts"]}
        lines, answers = [], []
        for s, part in parts.items():
            numbers[s] = self._setting_numbers(runs, data["arms"], data["tuning"], part)
            lines += self._setting_lines(runs, part, settings, numbers[s])
            answers.append(self._sentence(part, settings))
        outcomes = [p["outcome"] for p in parts.values()]
        outcome = (outcomes[0] if len(set(outcomes)) == 1 else
                   BUDGET_DEPENDENT if BUDGET_DEPENDENT in outcomes else "undetermined")
        answer = "; ".join(answers)
        if "sequence" not in parts:
            answer += ("; SeqGAN's roll-outs need a sequence to value its prefixes and are "
                       "compared only in the full run, on oracle_seq")
        answer = answer[0].upper() + answer[1:] + "."
        changes = (
            "The f-evaluation budget per step and the group size S set the score-function "
            "arms' variance (more draws per z help RLOO, GRPO and BGAN at fewer rows); the "
            "temperature schedule's end sets how soft the Gumbel-softmax samples D sees "
            "stay; MaliGAN's and BGAN's weights are importance weights only for a D near "
            "its optimum, so fewer D steps or a weaker D bias them further; on sequences, "
            "more roll-outs per prefix give SeqGAN better values at proportionally fewer "
            "rows; a larger vocabulary or longer sequences raise every score-function "
            "arm's variance and a longer budget lets the slow arms catch up. Adam makes "
            "Dr. GRPO's constant factor (S − 1)/S invisible; plain SGD would not.")
        return Verdict("\n".join(lines), numbers, outcome, answer=answer,
                       convergence=convergence_record(*[p["decision"] for p in parts.values()]),
                       changes=changes)

    @staticmethod
    def _sentence(part: dict[str, Any], settings: dict[str, Any]) -> str:
        """The setting's answer in words, computed from its outcomes."""
        d: Decision = part["decision"]
        margin = part["margin"]
        groups: dict[str, list[str]] = {}
        for a in part["others"]:
            outcome = d.outcomes[a]
            if outcome == "worse" and d.end[a].hi < margin:
                outcome = "slightly worse"  # a clear difference, inside the margin
            elif outcome == BUDGET_DEPENDENT:
                checks = (d.convergence[a], d.convergence[part["best"]])
                outcome = (f"{_within(d.half[a], margin)} at T/2 and "
                           f"{_within(d.end[a], margin)} at T"
                           if all(c.converged for c in checks) else "not converged")
            groups.setdefault(outcome, []).append(a)

        def clause(outcome: str, words: str) -> str:
            names = groups.pop(outcome, [])
            if not names:
                return ""
            return (f"{_listing([_short(n) for n in names])} "
                    f"{'are' if len(names) > 1 else 'is'} {words}")

        rest = [clause("equivalent", f"as good (within {margin:g} nats of KL)"),
                clause("slightly worse", f"worse by less than {margin:g} nats"),
                clause("worse", "worse by " + _listing(
                    [f"{d.end[a].difference:.2g}" for a in groups.get("worse", [])] or [""])
                    + " nats"),
                clause("undetermined", "not yet separated from it"),
                clause("not converged", "not compared, as not every arm converged")]
        rest += [clause(reason, f"budget-dependent against it ({reason})")
                 for reason in list(groups)]
        rest = [c for c in rest if c]
        where = ("on one categorical symbol" if part["setting"] == "categorical"
                 else "on oracle_seq sequences")
        best = _short(part["best"])
        decided = part["outcome"] in ("better", "equivalent")
        return (f"{where} at {settings['budget']} f-evaluations per step, {best} gives the "
                + ("best samples" if decided else "lowest KL")
                + "".join((": " if i == 0 else ", and " if i == len(rest) - 1 else ", ") + c
                          for i, c in enumerate(rest)))

    @staticmethod
    def _setting_numbers(runs: pd.DataFrame, arms: pd.DataFrame, tuning: pd.DataFrame,
                         part: dict[str, Any]) -> dict[str, Any]:
        d: Decision = part["decision"]
        rows = runs[runs["setting"] == part["setting"]]
        out: dict[str, Any] = {"best": part["best"], "outcome": part["outcome"],
                               "margin": part["margin"], "metric": "kl_exact"}
        per_arm = {}
        spec = arms.set_index("arm")
        for a in part["labels"]:
            r = rows[rows["arm"] == a]
            per_arm[a] = {
                **{f"kl_exact_{k}": list(mean_ci(at_budget(r, b)["kl_exact"], low=0))
                   for k, b in (("half", "T/2"), ("end", "T"))},
                "kl_forward_end": list(mean_ci(at_budget(r, "T")["kl_forward"], low=0)),
                "batch_rows": int(spec.loc[a, "batch_size"]),
                "f_evaluations_per_step": float(spec.loc[a, "batch_size"]
                                                * spec.loc[a, "calls_per_row"]),
                "lr_g": float(spec.loc[a, "lr_g"]),
                "tuning_kl_by_lr_g": _tuning(tuning, a),
                "converged": d.convergence[a].status}
        out["arms"] = per_arm
        out["comparisons"] = {a: d.numbers(a) for a in part["others"]}
        rloo, dr = f"{part['setting']}: RLOO", f"{part['setting']}: Dr. GRPO"
        if rloo in per_arm and dr in per_arm and per_arm[rloo]["lr_g"] == per_arm[dr]["lr_g"]:
            out["rloo_vs_dr_grpo_max_abs_difference"] = {}
            for k, b in (("half", "T/2"), ("end", "T")):
                wide = at_budget(rows, b).pivot(index="seed", columns="arm",
                                                values="kl_exact")
                out["rloo_vs_dr_grpo_max_abs_difference"][k] = float(
                    (wide[rloo] - wide[dr]).abs().max())
        return out

    @staticmethod
    def _setting_lines(runs: pd.DataFrame, part: dict[str, Any], settings: dict[str, Any],
                       nums: dict[str, Any]) -> list[str]:
        s, d = part["setting"], part["decision"]
        spec = settings[s]
        T = spec["steps"]
        task = (f"categorical, {spec['classes']} Zipf symbols" if s == "categorical" else
                f"oracle_seq, vocabulary {spec['vocab']}, length {spec['length']}")
        F = settings["budget"]
        lines = [f"**{s}** ({task}; {settings['seeds']} seeds; exact KL(q ‖ p) in nats, "
                 f"margin {part['margin']:g}):",
                 f"- Equal f-evaluations: every arm calls f {F} times per G step (its batch "
                 f"rows × calls per row) for {T} steps, {F * T:,} in all, and D takes one "
                 f"step per G step on the fakes f sees first"
                 + (" (SeqGAN's: its sampled sequences, not their roll-outs)"
                    if f"{s}: SeqGAN" in part["labels"] else "")
                 + "; straight-through and Gumbel-softmax also backpropagate "
                 f"through D, the others do not. Each arm's lr_g was chosen from "
                 f"{', '.join(f'{x:g}' for x in spec['lr_g'])} on "
                 f"{settings['tuning_seeds']} tuning seeds after {spec['tuning_steps']} "
                 f"steps.",
                 "- Exact KL at T/2 → T, batch rows and the tuned G learning rate:"]
        for a in part["labels"]:
            v = nums["arms"][a]
            lines.append(f"  - {_short(a)}: {fmt_ci(*v['kl_exact_half'])} → "
                         f"{fmt_ci(*v['kl_exact_end'])}; KL(p ‖ q) at T "
                         f"{v['kl_forward_end'][0]:.3g}; {v['batch_rows']} rows, lr_g "
                         f"{v['lr_g']:g}; {v['converged']}")
        lines.append(f"- Against the best ({_short(part['best'])}):")
        lines += [f"  - {d.sentence(a)}" for a in part["others"]]
        diff = nums.get("rloo_vs_dr_grpo_max_abs_difference")
        if diff is not None:
            lines.append(f"- RLOO and Dr. GRPO, tuned to the same learning rate, train the "
                         f"same run up to rounding: Dr. GRPO's gradient is RLOO's times "
                         f"(S − 1)/S, a constant that Adam's update removes (up to its ε), "
                         f"and their per-seed KL differs by at most {diff['half']:.2g} at "
                         f"T/2 and {diff['end']:.2g} at T, rounding that GAN training "
                         f"amplifies.")
        n_conv = sum(d.convergence[a].converged for a in part["labels"])
        lines.append(f"- Converged (T/2 → T within ±{part['margin']:g}): {n_conv} of "
                     f"{len(part['labels'])} arms (table below).")
        return lines

    def figure(self, data: dict[str, pd.DataFrame], settings: dict[str, Any]):
        runs, curves = data["runs"], data["curves"]
        present = [s for s in ("categorical", "sequence") if (runs["setting"] == s).any()]
        fig, axes = new_figure(len(present), 2, width=13, height=4.2 * len(present),
                               squeeze=False)
        for row, s in enumerate(present):
            labels = list(dict.fromkeys(runs.loc[runs["setting"] == s, "arm"]))
            colour = {a: f"C{i}" for i, a in enumerate(ARMS)}
            ax = axes[row][0]
            c = curves[curves["setting"] == s]
            for a in labels:
                m = c[c["arm"] == a].groupby("step")["kl_exact"].mean()
                ax.plot(m.index, m.values, color=colour[_short(a)], label=_short(a), lw=1.2,
                        ls="--" if _short(a) == "Dr. GRPO" else "-")  # on RLOO's line
            ax.axvline(settings[s]["steps"] // 2, color="grey", ls=":", lw=0.8)
            ax.set_yscale("log")
            ax.set(xlabel="G step (equal f-evaluations per step)",
                   ylabel="exact KL(q ‖ p), mean over seeds", title=f"{s}: training")
            ax.legend(fontsize=7)
            ax = axes[row][1]
            end = at_budget(runs[runs["setting"] == s], "T")
            order = end.groupby("arm")["kl_exact"].mean().loc[labels].sort_values().index
            for i, a in enumerate(order):
                v = end[end["arm"] == a]["kl_exact"]
                ax.scatter(np.full(len(v), i), v, s=10, alpha=0.5, color=colour[_short(a)])
                mean, lo, hi = mean_ci(v, low=0)
                ax.errorbar([i], [mean], yerr=[[mean - lo], [hi - mean]], fmt="s", capsize=3,
                            color=colour[_short(a)])
            best = end[end["arm"] == order[0]]["kl_exact"].mean()
            margin = (ExactCategorical if s == "categorical" else ExactOracleSeq).metric(
                "kl_exact").margin
            ax.axhspan(best, best + margin, color="grey", alpha=0.15, lw=0)
            ax.set_yscale("log")
            ax.set_xticks(range(len(order)), [_short(a) for a in order], rotation=20,
                          fontsize=7)
            ax.set(ylabel="exact KL(q ‖ p) at T", title=f"{s}: at T, best first")
        fig.tight_layout()
        return fig, ("Left: exact KL of each arm's generator against the data during training "
                     "(mean over seeds; every step costs every arm the same number of "
                     "f-evaluations); dotted: T/2, where the convergence check reads the runs "
                     "first. Right: KL at T, one dot per seed, mean and 95% interval, best "
                     "first; the shaded band is the best mean plus the practical margin.")


def _tuning(tuning: pd.DataFrame, label: str) -> dict[str, float]:
    """Mean ``kl_exact`` over the tuning seeds of each learning rate tried for ``label``."""
    if tuning.empty or "tuned_for" not in tuning:
        return {}
    t = tuning[tuning["tuned_for"] == label]
    means = t.groupby("arm")["kl_exact"].mean()
    return {name[name.rindex("lr_g=") + 5:-1]: float(v) for name, v in means.items()}
