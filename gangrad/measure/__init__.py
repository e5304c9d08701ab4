"""Measurements: gradient statistics of estimators and their cost.

Public names (the modules behind them are implementation):

- :func:`gradient_stats`, :class:`GradStatsConfig`: bias, variance, MSE, SNR, cosine,
  sign agreement and cost of each estimator's G gradient (:mod:`~gangrad.measure.engine`);
- :class:`GradientProbe`: the same at a training run's checkpoints (its ``on_checkpoint``);
- :func:`group_stats`, :data:`STATISTICS`: the statistics of a replicate matrix, and the
  one list that declares them (:mod:`~gangrad.measure.statistics`);
- :func:`replicate_gradients`, :func:`loop_gradients`, :func:`draw_noise`,
  :func:`reference_gradient`: the gradients behind them (:mod:`~gangrad.measure.gradients`);
- :func:`sigma_sweep`: smoothing against the score function over σ;
- :func:`measure_cost`, :class:`Cost`: time and peak memory of one estimate.

This package does not train: training calls it, at checkpoints.
"""

from gangrad.measure.config import GradStatsConfig
from gangrad.measure.engine import GradientProbe, gradient_stats, sigma_sweep
from gangrad.measure.gradients import (
    draw_noise,
    loop_gradients,
    reference_gradient,
    replicate_gradients,
)
from gangrad.measure.statistics import (
    STATISTICS,
    Statistic,
    group_stats,
    statistic,
    stored_names,
    timing_names,
)
from gangrad.measure.timing import Cost, measure_cost

__all__ = ["STATISTICS", "Cost", "GradStatsConfig", "GradientProbe", "Statistic",
           "draw_noise", "gradient_stats", "group_stats", "loop_gradients", "measure_cost",
           "reference_gradient", "replicate_gradients", "sigma_sweep", "statistic",
           "stored_names", "timing_names"]
