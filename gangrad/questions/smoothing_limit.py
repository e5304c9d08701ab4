"""Does E[∇f(x + σε)] approach ∇f(x) as σ → 0, at what rate, and at what variance cost
compared with the score-function form? (Goodfellow et al., 2014, eq. 1.)

Experiment: on ``gaussian1d`` at initialisation (same G, frozen D, fixed z), the gradient
statistics of Goodfellow's smoothing and of the score-function estimator of the same
smoothed objective, over a log-spaced σ grid (:func:`gangrad.measure.sigma_sweep`).
Analysis: the smoothing bias against the σ = 0 gradient is fitted as ``bias ∝ σ^p`` on
the σ values where it is resolved from noise (its interval excludes 0); the score
function's variance as ``variance ∝ σ^q``. Verdict: the limit holds if ``p > 0`` at 95%;
the cost is the variance ratio at the smallest σ.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

from gangrad.plotting import new_figure
from gangrad.questions._base import AbstractQuestion, Verdict


def _fit(sigma, value) -> tuple[float, float, float]:
    fit = scipy.stats.linregress(np.log(sigma), np.log(value))
    half = scipy.stats.t.ppf(0.975, len(sigma) - 2) * fit.stderr if len(sigma) > 2 else np.nan
    return float(fit.slope), float(fit.slope - half), float(fit.slope + half)


def _split(tot: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The smoothing and the score-function rows, indexed by σ."""
    return (tot[tot["key"] == "smoothing"].set_index("sigma"),
            tot[tot["key"] == "score_function"].set_index("sigma"))


class SmoothingLimit(AbstractQuestion):
    name = "smoothing-limit"
    question = ("Does the smoothed gradient E[∇f(x+σε)] approach ∇f(x) as σ → 0, at what "
                "rate, and at what variance cost compared with the score-function form?")
    origin = "Goodfellow et al. (2014), eq. 1: what does the σ→0 identity mean?"
    quick = {"sigmas": 7, "replicates": 2000}
    full = {"sigmas": 13, "replicates": 10_000}

    def experiment(self, settings: dict[str, Any], seed: int) -> pd.DataFrame:
        from gangrad.measure import sigma_sweep

        sigmas = np.logspace(-3, 0, settings["sigmas"])
        df = sigma_sweep("gaussian1d", sigmas, replicates=settings["replicates"],
                         batch_size=64, seed=seed, timing=False)
        return df[df["layer"] == "total"].sort_values("sigma")

    def table(self, data: pd.DataFrame) -> pd.DataFrame:
        return data[["sigma", "estimator", "bias", "bias_lo", "bias_hi", "variance",
                     "variance_lo", "variance_hi", "cosine", "snr"]]

    def analyse(self, tot: pd.DataFrame, settings: dict[str, Any]) -> Verdict:
        sm, sf = _split(tot)
        sigmas = sm.index.values
        ref_norm = float(sm["reference_norm"].iloc[0])
        resolved = sm[sm["bias_lo"] > 0]
        numbers = {"sigmas": list(map(float, sigmas)), "reference_norm": ref_norm,
                   "resolved_sigmas": list(map(float, resolved.index))}
        smallest = float(sm.index.min())
        ratio = float(sf.loc[smallest, "variance"] / max(sm.loc[smallest, "variance"], 1e-300))
        q, q_lo, q_hi = _fit(sf.index.values, sf["variance"].values)
        numbers.update({"score_variance_slope": [q, q_lo, q_hi], "variance_ratio_at_min": ratio,
                        "bias_at_min": float(sm.loc[smallest, "bias_hi"]) / ref_norm})
        if len(resolved) < 3:
            return Verdict(f"inconclusive: the smoothing bias is resolved from noise at only "
                           f"{len(resolved)} of {len(sigmas)} σ values; use --full", numbers)
        p, p_lo, p_hi = _fit(resolved.index.values, resolved["bias"].values)
        numbers["bias_slope"] = [p, p_lo, p_hi]
        if q_hi < 0:
            trend = "grows as σ → 0"
        elif q_lo > 0:
            trend = "shrinks as σ → 0"
        else:
            trend = "shows no trend in σ resolved at 95%"
        cost = (f"The score-function form of the same objective {trend}: its variance scales "
                f"as σ^{q:.2f} (95% CI {q_lo:.2f}–{q_hi:.2f}) and is {ratio:.3g}× the "
                f"smoothing variance at σ = {smallest:g}.")
        if p_lo > 0:
            text = (f"yes: the smoothed gradient tends to the σ = 0 gradient, bias ∝ σ^{p:.2f} "
                    f"(95% CI {p_lo:.2f}–{p_hi:.2f}); at σ = {smallest:g} the bias is below "
                    f"{100 * numbers['bias_at_min']:.2g}% of ‖∇f‖ (upper 95% bound). " + cost)
        else:
            text = (f"inconclusive: the fitted rate σ^{p:.2f} has a 95% CI {p_lo:.2f}–"
                    f"{p_hi:.2f} that includes 0. " + cost)
        return Verdict(text, numbers)

    def figure(self, tot: pd.DataFrame, settings: dict[str, Any]):
        sm, sf = _split(tot)
        fig, axes = new_figure(1, 2, width=10, height=3.8)
        for est, frame, color in (("smoothing", sm, "C0"), ("score function", sf, "C3")):
            for ax, col in zip(axes, ("bias", "variance"), strict=True):
                y = np.maximum(frame[col].values, 1e-12)
                err = [y - np.maximum(frame[col + "_lo"].values, 1e-12),
                       np.maximum(frame[col + "_hi"].values, 1e-12) - y]
                ax.errorbar(frame.index, y, yerr=err, marker="o", color=color, label=est,
                            capsize=2)
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xlabel("σ")
                ax.set_ylabel(f"{col} of the G gradient")
                ax.legend(fontsize=8)
        axes[0].set_title("bias against the σ = 0 gradient")
        axes[1].set_title("variance (trace)")
        fig.tight_layout()
        return fig, ("gaussian1d at initialisation, z fixed: bias (left) and variance (right) "
                     "of the smoothed gradient and of the score-function estimator of the same "
                     "objective, against σ, with 95% intervals; the bias floor is drawn at "
                     "1e-12.")
