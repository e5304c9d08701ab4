r"""The statistics of a replicate matrix, and the one list that declares them.

:data:`STATISTICS` names every column a gradient-statistics row carries beyond its
identity; the results store, the report's tables and figures and the ``grad-stats`` view
all read it, so a new statistic is one entry here and its computation in
:func:`group_stats` (or the engine, for cost).

Method of :func:`group_stats`, from replicates ``g_r`` (R x P, mean μ, covariance Σ) and a
reference ``ref`` for ``g*``, exact or Monte Carlo (per-coordinate variance ``v``), or the
pooled mean of each replicate's own exact reference on fresh z batches (``paired_ref``).
Every interval is 95% and stays inside its statistic's range; each was checked for
coverage on synthetic replicates with a known truth (``tests/test_calibration.py``:
0.93–0.97 across SNR 0.1–3, R 64–1,024, exact, Monte Carlo and paired references).

- ``variance`` = ``tr Σ̂`` (unbiased); a chi-square interval with Satterthwaite's degrees
  of freedom ``ν = 2 tr Σ̂² / Var̂(tr Σ̂)``, ``Var̂`` from the per-replicate squared
  deviations and at least its normal-theory value ``2 tr(Σ²)/(R − 1)``.
- ``bias`` = ``‖μ − g*‖`` without its noise floor: ``d = ḡ − ref ~ N(δ, K)``,
  ``K = Σ/R + diag(v)``, ``bias² = ‖d‖² − tr K``. Its interval inverts the law of
  ``‖d‖² = ‖δ‖² + 2δᵀe + ‖e‖²``: ``‖e‖²`` a scaled chi-square matching ``tr K`` and
  ``tr K²`` (Satterthwaite–Patnaik), ``2δᵀe`` normal with variance ``4δᵀKδ``. On fresh z
  batches ``d`` is taken on ``g_r − g*_r``, where the z-noise cancels.
- ``mse`` = ``tr Σ + bias²`` (``E‖g − g*‖²``): the sum of the two estimates, a normal
  interval from their variances (``tr Σ̂`` and ``ḡ`` are independent for normal replicates).
- ``snr`` = ``‖μ‖/√tr Σ`` with ``‖μ‖²`` without its noise floor (``‖ḡ‖² − tr Σ̂/R``): the
  interval of ``‖μ‖²`` as the bias's, divided by ``tr Σ̂`` whose uncertainty is added in
  quadrature (delta method).
- ``cosine`` = ``E cos(g, g*)``: the per-replicate cosines against the reference with its
  norm taken without its noise (``√(‖ref‖² − Σv)``); a Student-t interval, plus the
  reference's noise by the delta method, clipped to [−1, 1]. On fresh z batches each
  replicate is compared with its own batch's exact gradient ``g*_r``.
- ``sign_agreement`` = the expected fraction of coordinates whose sign matches ``g*``'s
  (``g*_r``'s on fresh z batches); with a Monte Carlo reference, over the coordinates whose
  reference sign is resolved (``|ref_j| > z_{1 − 0.025/P}·√v_j``, Bonferroni). A
  Student-t interval clipped to [0, 1], Wilson's where every replicate gave the same
  fraction without being equal.

A bias of exactly 0 sits on the boundary: there the interval holds 0 with probability
0.975. Heavy-tailed replicates (Student-t, 5 degrees of freedom, R = 64) bring the
variance interval's coverage to about 0.91.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.special
import scipy.stats
import torch

__all__ = ["STATISTICS", "Statistic", "group_stats", "statistic", "stored_names",
           "timing_names"]

Z95 = 1.959964
_GRID = 256  # chi-square quantiles for the law of a squared norm


@dataclass(frozen=True)
class Statistic:
    """One column of a gradient-statistics row.

    ``interval``: it has ``_lo``/``_hi`` columns; ``timing``: it measures the machine, not
    the estimator (left out of reproducibility checks); ``summary``: shown in tables and
    the ``grad-stats`` view; ``log``: drawn on a log axis; ``low``/``high``: its range,
    which intervals across seeds respect.
    """

    name: str
    title: str
    interval: bool = False
    timing: bool = False
    summary: bool = True
    log: bool = False
    low: float = 0.0
    high: float = math.inf


STATISTICS: tuple[Statistic, ...] = (
    Statistic("bias", "bias ‖E g − g*‖", interval=True, log=True),
    Statistic("variance", "variance (trace)", interval=True, log=True),
    Statistic("mse", "MSE", interval=True, log=True),
    Statistic("snr", "SNR ‖E g‖/√tr Σ", interval=True, log=True),
    Statistic("cosine", "cosine to reference", interval=True, low=-1.0, high=1.0),
    Statistic("sign_agreement", "sign agreement", interval=True, high=1.0),
    Statistic("reference_se", "reference standard error", summary=False),
    Statistic("reference_norm", "‖g*‖", summary=False),
    Statistic("time_ms", "time per estimate (ms, median)", timing=True),
    Statistic("time_iqr_ms", "time IQR (ms)", timing=True, summary=False),
    Statistic("peak_mem_mb", "peak memory (MB)", timing=True),
    Statistic("f_evals", "f evaluations per row"),
    Statistic("var_x_time", "variance × time (lower is better)", timing=True, log=True),
    Statistic("var_x_evals", "variance × f evaluations (lower is better)", log=True),
)


def statistic(name: str) -> Statistic:
    """The declared statistic called ``name``."""
    for s in STATISTICS:
        if s.name == name:
            return s
    raise KeyError(f"no statistic {name!r}; declared: {', '.join(s.name for s in STATISTICS)}")


def stored_names() -> tuple[str, ...]:
    """Every stored column: each statistic, followed by its interval where it has one."""
    return tuple(n for s in STATISTICS
                 for n in ((s.name, s.name + "_lo", s.name + "_hi") if s.interval
                           else (s.name,)))


def timing_names() -> tuple[str, ...]:
    """The statistics that measure the machine rather than the estimator."""
    return tuple(s.name for s in STATISTICS if s.timing)


def _normal(m: float, var: float, lo: float = -math.inf, hi: float = math.inf,
            dof: int | None = None) -> tuple[float, float]:
    """``m ± q·√var`` (``q`` the normal quantile, or Student's with ``dof``), kept inside
    ``[lo, hi]``."""
    q = Z95 if dof is None else float(scipy.stats.t.ppf(0.975, dof))
    half = q * math.sqrt(max(var, 0.0))
    return max(m - half, lo), min(m + half, hi)


@dataclass
class _Moments:
    """Replicates ``g (R, P)``: mean, centred rows, tr Σ̂, tr(Σ²) and Var(tr Σ̂)."""

    R: int
    mean: torch.Tensor  # P
    centred: torch.Tensor  # R x P
    trace: float  # tr Σ̂, unbiased
    trace_sq: float  # tr(Σ²), unbiased under normality
    trace_var: float  # Var(tr Σ̂), from the per-replicate squared deviations

    @classmethod
    def of(cls, g: torch.Tensor) -> _Moments:
        R = g.shape[0]
        mean = g.mean(0)
        centred = g - mean
        dev2 = centred.pow(2).sum(1) * (R / (R - 1))  # E dev2 = tr Σ
        trace = float(dev2.mean())
        tr_s2 = _trace_sigma_squared(centred)  # tr(S²) of the sample covariance S
        trace_sq = max((R - 1) ** 2 / ((R - 2) * (R + 1)) * (tr_s2 - trace**2 / (R - 1)), 0.0) \
            if R > 2 else tr_s2
        # Var(tr Σ̂): from the spread of the squared deviations (robust to heavy tails),
        # and at least its normal-theory value 2 tr(Σ²)/(R − 1)
        trace_var = max(float(dev2.var()) / R, 2 * trace_sq / (R - 1)) if R > 1 else 0.0
        return cls(R, mean, centred, trace, trace_sq, trace_var)

    def quad(self, d: torch.Tensor) -> float:
        """``dᵀ Σ̂ d``."""
        return float((self.centred @ d).pow(2).sum()) / (self.R - 1)


@dataclass
class _SquaredNorm:
    """``θ = ‖δ‖²`` from ``d ~ N(δ, K)``, ``K = Σ/R + diag(ref_var)``: the observed
    ``‖d‖²``, ``tr K``, ``tr K²`` and ``dᵀKd``."""

    observed: float
    trK: float
    trK2: float
    dKd: float
    P: int

    @classmethod
    def of(cls, d: torch.Tensor, m: _Moments, ref_var: torch.Tensor | None,
           diag: torch.Tensor) -> _SquaredNorm:
        R = m.R
        v = torch.zeros_like(d) if ref_var is None else ref_var
        return cls(float(d.pow(2).sum()), m.trace / R + float(v.sum()),
                   m.trace_sq / R**2 + 2 * float((diag * v).sum()) / R + float(v.pow(2).sum()),
                   m.quad(d) / R + float((d.pow(2) * v).sum()), len(d))

    @property
    def value(self) -> float:
        """``‖d‖² − tr K``: unbiased for θ."""
        return self.observed - self.trK

    @property
    def variance(self) -> float:
        """``Var ‖d‖² = 4δᵀKδ + 2 tr K²``, with ``δᵀKδ`` from ``dᵀKd − tr K²`` (≥ 0)."""
        return 4 * max(self.dKd - self.trK2, 0.0) + 2 * self.trK2

    def interval(self) -> tuple[float, float]:
        """A 95% interval for θ by inverting the law of ``‖d‖²``, written as
        ``θ + 2δᵀe + ‖e‖²`` (``e ~ N(0, K)``): ``‖e‖²`` a scaled chi-square with the first
        two moments of ``eᵀe`` (Satterthwaite), ``2δᵀe`` a normal of variance ``4ρθ``,
        ``ρ = δᵀKδ/‖δ‖²`` from ``dᵀKd``, at least K's mean eigenvalue ``tr K/P`` (a
        direction the data do not resolve counts as an average one)."""
        if self.trK2 <= 0:
            value = max(self.value, 0.0)
            return value, value
        c, k = self.trK2 / self.trK, self.trK**2 / self.trK2
        chi = c * scipy.stats.chi2.ppf((np.arange(_GRID) + 0.5) / _GRID, k)
        theta = max(self.value, 0.0)
        rho = max(self.dKd - self.trK2, 0.0) / theta if theta > 0 else 0.0
        rho = min(max(rho, self.trK / self.P), self.trK)
        obs = self.observed

        def cdf(t: float) -> float:
            s = 2 * math.sqrt(rho * t)
            if s == 0:
                return float(np.mean(t + chi <= obs))
            return float(np.mean(scipy.special.ndtr((obs - t - chi) / s)))

        def solve(p: float) -> float:
            if cdf(0.0) < p:
                return 0.0
            top = max(obs, self.trK)
            while cdf(top) > p:
                top *= 2
            return scipy.optimize.brentq(lambda t: cdf(t) - p, 0.0, top, xtol=1e-12 * top)

        return solve(0.975), solve(0.025)


def _proportion(values: torch.Tensor, same: bool) -> tuple[float, float, float]:
    """A proportion averaged over replicates, in ``[0, 1]``: a normal interval, or, where
    every replicate gave the same value without being the same, Wilson's (``n = R``)."""
    m, R = float(values.mean()), len(values)
    if same:
        return m, m, m
    var = float(values.var()) / R
    if var > 0:
        return (m, *_normal(m, var, 0.0, 1.0, dof=R - 1))
    centre = (m + Z95**2 / (2 * R)) / (1 + Z95**2 / R)
    half = Z95 / (1 + Z95**2 / R) * math.sqrt(m * (1 - m) / R + Z95**2 / (4 * R**2))
    return m, max(centre - half, 0.0), min(centre + half, 1.0)


