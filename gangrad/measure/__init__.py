"""Measurements: gradient statistics of estimators and their cost."""

from gangrad.measure.gradstats import (
    gradient_stats,
    loop_gradients,
    replicate_gradients,
    sigma_sweep,
)
from gangrad.measure.timing import Cost, measure_cost

__all__ = ["Cost", "gradient_stats", "loop_gradients", "measure_cost", "replicate_gradients",
           "sigma_sweep"]
