"""Does E[∇f(x + σε)] approach ∇f(x) as σ → 0, at what rate, and at what variance cost
compared with the score-function form? (Goodfellow et al., 2014, eq. 1.)

Theory, for a smooth cost ``f`` and ``x = μ + σε``, ``ε ~ N(0, 1)``:

- smoothing bias: ``E[f'(μ + σε)] = f'(μ) + σ²f'''(μ)/2 + O(σ⁴)``, so the bias of
  Goodfellow's smoothed gradient against the σ = 0 one scales as ``σ²`` (slope +2 on
  log–log axes);
- score function of the same smoothed objective, per draw ``(f(x) − b)·ε/σ``:
  * no baseline (``b = 0``): ``≈ f(μ)·ε/σ``, variance ``∝ σ⁻²`` (slope −2);
  * a per-point leave-one-out baseline, two or more draws at the *same* z, each draw's
    ``b`` the mean cost of the others (RLOO, Kool et al., 2019): ``f(x₁) − f(x₂) ≈
    σf'(μ)(ε₁ − ε₂)`` cancels the ``1/σ`` and the variance is ``O(1)`` (slope 0);
  * a batch leave-one-out baseline, one draw per z and ``b`` the mean cost of the *other
    z rows* (``baseline="mean", samples=1``): ``b`` misses each row's own ``f(μ_i)`` by an
    ``O(1)`` amount, so the slope is −2 as σ → 0 and bends towards 0 once σ is large
    enough for the noise to dominate that offset.

Experiment: ``gaussian1d`` at initialisation (same G, frozen D), replicate gradient
statistics (:func:`gangrad.measure.gradient_stats`) of smoothing and of the three
score-function baselines over a log-spaced σ grid, twice:

- **z held fixed** (one z batch, common random numbers): only the estimator's own noise
  ε varies, which isolates the σ-dependence. The smoothing gradient's variance is then
  ε's contribution alone, ``≈ σ²·‖E[∂²f·∂G]‖²``-sized, which vanishes as ``σ²``: a ratio
  of another variance to it grows without bound as σ → 0 and says nothing about
  training.
- **z resampled per replicate** (``fresh_z``; the total variance of a minibatch gradient,
  what training sees): the smoothing variance tends to the σ = 0 (pathwise) minibatch
  variance, which does not vanish, so the ratio of the score function's variance to it
  is the variance cost of the score-function form at that σ. The pathwise gradient is
  measured the same way as the σ = 0 floor.

The smoothing bias is also computed exactly, by Gauss–Hermite quadrature over ε on the
fixed z batch, so its slope is free of Monte Carlo noise.

Analysis (z fixed): local slopes ``d log y / d log σ`` between neighbouring σ. The
asymptotic (σ → 0) range starts at the smallest σ and extends while each local slope stays
within ``RANGE_TOLERANCE`` (or 1.96 standard errors of the difference, if larger) of the
previous one and of the first; exponents are fitted only over that range. Each fitted
exponent agrees with theory when its 95% interval lies within ``theory ± TOLERANCE``,
disagrees when it lies outside, and is undetermined otherwise; the outcome agrees when all
four do. Variance ratios (z resampled) at the smallest σ carry a 95% interval on the log
scale, from each variance's own interval (:func:`variance_ratio`).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
import torch

from gangrad.plotting import new_figure
from gangrad.questions._base import AbstractQuestion, Verdict

TOLERANCE = 0.1  # in exponent units: a fitted exponent this close to theory agrees
RANGE_TOLERANCE = 0.01  # local slopes this close (or within sampling error) agree
Z95 = scipy.stats.norm.ppf(0.975)
PATHWISE = "pathwise (σ = 0)"

#: label -> (estimator spec, quantity, theory exponent as σ → 0)
ARMS: dict[str, tuple[tuple[str, dict[str, Any]], str, float]] = {
    "smoothing": (("smoothing", {}), "bias", 2.0),
    "score function, no baseline": (("score_function", {"baseline": "none"}), "variance",
                                    -2.0),
    "score function, batch leave-one-out (other z rows)": (
        ("score_function", {"baseline": "mean", "samples": 1}), "variance", -2.0),
    "score function, per-point leave-one-out (2 draws per z)": (
        ("score_function", {"baseline": "mean", "samples": 2}), "variance", 0.0),
}


def local_slopes(sigma, value, value_lo=None, value_hi=None) -> pd.DataFrame:
    """``d log value / d log σ`` between neighbouring σ (sorted), at their geometric
    midpoint, with a standard error from the values' 95% intervals (0 without them)."""
    s, v = np.log(np.asarray(sigma, float)), np.log(np.asarray(value, float))
    se = np.zeros_like(v)
    if value_lo is not None:
        lo = np.log(np.maximum(np.asarray(value_lo, float), 1e-300))
        se = (np.log(np.asarray(value_hi, float)) - lo) / (2 * Z95)
    ds = np.diff(s)
    return pd.DataFrame({"sigma_lo": np.exp(s[:-1]), "sigma_hi": np.exp(s[1:]),
                         "sigma_mid": np.exp(s[:-1] + ds / 2), "slope": np.diff(v) / ds,
                         "slope_se": np.hypot(se[:-1], se[1:]) / ds})