def _trace_sigma_squared(centred: torch.Tensor, limit: int = 4096) -> float:
    """``tr(S²)`` of centred replicates ``(R, P)`` (``S`` the sample covariance) through the
    smaller Gram matrix (``CᵀC`` or ``CCᵀ`` have the same squared Frobenius norm); past
    ``limit`` in both dimensions, from ``limit`` replicates spread evenly over the R."""
    R, P = centred.shape
    if min(R, P) > limit:
        centred = centred[torch.linspace(0, R - 1, limit).long()]
        R = limit
    gram = centred.T @ centred if P <= R else centred @ centred.T
    return float(gram.pow(2).sum()) / (R - 1) ** 2


def group_stats(g: torch.Tensor, ref: torch.Tensor, ref_se2: float = 0.0, *,
                ref_var: torch.Tensor | None = None, paired_ref: torch.Tensor | None = None,
                n_resamples: int | None = None, seed: int | None = None) -> dict[str, float]:
    """The statistics of the module docstring for replicates ``g (R, P)`` against the
    reference ``ref (P,)``, whose squared standard error summed over coordinates is
    ``ref_se2`` (0: exact).

    ``ref_var (P,)``: the reference's squared standard error per coordinate (summing to
    ``ref_se2``; spread evenly when not given). ``paired_ref (R, P)``: each replicate's
    own exact reference, for replicates on fresh z batches whose reference is their
    pooled mean (``ref``): the bias is then measured on ``g − paired_ref``, where the
    z-noise cancels. ``n_resamples`` and ``seed`` are accepted for callers of earlier
    versions, which bootstrapped the SNR interval; every interval is now analytic.
    """
    g = g.detach().double().cpu()
    ref = ref.detach().double().cpu()
    R, P = g.shape
    if paired_ref is not None:
        paired_ref = paired_ref.detach().double().cpu()
    if ref_var is not None:
        ref_var = ref_var.detach().double().cpu().reshape(P)
    elif paired_ref is not None:  # the pooled reference's own noise
        ref_var = paired_ref.var(0) / R
    elif ref_se2 > 0:
        ref_var = torch.full((P,), ref_se2 / P, dtype=torch.float64)
    m = _Moments.of(g)
    diag = m.centred.pow(2).sum(0) / (R - 1)  # per-coordinate variance, P
    if paired_ref is not None:  # the bias on g − g*_r, where the z-noise cancels
        md = _Moments.of(g - paired_ref)
        sq = _SquaredNorm.of(md.mean, md, None, md.centred.pow(2).sum(0) / (R - 1))
    else:
        sq = _SquaredNorm.of(m.mean - ref, m, ref_var, diag)
    out = {**_variance(m), **_bias(sq), **_snr(m, diag),
           **_cosine(g, ref, ref_var, paired_ref, m.trace == 0),
           **_sign_agreement(g, ref, ref_var, paired_ref, m.trace == 0)}
    # mse = tr Σ + bias²: tr Σ̂ is independent of ḡ for normal replicates
    out["mse"] = m.trace + sq.value
    out["mse_lo"], out["mse_hi"] = _normal(out["mse"], m.trace_var + sq.variance, 0.0)
    return {k: float(out[k]) for k in stored_names() if k in out}


