"""Cost of one gradient estimate: time (median of many, synchronized) and peak memory.

Method: ``warmup`` untimed calls, then ``repeats`` timed calls; the median is reported
(robust to scheduler noise). On CUDA each call is bracketed by CUDA events and the device
is synchronized; peak memory is the allocator's high-water mark during one call. On the
CPU, time comes from ``time.perf_counter`` and peak memory from the process: the rise of
its peak resident set size during one call (Linux; page-granular, and memory the
allocator keeps cached from earlier calls is not counted again).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["Cost", "measure_cost"]


@dataclass(frozen=True)
class Cost:
    time_ms: float  # median
    time_iqr_ms: float  # interquartile range of the timed calls
    peak_mem_mb: float
    repeats: int


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _peak_cpu_bytes(fn: Callable[[], object]) -> float:
    """Rise of the process's peak resident set during one call (Linux), else NaN.

    Writing 5 to ``/proc/self/clear_refs`` resets the peak (``VmHWM``) to the current
    resident set, so the difference after the call is what the call added at its peak.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        before = _status_kb("VmRSS")
    except OSError:
        return math.nan
    fn()
    return max(_status_kb("VmHWM") - before, 0) * 1024.0


def measure_cost(fn: Callable[[], object], device: torch.device | str = "cpu", *,
                 warmup: int = 3, repeats: int = 20, memory: bool = True) -> Cost:
    """Time ``fn`` (one gradient estimate) and its peak memory on ``device``."""
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        peak = 0.0
        if memory:
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            fn()
            torch.cuda.synchronize(device)
            peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        peak = _peak_cpu_bytes(fn) / 2**20 if memory else 0.0
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return Cost(statistics.median(times), q[2] - q[0], peak, repeats)