def asymptotic_range(slopes: pd.DataFrame, tolerance: float = RANGE_TOLERANCE) -> int:
    """How many local slopes, from the smallest σ up, form the σ → 0 regime: each within
    ``tolerance`` (or 1.96 standard errors of the difference, if larger) of the previous
    one and of the first."""
    s, se = slopes["slope"].to_numpy(), slopes["slope_se"].to_numpy()

    def close(i: int, j: int) -> bool:
        return abs(s[i] - s[j]) <= max(tolerance, Z95 * math.hypot(se[i], se[j]))

    n = 1
    while n < len(s) and close(n, n - 1) and close(n, 0):
        n += 1
    return n


def fit_exponent(sigma, value, value_lo=None, value_hi=None) -> tuple[float, float, float]:
    """Exponent ``q`` of ``value ∝ σ^q`` by least squares on log–log axes, with a 95%
    interval: the larger of the regression's and the one propagated from the end points'
    intervals (each value's own sampling error)."""
    ls, lv = np.log(np.asarray(sigma, float)), np.log(np.asarray(value, float))
    fit = scipy.stats.linregress(ls, lv)
    half = scipy.stats.t.ppf(0.975, len(ls) - 2) * fit.stderr if len(ls) > 2 else 0.0
    if value_lo is not None:
        end = local_slopes(np.asarray(sigma)[[0, -1]], np.asarray(value)[[0, -1]],
                           np.asarray(value_lo)[[0, -1]], np.asarray(value_hi)[[0, -1]])
        half = max(half, Z95 * float(end["slope_se"].iloc[0]))
    return float(fit.slope), float(fit.slope - half), float(fit.slope + half)


def judge(exponent: tuple[float, float, float], theory: float,
          tolerance: float = TOLERANCE) -> str:
    """``agrees`` (the interval lies within theory ± tolerance), ``disagrees`` (outside
    it) or ``undetermined``."""
    _, lo, hi = exponent
    if theory - tolerance <= lo and hi <= theory + tolerance:
        return "agrees"
    if lo > theory + tolerance or hi < theory - tolerance:
        return "disagrees"
    return "undetermined"


def exact_smoothing_bias(task, G, D, z: torch.Tensor, sigmas, degree: int = 64
                         ) -> np.ndarray:
    """``‖∇_θ mean_i E_ε f(G(z_i) + σε) − ∇_θ mean_i f(G(z_i))‖`` for each σ, in float64,
    with the expectation over ε by Gauss–Hermite quadrature (1-D space)."""
    from gangrad.exact import gauss_hermite
    from gangrad.losses import generator_loss

    G64, D64 = copy.deepcopy(G).double(), copy.deepcopy(D).double()
    D64.requires_grad_(False)
    f = generator_loss("nonsaturating", D64)
    eps, w = gauss_hermite(degree)
    eps, w = eps.double(), w.double()
    params = list(G64.parameters())

    def grad(sigma: float) -> torch.Tensor:
        x = G64(z.double())  # B x 1
        xs = x[:, None, :] + sigma * eps[None, :, None]  # B x degree x 1
        loss = (f(xs.reshape(-1, 1)).reshape(x.shape[0], -1) * w).sum(1).mean()
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])

    g0 = grad(0.0)
    return np.array([float((grad(float(s)) - g0).norm()) for s in sigmas])


