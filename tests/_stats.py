"""Tolerances derived from the sample size, for seeded randomized tests.

A check passes when the estimate is within ``Z`` standard errors of the truth. With a
fixed seed the outcome is deterministic; ``Z = 5`` keeps the chance that a correct
implementation fails on a fresh seed below 1e-6 per check.
"""

from __future__ import annotations

import torch

Z = 5.0


def mean_within(samples: torch.Tensor, truth: torch.Tensor | float, z: float = Z) -> None:
    """Each column's mean equals ``truth`` within ``z`` standard errors. samples: R x D."""
    samples = samples.double().reshape(samples.shape[0], -1)
    truth = torch.as_tensor(truth, dtype=torch.float64).reshape(-1).expand(samples.shape[1])
    se = samples.std(0) / samples.shape[0] ** 0.5
    err = (samples.mean(0) - truth).abs()
    assert torch.all(err <= z * se + 1e-12), (
        f"mean {samples.mean(0).tolist()} vs truth {truth.tolist()}, tolerance {(z * se).tolist()}"
    )


def variance_se(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column sample variance and its standard error ``sqrt((m4 − s⁴)/R)``."""
    samples = samples.double().reshape(samples.shape[0], -1)
    centred = samples - samples.mean(0)
    var = centred.pow(2).mean(0)
    m4 = centred.pow(4).mean(0)
    return var, ((m4 - var**2).clamp_min(0) / samples.shape[0]).sqrt()


def variance_within(samples: torch.Tensor, truth: torch.Tensor | float, z: float = Z) -> None:
    var, se = variance_se(samples)
    truth = torch.as_tensor(truth, dtype=torch.float64).reshape(-1).expand_as(var)
    assert torch.all((var - truth).abs() <= z * se), (
        f"variance {var.tolist()} vs truth {truth.tolist()}, tolerance {(z * se).tolist()}"
    )


def variance_below(low: torch.Tensor, high: torch.Tensor, z: float = Z) -> None:
    """Total variance of ``low`` is below that of ``high`` by more than ``z`` joint SEs."""
    v_lo, se_lo = variance_se(low)
    v_hi, se_hi = variance_se(high)
    gap = v_hi.sum() - v_lo.sum()
    se = (se_lo.pow(2).sum() + se_hi.pow(2).sum()).sqrt()
    assert gap > z * se, f"variance {v_lo.sum():.4g} not below {v_hi.sum():.4g} (SE {se:.3g})"