def _variance(m: _Moments) -> dict[str, float]:
    """tr Σ, a chi-square interval with Satterthwaite's degrees of freedom."""
    if m.trace > 0 and m.trace_var > 0:
        nu = 2 * m.trace**2 / m.trace_var
        return {"variance": m.trace,
                "variance_lo": nu * m.trace / scipy.stats.chi2.ppf(0.975, nu),
                "variance_hi": nu * m.trace / scipy.stats.chi2.ppf(0.025, nu)}
    return {"variance": m.trace, "variance_lo": m.trace, "variance_hi": m.trace}


def _bias(sq: _SquaredNorm) -> dict[str, float]:
    """‖E g − g*‖ without its noise floor."""
    lo, hi = sq.interval()
    return {"bias": math.sqrt(max(sq.value, 0.0)), "bias_lo": math.sqrt(lo),
            "bias_hi": math.sqrt(hi)}


def _snr(m: _Moments, diag: torch.Tensor) -> dict[str, float]:
    """‖E g‖/√tr Σ: ‖ḡ‖² without its noise floor (its interval as the bias's), over tr Σ̂,
    whose own uncertainty is added in quadrature (delta method)."""
    if m.trace <= 0:
        return {"snr": math.inf, "snr_lo": math.inf, "snr_hi": math.inf}
    norm2 = _SquaredNorm.of(m.mean, m, None, diag)
    q = norm2.value / m.trace
    n_lo, n_hi = norm2.interval()
    spread = Z95 * max(q, 0.0) * math.sqrt(m.trace_var) / m.trace
    lo = q - math.hypot((norm2.value - n_lo) / m.trace, spread)
    hi = q + math.hypot((n_hi - norm2.value) / m.trace, spread)
    return {"snr": math.sqrt(max(q, 0.0)), "snr_lo": math.sqrt(max(lo, 0.0)),
            "snr_hi": math.sqrt(max(hi, 0.0))}