def _two(v: float) -> str:
    """``v`` to two decimals, without a negative zero."""
    return f"{v:.2f}".replace("-0.00", "0.00")


def _regime(frame: pd.DataFrame, quantity: str) -> dict[str, Any]:
    """Local slopes, the asymptotic range and the exponent fitted over it."""
    lo = frame.get(f"{quantity}_lo")
    hi = frame.get(f"{quantity}_hi")
    sl = local_slopes(frame["sigma"], frame[quantity], lo, hi)
    n = asymptotic_range(sl)
    pts = frame.iloc[:n + 1]
    exp = fit_exponent(pts["sigma"], pts[quantity], None if lo is None else pts[f"{quantity}_lo"],
                       None if hi is None else pts[f"{quantity}_hi"])
    return {"local_slopes": [round(float(v), 3) for v in sl["slope"]],
            "local_slope_se": [round(float(v), 3) for v in sl["slope_se"]],
            "range_up_to_sigma": float(pts["sigma"].iloc[-1]), "range_points": n + 1,
            "exponent": list(exp), "largest_sigma_slope": float(sl["slope"].iloc[-1])}


def variance_ratio(a: dict[str, float], b: dict[str, float]) -> list[float]:
    """``[a/b, lo, hi]`` for two variances ``{"variance", "variance_lo", "variance_hi"}``:
    a 95% interval on the log scale, each log-variance's standard error read from its own
    95% interval (delta method), the two treated as independent. Estimates that share z
    draws are positively correlated, and the interval is then conservative."""
    se = [(math.log(v["variance_hi"]) - math.log(max(v["variance_lo"], 1e-300))) / (2 * Z95)
          for v in (a, b)]
    log_ratio = math.log(a["variance"]) - math.log(b["variance"])
    half = Z95 * math.hypot(*se)
    return [math.exp(log_ratio), math.exp(log_ratio - half), math.exp(log_ratio + half)]


