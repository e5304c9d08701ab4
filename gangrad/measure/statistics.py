r"""The statistics of a replicate matrix, and the one list that declares them.

:data:`STATISTICS` names every column a gradient-statistics row carries beyond its
identity; the results store, the report's tables and figures and the ``grad-stats`` view
all read it, so a new statistic is one entry here and its computation in
:func:`group_stats` (or the engine, for cost).

Method of :func:`group_stats`, from replicates ``g_r`` (R x P) and the reference ``g*``:

- ``bias`` = ``‖E g − g*‖``, estimated without its noise floor:
  ``sqrt(max(0, ‖ḡ − g*‖² − tr Σ̂/R − Σ se*²))``;
- ``variance`` = ``tr Σ̂`` (unbiased), ``mse`` = ``mean_r ‖g_r − g*‖²``,
  ``snr`` = ``‖ḡ‖ / sqrt(tr Σ̂)``;
- ``cosine`` = ``mean_r cos(g_r, g*)``, ``sign_agreement`` = mean fraction of
  coordinates whose sign matches ``g*``.

Confidence intervals (95%, ``*_lo``, ``*_hi``): normal intervals from the per-replicate
values for ``variance``, ``mse``, ``cosine`` and ``sign_agreement``; for the squared bias a
normal interval with the delta-method variance ``4 dᵀΣd/R + 2 tr(Σ²)/R²``
(``d = ḡ − g*``; ``tr Σ²`` from the smaller Gram matrix), its square root clipped at 0, so
an unbiased estimator's bias interval reaches 0; percentile bootstrap over replicates
(``scipy.stats.bootstrap``) for ``snr``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.stats
import torch

__all__ = ["STATISTICS", "Statistic", "group_stats", "statistic", "stored_names",
           "timing_names"]

Z95 = 1.959964


@dataclass(frozen=True)
class Statistic:
    """One column of a gradient-statistics row.

    ``interval``: it has ``_lo``/``_hi`` columns; ``timing``: it measures the machine, not
    the estimator (left out of reproducibility checks); ``summary``: shown in tables and
    the ``grad-stats`` view; ``log``: drawn on a log axis.
    """

    name: str
    title: str
    interval: bool = False
    timing: bool = False
    summary: bool = True
    log: bool = False


STATISTICS: tuple[Statistic, ...] = (
    Statistic("bias", "bias ‖E g − g*‖", interval=True, log=True),
    Statistic("variance", "variance (trace)", interval=True, log=True),
    Statistic("mse", "MSE", interval=True, log=True),
    Statistic("snr", "SNR ‖E g‖/√tr Σ", interval=True, log=True),
    Statistic("cosine", "cosine to reference", interval=True),
    Statistic("sign_agreement", "sign agreement", interval=True),
    Statistic("reference_se", "reference standard error", summary=False),
    Statistic("reference_norm", "‖g*‖", summary=False),
    Statistic("time_ms", "time per estimate (ms, median)", timing=True),
    Statistic("time_iqr_ms", "time IQR (ms)", timing=True, summary=False),
    Statistic("peak_mem_mb", "peak memory (MB)", timing=True),
    Statistic("f_evals", "f evaluations per row"),
    Statistic("var_x_time", "variance × time (lower is better)", timing=True, log=True),
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


def _normal_ci(values: torch.Tensor) -> tuple[float, float, float]:
    mean = float(values.mean())
    half = Z95 * float(values.std()) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, mean - half, mean + half


def _bootstrap(g: torch.Tensor, stat_of, n_resamples: int, seed: int) -> tuple[float, float]:
    """Percentile interval of ``stat_of(W @ g, W @ ‖g‖²)`` over replicate resamples."""
    R = g.shape[0]
    sq = g.pow(2).sum(1)

    def stat(idx, axis=-1):
        idx = np.atleast_2d(idx)
        counts = np.zeros(idx.shape, dtype=np.float64)
        np.add.at(counts, (np.arange(idx.shape[0])[:, None], idx), 1.0)
        W = torch.from_numpy(counts / R)
        return stat_of(W @ g, W @ sq).numpy()

    res = scipy.stats.bootstrap((np.arange(R),), stat, vectorized=True, n_resamples=n_resamples,
                                method="percentile", random_state=seed, batch=50)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _trace_sigma_squared(centred: torch.Tensor, limit: int = 4096) -> float:
    """``tr(Σ²)`` of centred replicates ``(R, P)`` through the smaller Gram matrix
    (``CᵀC`` or ``CCᵀ`` have the same squared Frobenius norm); past ``limit`` in both
    dimensions, from ``limit`` replicates spread evenly over the R (an estimate)."""
    R, P = centred.shape
    if min(R, P) > limit:
        centred = centred[torch.linspace(0, R - 1, limit).long()]
        R = limit
    gram = centred.T @ centred if P <= R else centred @ centred.T
    return float(gram.pow(2).sum()) / (R - 1) ** 2


def group_stats(g: torch.Tensor, ref: torch.Tensor, ref_se2: float = 0.0, *,
                n_resamples: int = 200, seed: int = 0) -> dict[str, float]:
    """The statistics of the module docstring for replicates ``g (R, P)`` against the
    reference ``ref (P,)`` whose summed squared standard error is ``ref_se2`` (0: exact)."""
    g = g.detach().double().cpu()
    ref = ref.detach().double().cpu()
    R = g.shape[0]
    mean = g.mean(0)
    dev2 = (g - mean).pow(2).sum(1) * (R / (R - 1))  # per-replicate, unbiased in mean
    variance = float(dev2.mean())

    def bias2(m, second):
        trace = (second - m.pow(2).sum(-1)) * (R / (R - 1))
        return (m - ref).pow(2).sum(-1) - trace / R - ref_se2

    def snr(m, second):
        trace = ((second - m.pow(2).sum(-1)) * (R / (R - 1))).clamp_min(1e-300)
        return m.norm(dim=-1) / trace.sqrt()

    b2 = float(bias2(mean, g.pow(2).sum(1).mean()))
    out: dict[str, float] = {"bias": math.sqrt(max(b2, 0.0))}
    if variance > 0:
        # normal interval for ‖E g − g*‖²: Var ≈ 4 dᵀΣd/R + 2 tr(Σ²)/R², d = ḡ − g*
        centred = g - mean
        d = mean - ref
        proj = float((centred @ d).pow(2).sum() / (R - 1))
        tr_sigma2 = _trace_sigma_squared(centred)
        half = Z95 * math.sqrt(max(4 * proj / R + 2 * tr_sigma2 / R**2, 0.0))
        out["bias_lo"] = math.sqrt(max(b2 - half, 0.0))
        out["bias_hi"] = math.sqrt(max(b2 + half, 0.0))
        out["snr"] = float(mean.norm()) / math.sqrt(variance)
        out["snr_lo"], out["snr_hi"] = _bootstrap(g, snr, n_resamples, seed + 1)
    else:
        out["bias_lo"] = out["bias_hi"] = out["bias"]
        out["snr"] = out["snr_lo"] = out["snr_hi"] = math.inf
    out["variance"], out["variance_lo"], out["variance_hi"] = _normal_ci(dev2)
    out["variance"] = variance
    out["mse"], out["mse_lo"], out["mse_hi"] = _normal_ci((g - ref).pow(2).sum(1))
    cos = torch.nn.functional.cosine_similarity(g, ref.expand_as(g), dim=1)
    out["cosine"], out["cosine_lo"], out["cosine_hi"] = _normal_ci(cos)
    sign = (torch.sign(g) == torch.sign(ref)).double().mean(1)
    out["sign_agreement"], out["sign_agreement_lo"], out["sign_agreement_hi"] = _normal_ci(sign)
    return out
