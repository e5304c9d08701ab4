"""Shared set-up of the benchmarks (`make bench`; JSON under reports/benchmarks/).

Every benchmark records its figures in ``benchmark.extra_info`` (device, sizes, ratios),
so the saved JSON carries the results; ``python -m benchmarks.table FILE.json`` prints
them as the README's table.
"""

from __future__ import annotations

import platform

import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def synchronized(fn, device: str):
    """``fn`` followed by a CUDA synchronize on a GPU, so wall clocks time the work."""
    if device == "cpu":
        return fn

    def run():
        out = fn()
        torch.cuda.synchronize()
        return out
    return run


def interleaved_medians(a, b, device: str, rounds: int, warmup: int = 3
                        ) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, timed in alternation (drift hits both)."""
    import time

    a, b = synchronized(a, device), synchronized(b, device)
    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        a()
        ta.append(time.perf_counter() - start)
        start = time.perf_counter()
        b()
        tb.append(time.perf_counter() - start)
    ta.sort()
    tb.sort()
    return ta[len(ta) // 2], tb[len(tb) // 2]


def machine(device: str) -> str:
    """The device in words, with the torch version."""
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
            f"threads, torch {torch.__version__}")
