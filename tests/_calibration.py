"""Coverage of the gradient statistics' intervals on synthetic replicates with a known truth.

A case draws ``R`` replicates ``g_r ~ N(μ, Σ)`` (``Σ`` diagonal, scales spread over a
decade; ``student`` replaces the normal noise by Student-t with 5 degrees of freedom,
scaled to the same ``Σ``) whose signal-to-noise ratio ``‖μ‖/√tr Σ`` is ``snr``, against a
reference ``g* = μ − b`` with ``‖b‖ = bias·‖μ‖``. The reference is exact, or a Monte Carlo
one: the mean of ``R`` draws from ``N(g*, Σ)`` — as noisy as the estimator — with its
estimated per-coordinate variance; or ``paired``: every replicate on its own z batch, which
adds a z-noise ``u_r ~ N(0, Σ)`` to it and to its own exact reference ``g* + u_r``, the
reference being their pooled mean (``gradient_stats(fresh_z=True)``). Each repetition
checks whether each interval holds its statistic's truth; coverage is the fraction of
repetitions that do.

Truths: ``bias = ‖b‖``, ``variance = tr Σ``, ``mse = tr Σ + ‖b‖²``,
``snr = ‖μ‖/√tr Σ``, ``cosine = E cos(g, g*)`` (10⁶ draws), ``sign_agreement =
mean_j P(sign g_j = sign g*_j)`` over the coordinates the statistic counts (for paired
references, against each replicate's own ``g* + u_r``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import scipy.stats
import torch

STATS = ("bias", "variance", "mse", "snr", "cosine", "sign_agreement")
CHUNKS = 10


@dataclass(frozen=True)
class Case:
    snr: float
    R: int
    reference: str = "exact"  # "monte carlo", or "paired" (fresh z batches, see below)
    bias: float = 0.2  # ‖b‖ / ‖μ‖
    P: int = 40
    student: bool = False

    def __str__(self) -> str:
        return (f"snr={self.snr:g} R={self.R} {self.reference} bias={self.bias:g} P={self.P}"
                + (" t5" if self.student else ""))


def _problem(case: Case, gen: torch.Generator):
    P = case.P
    scale = torch.logspace(0, 1, P, dtype=torch.float64)  # per-coordinate sd
    direction = torch.randn(P, generator=gen, dtype=torch.float64)
    mu = direction / direction.norm() * case.snr * scale.pow(2).sum().sqrt()
    b = torch.randn(P, generator=gen, dtype=torch.float64)
    b = b / b.norm() * case.bias * mu.norm()
    return mu, scale, mu - b


def _noise(case: Case, n: int, scale: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    if not case.student:
        return torch.randn(n, case.P, generator=gen, dtype=torch.float64) * scale
    nu = 5  # Student-t: a normal over the root of a chi-square, scaled to unit variance
    z = torch.randn(n, case.P, generator=gen, dtype=torch.float64)
    w = torch.randn(n, case.P, nu, generator=gen, dtype=torch.float64).pow(2).sum(-1)
    return z / (w / nu).sqrt() * math.sqrt((nu - 2) / nu) * scale


def _spread(case: Case, scale: torch.Tensor) -> torch.Tensor:
    """The per-coordinate sd of a replicate: its own noise, and the z-noise when paired."""
    return scale * math.sqrt(2) if case.reference == "paired" else scale


def truths(case: Case, seed: int = 12345) -> dict[str, float]:
    """The statistics' true values for ``case`` (the sign agreement over all coordinates)."""
    gen = torch.Generator().manual_seed(seed)
    mu, scale, ref = _problem(case, gen)
    scale = _spread(case, scale)
    cos, agree = 0.0, torch.zeros(case.P, dtype=torch.float64)
    for _ in range(CHUNKS):  # 10⁶ draws: the truth's own error is far inside the intervals
        if case.reference == "paired":  # a replicate against its own batch's g*_r
            own = _problem(case, torch.Generator().manual_seed(seed))[1]
            u = _noise(case, 100_000, own, gen)
            draws, target = mu + u + _noise(case, 100_000, own, gen), ref + u
            agree += (torch.sign(draws) == torch.sign(target)).double().mean(0) / CHUNKS
        else:
            draws, target = mu + _noise(case, 100_000, scale, gen), ref.expand(100_000, -1)
            agree += _agreement(case, mu, scale, ref, draws) / CHUNKS
        cos += float(torch.nn.functional.cosine_similarity(draws, target, dim=1).mean()) / CHUNKS
    return {"bias": float((mu - ref).norm()), "variance": float(scale.pow(2).sum()),
            "mse": float(scale.pow(2).sum() + (mu - ref).pow(2).sum()),
            "snr": float(mu.norm() / scale.pow(2).sum().sqrt()), "cosine": cos,
            "sign_agreement": float(agree.mean()), "per_coordinate": agree}


def _agreement(case, mu, scale, ref, draws=None) -> torch.Tensor:
    """Per coordinate, P(sign g_j = sign g*_j)."""
    if case.student:
        return (torch.sign(draws) == torch.sign(ref)).double().mean(0)
    return torch.from_numpy(scipy.stats.norm.cdf((torch.sign(ref) * mu / scale).numpy()))


def coverage(stats_fn, case: Case, repetitions: int, seed: int = 0) -> dict[str, float]:
    """The fraction of ``repetitions`` in which each interval of ``stats_fn(g, ref,
    ref_se2, ref_var=... | paired_ref=...)`` holds the truth."""
    truth = truths(case)
    per_coordinate = truth.pop("per_coordinate")
    mu, scale, g_star = _problem(case, torch.Generator().manual_seed(12345))
    gen = torch.Generator().manual_seed(seed)
    hits = dict.fromkeys(STATS, 0)
    z = scipy.stats.norm.ppf(1 - 0.025 / case.P)
    for _ in range(repetitions):
        g = mu + _noise(case, case.R, scale, gen)
        extra: dict = {}
        if case.reference == "exact":
            ref, ref_var = g_star, None
        elif case.reference == "paired":
            u = _noise(case, case.R, scale, gen)  # each replicate's z-noise
            g, paired = g + u, g_star + u
            ref, ref_var, extra = paired.mean(0), paired.var(0) / case.R, {"paired_ref": paired}
        else:
            m = g_star + _noise(case, case.R, scale, gen)
            ref, ref_var = m.mean(0), m.var(0) / case.R
            extra = {"ref_var": ref_var}
        kept = (torch.ones(case.P, dtype=torch.bool) if case.reference != "monte carlo"
                else ref.abs() > z * ref_var.sqrt())
        s = stats_fn(g, ref, float(ref_var.sum()) if ref_var is not None else 0.0, **extra)
        want = dict(truth, sign_agreement=float(per_coordinate[kept].mean()))
        for name in STATS:
            if s[name + "_lo"] <= want[name] <= s[name + "_hi"]:
                hits[name] += 1
    return {name: hits[name] / repetitions for name in STATS}


def band(repetitions: int, low: float = 0.93, high: float = 0.97, z: float = 3.0
         ) -> tuple[float, float]:
    """The target range widened by ``z`` binomial standard errors of a coverage estimate
    from ``repetitions`` (at 0.95)."""
    se = math.sqrt(0.95 * 0.05 / repetitions)
    return low - z * se, high + z * se
