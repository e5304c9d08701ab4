r"""The one-Bernoulli toy problem of the REBAR, RELAX, ARM and DisARM papers.

Minimise :math:`E_{b \sim \mathrm{Bernoulli}(σ(φ))}[(b − t)^2]` over the logit ``φ``. The
exact gradient is

.. math::  \frac{d}{dφ} E[(b − t)^2] = p(1 − p)\,\big[(1 − t)^2 − t^2\big]
           = p(1 − p)(1 − 2t),\qquad p = σ(φ),

``¼(1 − 2t)`` at ``φ = 0``: for ``t`` near ½ the signal is tiny beside the estimators'
noise, which is what the problem tests. Per-sample variances, each derived here from its
estimator's definition (enumeration over ``b``, integration over the uniform ``u``):

- REINFORCE (Williams, 1992), ``ĝ = f(b)(b − p)``.
- Leave-one-out with ``S = 2`` samples (Kool et al., 2019), ``ĝ = ½ Σ_i (f(b_i) −
  f(b_{−i}))(b_i − p)``: ``(1 − 2t)²/16`` at ``φ = 0``.
- ARM (Yin & Zhou, 2019), ``ĝ = (f(b̃) − f(b))(u − ½)``, ``b = 1[u < σ(φ)]``,
  ``b̃ = 1[u > σ(−φ)]``: ``(1 − 2t)²/48`` at ``φ = 0``.
- DisARM (Dong, Mnih & Tucker, 2020), ``ĝ = ½(f(b) − f(b̃))(−1)^{b̃} 1[b ≠ b̃] σ(|φ|)``:
  ``[½(1 − 2t)σ(|φ|)]² p'(1 − p')`` with ``p' = 2σ(−|φ|)``, 0 at ``φ = 0``.

References and what the rows check. The four papers show these variances as curves and
print none of them as a number this module could cite, so every reference value here is a
closed form derived in this module (each checked against a simulation of
the estimator's definition in ``tests/test_reproductions.py``): the REINFORCE, leave-one-out,
ARM and DisARM variances at every ``(t, φ)`` and the gradient ``¼(1 − 2t)`` at ``φ = 0``.
Their rows have kind ``"derived"``: self-consistency checks of gangrad's estimators against
the maths, not reproductions of printed numbers. (0.0159391, the value this problem is
often quoted with for REINFORCE at ``t = 0.45, φ = 0``, is that closed form rounded to
seven digits.) REBAR (Tucker et al., 2017) and RELAX (Grathwohl et al., 2018) learn their
control variates: their variance is measured after a stated number of Adam steps on the
variance at the fixed ``φ`` (the papers learn it while ``φ`` is optimised), beside
REINFORCE's, as comparison rows.

Margins (declared before any run): every reference is a closed form, so a measurement
agrees when it is within ±2% of it (relative), by the verdict rule of
:mod:`gangrad.reproductions._base`. At ``t = 0.499`` the gradient is 0.0005 and 2% of it is
far below what 10⁶ noisy estimates resolve, so those mean rows stay inconclusive unless
the estimator is exact there (DisARM at ``φ = 0``).

gangrad's estimators run on ``Discrete(1, 2)`` with logits ``(0, φ)``: the gradient with
respect to the second logit is the ``φ``-gradient.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from gangrad import estimators
from gangrad.reproductions._base import AbstractReproduction, Margin, Row, verdict_counts
from gangrad.reproductions._gradients import ROUNDING, gradient_summary, per_sample_gradients

__all__ = ["SETTINGS", "BernoulliToy", "arm_variance", "disarm_variance", "exact_gradient",
           "loo_variance", "reference_gradient", "reference_variance", "reinforce_variance"]

SETTINGS = ((0.45, 0.0), (0.45, 1.0), (0.499, 0.0), (0.499, 1.0))  # (t, φ)

# label -> (registry key, hyper-parameters)
ESTIMATORS: dict[str, tuple[str, dict[str, Any]]] = {
    "REINFORCE": ("score_function", {}),
    "leave-one-out (2 samples)": ("score_function", {"baseline": "mean", "samples": 2}),
    "ARM": ("arm", {}),
    "DisARM": ("disarm", {}),
    "REBAR": ("rebar", {}),
    "RELAX": ("relax", {}),
}
LEARNED = ("REBAR", "RELAX")
REINFORCE_QUOTED = 0.0159391  # t = 0.45, φ = 0: the closed form to seven digits


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _cost(b: float, t: float) -> float:
    return (b - t) ** 2


def exact_gradient(t: float, phi: float) -> float:
    """``d/dφ E[(b − t)²] = Σ_b f(b) dP(b)/dφ``, with ``dP(1)/dφ = p(1 − p) = −dP(0)/dφ``."""
    p = _sigmoid(phi)
    return p * (1 - p) * (_cost(1, t) - _cost(0, t))


def _moments(values: list[tuple[float, float]]) -> float:
    """Variance of a discrete law given as ``(probability, value)`` pairs."""
    mean = sum(w * v for w, v in values)
    return sum(w * v * v for w, v in values) - mean * mean


def reinforce_variance(t: float, phi: float) -> float:
    """``Var[f(b)(b − p)]`` by enumeration over ``b ∈ {0, 1}``."""
    p = _sigmoid(phi)
    return _moments([(p, _cost(1, t) * (1 - p)), (1 - p, _cost(0, t) * (0 - p))])


def loo_variance(t: float, phi: float, samples: int = 2) -> float:
    """Variance of the ``samples``-draw leave-one-out estimator, enumerating ``{0, 1}^S``."""
    p = _sigmoid(phi)
    values = []
    for bs in itertools.product((0, 1), repeat=samples):
        f = [_cost(b, t) for b in bs]
        others = [(sum(f) - fi) / (samples - 1) for fi in f]
        g = sum((fi - oi) * (bi - p) for fi, oi, bi in zip(f, others, bs, strict=True))
        values.append((math.prod(p if b else 1 - p for b in bs), g / samples))
    return _moments(values)


def _pieces(phi: float) -> list[tuple[float, float, int, int]]:
    """``[u0, u1)`` pieces of ``[0, 1]`` on which the antithetic pair ``b = 1[u < σ(φ)]``,
    ``b̃ = 1[u > σ(−φ)]`` is constant, with that pair."""
    cuts = sorted({0.0, _sigmoid(phi), _sigmoid(-phi), 1.0})
    out = []
    for u0, u1 in itertools.pairwise(cuts):
        mid = (u0 + u1) / 2
        out.append((u0, u1, int(mid < _sigmoid(phi)), int(mid > _sigmoid(-phi))))
    return out


def arm_variance(t: float, phi: float) -> float:
    """``Var[(f(b̃) − f(b))(u − ½)]``, integrating ``(u − ½)^k`` exactly on each piece."""
    mean = second = 0.0
    for u0, u1, b, bt in _pieces(phi):
        delta = _cost(bt, t) - _cost(b, t)
        mean += delta * ((u1 - 0.5) ** 2 - (u0 - 0.5) ** 2) / 2
        second += delta**2 * ((u1 - 0.5) ** 3 - (u0 - 0.5) ** 3) / 3
    return second - mean**2


def disarm_variance(t: float, phi: float) -> float:
    """Variance of ``½(f(b) − f(b̃))(−1)^{b̃} 1[b ≠ b̃] σ(|φ|)`` over the pieces of ``u``."""
    values = []
    for u0, u1, b, bt in _pieces(phi):
        g = 0.5 * (_cost(b, t) - _cost(bt, t)) * (1 - 2 * bt) * (b != bt) * _sigmoid(abs(phi))
        values.append((u1 - u0, g))
    return _moments(values)


CLOSED_FORMS: dict[str, Callable[[float, float], float]] = {
    "REINFORCE": reinforce_variance,
    "leave-one-out (2 samples)": loo_variance,
    "ARM": arm_variance,
    "DisARM": disarm_variance,
}


def reference_variance(label: str, t: float, phi: float) -> float | None:
    """The reference per-sample variance of estimator ``label`` at ``(t, φ)``: its closed
    form (the leave-one-out's and ARM's also in the simple forms ``(1 − 2t)²/16`` and
    ``(1 − 2t)²/48`` at ``φ = 0``, DisARM's as ``[½(1 − 2t)σ(|φ|)]² p'(1 − p')``); None for
    the learned estimators."""
    if label == "leave-one-out (2 samples)" and phi == 0:
        return (1 - 2 * t) ** 2 / 16
    if label == "ARM" and phi == 0:
        return (1 - 2 * t) ** 2 / 48
    if label == "DisARM":
        q = 2 * _sigmoid(-abs(phi))
        return (0.5 * (1 - 2 * t) * _sigmoid(abs(phi))) ** 2 * q * (1 - q)
    closed = CLOSED_FORMS.get(label)
    return None if closed is None else closed(t, phi)


def reference_gradient(t: float, phi: float) -> float | None:
    """The exact gradient ``¼(1 − 2t)`` at ``φ = 0``, else None (no mean row)."""
    return (1 - 2 * t) / 4 if phi == 0 else None


def _cost_fn(t: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: (x[:, 0, 1] - t) ** 2  # x: B x 1 x 2, one-hot or relaxed


class BernoulliToy(AbstractReproduction):
    """Per-sample gradient variances on E[(b − t)²], b ~ Bernoulli(σ(φ))."""

    name = "bernoulli-toy"
    title = "The one-Bernoulli toy problem: gradient variances of REINFORCE, LOO, ARM, DisARM"
    source = ("Tucker et al. (2017) REBAR, Sec. 6; Grathwohl et al. (2018) RELAX, Sec. 6.1; "
              "Yin & Zhou (2019) ARM; Dong, Mnih & Tucker (2020) DisARM, Sec. 3 "
              "(github.com/google-research/google-research/tree/master/disarm); "
              "the problem and the estimators; reference values: closed forms of the "
              "REINFORCE, leave-one-out, ARM and DisARM variances and of the gradient, "
              "derived here")
    error_kind = "none: exact values (closed forms derived here)"
    #: ±2% of a closed form; at least 1e-12, float64 rounding (DisARM's variance is 0 at
    #: phi=0)
    margins = {"variance of the gradient": Margin(0.02, relative=True, floor=ROUNDING),
               "mean of the gradient": Margin(0.02, relative=True, floor=ROUNDING)}
    quick = {"samples": 1_000_000, "learn_steps": 2000, "learn_batch": 64,
             "checkpoints": 5, "checkpoint_samples": 100_000}
    full = {"samples": 10_000_000, "learn_steps": 20_000, "learn_batch": 64,
            "checkpoints": 11, "checkpoint_samples": 1_000_000}

    def measure(self, settings: dict[str, Any], seed: int,
                progress: Callable[[str], None]) -> tuple[list[Row], pd.DataFrame]:
        records = []
        for i, (t, phi) in enumerate(SETTINGS):
            f = _cost_fn(t)
            row = torch.tensor([[0.0, phi]], dtype=torch.float64)  # logits (0, φ)
            exact = exact_gradient(t, phi)
            for j, (label, (key, hyper)) in enumerate(ESTIMATORS.items()):
                progress(f"t={t}, phi={phi:g}: {label}")
                est = estimators.create(key, **hyper)
                gen = torch.Generator().manual_seed(1000 * seed + 10 * i + j)
                common = {"t": t, "phi": phi, "estimator": label, "exact_gradient": exact,
                          "closed_form_variance": CLOSED_FORMS[label](t, phi)
                          if label in CLOSED_FORMS else math.nan}
                if label in LEARNED:
                    records += self._learn(est, row, f, exact, gen, settings, common)
                    step = settings["learn_steps"]
                else:
                    step = 0
                g = per_sample_gradients(est, row, f, (0, 1), settings["samples"], gen)
                records.append({**common, "kind": "final", "step": step,
                                **gradient_summary(g, exact)})
        data = pd.DataFrame.from_records(records)
        return self._rows(data, settings), data

    @staticmethod
    def _learn(est, row, f, exact, gen, settings, common) -> list[dict]:
        """Adam steps on the control variate at the fixed ``φ``; the variance at
        ``checkpoints`` evenly spaced steps."""
        steps = settings["learn_steps"]
        marks = set(np.linspace(0, steps, settings["checkpoints"]).round().astype(int))
        batch = row.expand(settings["learn_batch"], *row.shape)
        out = []
        for step in range(steps + 1):
            if step in marks:
                g = per_sample_gradients(est, row, f, (0, 1), settings["checkpoint_samples"],
                                         gen)
                out.append({**common, "kind": "learning", "step": step,
                            **gradient_summary(g, exact)})
            if step < steps:
                est.learn(batch, f, generator=gen)
        return out

    def _rows(self, data: pd.DataFrame, settings: dict[str, Any]) -> list[Row]:
        final = data[data.kind == "final"]
        scaled = f"{settings['samples']:,} estimates"
        if settings != self.full:
            scaled += f" (full: {self.full['samples']:,})"
        rows = []
        for r in final.itertuples():
            setting = f"{r.estimator}, t={r.t}, phi={r.phi:g}"
            note = scaled
            if r.estimator in LEARNED:
                note += (f"; control variate learned for {r.step:,} Adam steps of batch "
                         f"{settings['learn_batch']} at this phi")
            rows.append(Row("variance of the gradient", setting,
                            reference_variance(r.estimator, r.t, r.phi), None, r.variance,
                            r.variance_lo, r.variance_hi, note=note, kind="derived",
                            se=r.variance_se, dof=r.variance_dof))
        for r in final.itertuples():
            ref = reference_gradient(r.t, r.phi)
            if ref is None:
                continue
            rows.append(Row("mean of the gradient", f"{r.estimator}, t={r.t}, phi={r.phi:g}",
                            ref, None, r.mean, r.mean_lo, r.mean_hi, note=scaled,
                            kind="derived", se=r.mean_se, dof=r.mean_dof))
        return rows

    def summary(self, rows: list[Row], settings: dict[str, Any]) -> str:
        checks = [r for r in rows if r.verdict is not None]
        by = {r.setting: r for r in rows if r.quantity == "variance of the gradient"}
        base = by["REINFORCE, t=0.499, phi=0"].measured
        ratios = ", ".join(
            f"{label} {by[f'{label}, t=0.499, phi=0'].measured / base:.3g}×"
            for label in LEARNED)
        return (f"{len(checks)} closed forms derived here (self-consistency checks, no "
                f"printed numbers): {verdict_counts(checks)}; at t=0.499, phi=0, after "
                f"{settings['learn_steps']:,} steps of learning, variance relative to "
                f"REINFORCE: {ratios}.")

    def figure(self, rows: list[Row], data: pd.DataFrame,
               settings: dict[str, Any]) -> tuple[Any, str]:
        from gangrad.plotting import grid, palette

        fig, axes = grid(len(SETTINGS) + 1, width=4.0, height=3.4, cols=3)
        colours = palette(ESTIMATORS)
        final = data[data.kind == "final"]
        floor = 1e-10
        for ax, (t, phi) in zip(axes, SETTINGS, strict=False):
            part = final[(final.t == t) & (final.phi == phi)]
            for x, r in enumerate(part.itertuples()):
                c = colours[r.estimator]
                ax.errorbar([x], [r.variance], yerr=[[r.variance - r.variance_lo],
                                                     [r.variance_hi - r.variance]],
                            fmt="o", color=c, capsize=3)
                if not math.isnan(r.closed_form_variance):
                    ax.plot([x - 0.3, x + 0.3], [r.closed_form_variance] * 2, color="k", lw=1)
                ref = reference_variance(r.estimator, t, phi)
                if ref is not None:
                    ax.plot([x], [ref], marker="x", color="k", ms=8, ls="")
            ax.set_yscale("symlog", linthresh=floor)
            ax.set_xticks(range(len(part)))
            ax.set_xticklabels([e.split(" ")[0] for e in part.estimator], rotation=45,
                               fontsize=7)
            ax.set_title(f"t={t}, phi={phi:g}", fontsize=9)
            ax.set_ylabel("per-sample variance")
        ax = axes[-1]
        learning = data[data.kind == "learning"]
        for (label, t, phi), part in learning.groupby(["estimator", "t", "phi"]):
            ax.plot(part.step, part.variance, color=colours[label],
                    ls="-" if phi == 0 else "--", marker=".", alpha=0.6 if t == 0.45 else 1,
                    label=f"{label} t={t} phi={phi:g}")
        ax.set_yscale("log")
        ax.set_xlabel("Adam steps on the control variate")
        ax.set_ylabel("per-sample variance")
        ax.set_title("REBAR and RELAX while learning", fontsize=9)
        ax.legend(fontsize=5)
        fig.tight_layout()
        caption = ("Per-sample variance of each estimator's phi-gradient (points: gangrad, "
                   f"{settings['samples']:,} estimates, 95% intervals; lines: closed forms "
                   "derived here; crosses: the references of the rows; symmetric-log scale, 0 "
                   "at the "
                   "bottom). Last panel: REBAR's and RELAX's variance while their control "
                   "variates learn at fixed phi.")
        return fig, caption