def _variances_at(data: pd.DataFrame, sigma: float) -> dict[str, dict[str, dict[str, float]]]:
    """``{z: {arm: {variance, variance_lo, variance_hi, f_evals}}}`` at ``sigma`` (and the
    pathwise floor, measured at σ = 0)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for z, zdf in data.groupby("z", sort=False):
        rows = zdf[(zdf["sigma"] == sigma) | (zdf["arm"] == PATHWISE)]
        out[str(z)] = {r["arm"]: {k: float(r[k]) for k in ("variance", "variance_lo",
                                                           "variance_hi", "f_evals")}
                       for _, r in rows.iterrows()}
    return out


def _var(v: dict[str, float]) -> str:
    return f"{v['variance']:.3g} [95% CI {v['variance_lo']:.3g}, {v['variance_hi']:.3g}]"


def _evaluations(v: dict[str, float]) -> str:
    n = v["f_evals"]
    return f"{n:g} f-evaluation{'' if n == 1 else 's'}"


def _times(r: list[float]) -> str:
    return f"{r[0]:.3g}× [95% CI {r[1]:.3g}, {r[2]:.3g}]"


class SmoothingLimit(AbstractQuestion):
    name = "smoothing-limit"
    question = ("Does the smoothed gradient E[∇f(x+σε)] approach ∇f(x) as σ → 0, at what "
                "rate, and at what variance cost compared with the score-function form?")
    origin = ("What does Goodfellow's σ → 0 identity mean? (Cross Validated 433844; "
              "Goodfellow et al., 2014, eq. 1)")
    quick = {"sigma_min": 1e-4, "sigmas": 9, "replicates": 4000}
    full = {"sigma_min": 1e-5, "sigmas": 21, "replicates": 20_000}

    def experiment(self, settings: dict[str, Any], seed: int) -> pd.DataFrame:
        from gangrad import tasks
        from gangrad.measure import gradient_stats

        task = tasks.create("gaussian1d")
        sigmas = np.logspace(math.log10(settings["sigma_min"]), 0, settings["sigmas"])
        torch.manual_seed(seed)
        G, D = task.make_generator(task.space.shape), task.make_discriminator()
        batch = 64

        def measure(specs, labels, sigma, fresh):
            df = gradient_stats(task, specs, G=copy.deepcopy(G), D=copy.deepcopy(D),
                                replicates=settings["replicates"], batch_size=batch,
                                seed=seed, timing=False, fresh_z=fresh)
            df = df[df["layer"] == "total"].copy()
            df.insert(0, "arm", labels)
            df.insert(1, "sigma", sigma)
            df.insert(2, "z", "resampled" if fresh else "fixed")
            return df

        frames = []
        for fresh in (False, True):
            for s in sigmas:
                specs = [(key, {**hyper, "sigma": float(s)})
                         for (key, hyper), _, _ in ARMS.values()]
                frames.append(measure(specs, list(ARMS), float(s), fresh))
        frames.append(measure([("pathwise", {})], [PATHWISE], 0.0, True))
        out = pd.concat(frames, ignore_index=True)
        # the z batch gradient_stats holds fixed (its seed + 1), for the exact bias
        z = task.sample_latent(batch, generator=torch.Generator().manual_seed(seed + 1))
        exact = dict(zip(sigmas, exact_smoothing_bias(task, G, D, z, sigmas), strict=True))
        fixed_smoothing = (out["arm"] == "smoothing") & (out["z"] == "fixed")
        out["exact_bias"] = np.where(fixed_smoothing, out["sigma"].map(exact), np.nan)
        return out.sort_values(["z", "arm", "sigma"], kind="stable").reset_index(drop=True)

    def table(self, data: pd.DataFrame) -> pd.DataFrame:
        return data[["z", "arm", "sigma", "estimator", "exact_bias", "bias", "bias_lo",
                     "bias_hi", "variance", "variance_lo", "variance_hi", "f_evals", "cosine",
                     "snr"]]

    def analyse(self, data: pd.DataFrame, settings: dict[str, Any]) -> Verdict:
        fixed = data[data["z"] == "fixed"]
        numbers: dict[str, Any] = {"sigmas": sorted(map(float, fixed["sigma"].unique())),
                                   "tolerance": TOLERANCE}
        outcomes, parts = {}, []
        for arm, (_, quantity, theory) in ARMS.items():
            frame = fixed[fixed["arm"] == arm].sort_values("sigma")
            if quantity == "bias":
                frame = frame.assign(bias=frame["exact_bias"]).drop(
                    columns=["bias_lo", "bias_hi"])
            r = _regime(frame, quantity)
            r.update({"quantity": quantity, "theory": theory,
                      "outcome": judge(r["exponent"], theory)})
            numbers[arm] = r
            outcomes[arm] = r["outcome"]
            q, lo, hi = (_two(v) for v in r["exponent"])
            regime = (f"σ^{q} [95% CI {lo}, {hi}] (theory σ^{theory:g}) for "
                      f"σ ≤ {r['range_up_to_sigma']:.2g}")
            if r["range_points"] < len(frame):
                regime += (f", bending above it to a local slope of "
                           f"{r['largest_sigma_slope']:.2f} at σ = 1")
            else:
                regime += " (the whole grid)"
            parts.append((arm, regime))
        smallest = numbers["sigmas"][0]
        sm = fixed[fixed["arm"] == "smoothing"].set_index("sigma")
        numbers["relative_bias_at_min"] = float(sm.loc[smallest, "exact_bias"]
                                                / sm["reference_norm"].iloc[0])
        variances = _variances_at(data, smallest)
        numbers["variances_at_min_sigma"] = variances
        ratios = {arm: variance_ratio(variances["resampled"][arm],
                                      variances["resampled"]["smoothing"])
                  for arm in ARMS if arm != "smoothing"}
        numbers["variance_ratio_over_smoothing_at_min_z_resampled"] = ratios
        numbers["variance_ratio_no_baseline_over_smoothing_at_min_z_fixed"] = variance_ratio(
            variances["fixed"]["score function, no baseline"], variances["fixed"]["smoothing"])
        floor = variances["resampled"][PATHWISE]
        numbers["smoothing_over_pathwise_at_min_z_resampled"] = variance_ratio(
            variances["resampled"]["smoothing"], floor)
        values = list(outcomes.values())
        outcome = ("disagrees" if "disagrees" in values else
                   "agrees" if all(o == "agrees" for o in values) else "undetermined")
        (_, bias), *sf = parts
        none = ratios["score function, no baseline"]
        rloo = ratios["score function, per-point leave-one-out (2 draws per z)"]
        q_bias = numbers["smoothing"]["exponent"][0]
        answer = (
            ("Yes" if numbers["smoothing"]["outcome"] == "agrees" else
             "Yes, though not at the rate theory gives" if q_bias > 0 else "No")
            + f": the smoothed gradient's bias against ∇f shrinks as σ^{_two(q_bias)} "
            f"(theory σ²); at σ = {smallest:g}, with z resampled as in training, the "
            f"score-function form of the same objective has {_times(none)} the smoothed "
            f"gradient's variance without a baseline and {_times(rloo)} with two draws per "
            f"z and a leave-one-out baseline.")
        sm_fixed, sm_fresh = (variances[z]["smoothing"] for z in ("fixed", "resampled"))
        sf_fixed = variances["fixed"]["score function, no baseline"]
        lines = [
            f"- **Smoothing bias** (exact, by quadrature on a fixed z batch): {bias}; at "
            f"σ = {smallest:g} it is {numbers['relative_bias_at_min']:.2g} of ‖∇f‖.",
            "- **Score-function variance** (z fixed, the estimator's own noise): "
            + "; ".join(f"{arm.removeprefix('score function, ')}: ∝ {reg}"
                        for arm, reg in sf) + ".",
            f"- **Variance cost at σ = {smallest:g}, z resampled per replicate** (the "
            f"minibatch gradient training uses; each ratio's 95% CI from both variances' "
            f"intervals): smoothing {_var(sm_fresh)}, "
            f"{_times(numbers['smoothing_over_pathwise_at_min_z_resampled'])} the "
            f"σ = 0 pathwise variance {_var(floor)}; "
            + "; ".join(f"{arm.removeprefix('score function, ')} "
                        f"{_var(variances['resampled'][arm])}, {_times(r)} the "
                        f"smoothing variance ({_evaluations(variances['resampled'][arm])} "
                        f"per row)" for arm, r in ratios.items()) + ".",
            f"- **Why not compare with z fixed**: with z held fixed the smoothing variance "
            f"holds only ε's contribution, which shrinks as σ² ({_var(sm_fixed)} at "
            f"σ = {smallest:g}), while the score function's holds its 1/σ² noise "
            f"({_var(sf_fixed)}); their ratio, "
            f"{numbers['variance_ratio_no_baseline_over_smoothing_at_min_z_fixed'][0]:.2g}, "
            f"grows as σ⁻⁴ and measures no cost training pays.",
            f"- Asymptotic ranges: local slopes within {RANGE_TOLERANCE} (or their sampling "
            f"error) of each other from the smallest σ up; agreement: the exponent's interval "
            f"within theory ± {TOLERANCE}. Theory "
            + ("agrees with every regime." if outcome == "agrees" else
               "disagrees with: " + ", ".join(a for a, o in outcomes.items()
                                              if o == "disagrees") + "."
               if outcome == "disagrees" else
               "is not yet resolved for: " + ", ".join(
                   a for a, o in outcomes.items() if o != "agrees")
               + " (use --full for more replicates)."),
        ]
        changes = (
            "A cost f that is not smooth where G puts its samples (a D with kinks, or one "
            "that quantizes its input): E[∇f(x + σε)] is then no longer ∇f(x) + O(σ²), and "
            "the σ² rate goes. Measuring the bias by Monte Carlo in float32 instead of by "
            "quadrature in float64: at small σ the bias falls below the replicates' noise "
            "and round-off (the measured points in the figure), so only large σ would show "
            "the rate. A score function with two or more draws per z and a leave-one-out "
            "baseline removes the 1/σ² growth of its variance, at twice the f-evaluations.")
        return Verdict("\n".join(lines), numbers, outcome, answer=answer,
                       convergence={"rule": "not training-based: gradient statistics of "
                                    "a fixed G and D at initialisation (replicate "
                                    "estimates, exact quadrature for the bias); nothing "
                                    "is trained"},
                       changes=changes)

    def figure(self, data: pd.DataFrame, settings: dict[str, Any]):
        fig, axes = new_figure(1, 3, width=14, height=4.0)
        colors = dict(zip(ARMS, ("C0", "C3", "C1", "C2"), strict=True))
        ax = axes[0]
        for arm in ARMS:
            for z, style in (("fixed", "-"), ("resampled", "--")):
                f = data[(data["arm"] == arm) & (data["z"] == z)].sort_values("sigma")
                y = f["variance"].to_numpy()
                ax.errorbar(f["sigma"], y, yerr=[y - f["variance_lo"], f["variance_hi"] - y],
                            marker="o" if z == "fixed" else "^", ms=3, capsize=2, ls=style,
                            color=colors[arm], label=arm if z == "fixed" else None)
        floor = data[data["arm"] == PATHWISE]["variance"]
        if len(floor):
            ax.axhline(float(floor.iloc[0]), color="k", lw=0.8, ls=":",
                       label="pathwise (σ = 0), z resampled")
        ax.set(xscale="log", yscale="log", xlabel="σ", ylabel="variance (trace) of the G gradient",
               title="variance (solid: z fixed; dashed: z resampled)")
        ax.legend(fontsize=7)
        ax = axes[1]
        for arm, (_, quantity, theory) in ARMS.items():
            f = data[(data["arm"] == arm) & (data["z"] == "fixed")].sort_values("sigma")
            if quantity == "bias":
                sl = local_slopes(f["sigma"], f["exact_bias"])
            else:
                sl = local_slopes(f["sigma"], f["variance"], f["variance_lo"],
                                  f["variance_hi"])
            ax.errorbar(sl["sigma_mid"], sl["slope"], yerr=Z95 * sl["slope_se"], marker="o",
                        ms=3, capsize=2, color=colors[arm])
            ax.axhline(theory, color=colors[arm], ls=":", lw=0.8)
        ax.set(xscale="log", xlabel="σ (midpoint)", ylabel="local slope d log y / d log σ",
               title="local slopes (dotted: theory as σ → 0)")
        ax = axes[2]
        f = data[(data["arm"] == "smoothing") & (data["z"] == "fixed")].sort_values("sigma")
        ax.plot(f["sigma"], f["exact_bias"], "-", color="C0", label="exact (quadrature)")
        y = np.maximum(f["bias"].to_numpy(), 1e-12)
        ax.errorbar(f["sigma"], y, yerr=[y - np.maximum(f["bias_lo"], 1e-12),
                                         np.maximum(f["bias_hi"], 1e-12) - y],
                    fmt="o", ms=3, capsize=2, color="C0", alpha=0.6, label="measured")
        ax.set(xscale="log", yscale="log", xlabel="σ", ylabel="‖bias‖ against the σ = 0 gradient",
               title="smoothing bias")
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig, ("gaussian1d at initialisation. Left: variance of each estimator's G "
                     "gradient against σ (95% intervals), with z held fixed (solid: the "
                     "estimator's own noise) and resampled per replicate (dashed: a "
                     "minibatch gradient's total variance; dotted: pathwise at σ = 0). "
                     "Middle, z fixed: local "
                     "slopes between neighbouring σ (smoothing: of the exact bias; others: "
                     "of the variance), dotted lines at the σ → 0 theory (+2, −2, −2, 0). "
                     "Right: smoothing bias, exact and measured (floor 1e-12).")