def _cosine(g: torch.Tensor, ref: torch.Tensor, ref_var: torch.Tensor | None,
            paired_ref: torch.Tensor | None, same: bool) -> dict[str, float]:
    """E cos(g, g*): the reference's norm without its noise, its noise in the interval;
    on fresh z batches against each replicate's own batch's exact gradient."""
    R = g.shape[0]
    norms = g.norm(dim=1).clamp_min(1e-300)
    noise = float(ref_var.sum()) if ref_var is not None else 0.0
    ref_norm = math.sqrt(max(float(ref.pow(2).sum()) - noise, 1e-300))
    if paired_ref is not None:
        cos = torch.nn.functional.cosine_similarity(g, paired_ref, dim=1)
    else:
        cos = (g @ ref) / (norms * ref_norm)
    c = float(cos.mean())
    c_var = float(cos.var()) / R if R > 1 else 0.0
    if ref_var is not None and paired_ref is None:  # delta: ∂c̄/∂ref = (ū − c̄·r̂)/‖g*‖
        unit = (g / norms[:, None]).mean(0)
        w = (unit - c * ref / ref.norm().clamp_min(1e-300)) / ref_norm
        c_var += float((w.pow(2) * ref_var).sum())
    value = max(min(c, 1.0), -1.0)
    exact = ref_var is None or paired_ref is not None
    lo, hi = (value, value) if same and exact else _normal(c, c_var, -1.0, 1.0, dof=R - 1)
    return {"cosine": value, "cosine_lo": lo, "cosine_hi": hi}


def _sign_agreement(g: torch.Tensor, ref: torch.Tensor, ref_var: torch.Tensor | None,
                    paired_ref: torch.Tensor | None, same: bool) -> dict[str, float]:
    """The fraction of coordinates whose sign matches g*'s (each replicate's own g*_r on
    fresh z); with a noisy reference, on the coordinates whose sign it resolves
    (Bonferroni over P)."""
    P = g.shape[1]
    keep = torch.ones(P, dtype=torch.bool)
    if ref_var is not None and paired_ref is None:
        keep = ref.abs() > scipy.stats.norm.ppf(1 - 0.025 / P) * ref_var.sqrt()
    if not keep.any():
        return dict.fromkeys(("sign_agreement", "sign_agreement_lo", "sign_agreement_hi"),
                             math.nan)
    signs = torch.sign(paired_ref if paired_ref is not None else ref.expand_as(g))
    agree = (torch.sign(g[:, keep]) == signs[:, keep]).double().mean(1)
    value, lo, hi = _proportion(agree, same)
    return {"sign_agreement": value, "sign_agreement_lo": lo, "sign_agreement_hi": hi}
