"""Vectorized seeds: S = 16 seeds of ``ring8`` trained as one batched model against 16
runs one after another (:func:`gangrad.train.train_seeds` against
:func:`gangrad.train.train`), with the task's networks and batch.

Both produce the same histories (checked, bit for bit on the CPU). Targets: ≥ 1.5× on
the CPU, ≥ 8× on one GPU.
"""

from __future__ import annotations

import time

import pytest
import torch

from benchmarks.conftest import DEVICES, machine
from gangrad.train import train, train_seeds

S = 16
STEPS = 200
TARGET = {"cpu": 1.5, "cuda": 8.0}
RUN = {"steps": STEPS, "eval_every": STEPS, "eval_samples": 2500}


def _sync(device: str) -> None:
    if device != "cpu":
        torch.cuda.synchronize()


def _sequential(device: str):
    return [train("ring8", "pathwise", seed=s, device=device, **RUN) for s in range(S)]


def _batched(device: str):
    return train_seeds("ring8", "pathwise", list(range(S)), device=device, **RUN)


@pytest.mark.parametrize("device", DEVICES)
def test_seeds_speedup(benchmark, device):
    train("ring8", "pathwise", steps=3, device=device)  # warm up allocator and kernels
    train_seeds("ring8", "pathwise", [0, 1], steps=3, device=device)
    times = {}

    def timed(mode, fn):
        _sync(device)
        start = time.perf_counter()
        histories = fn(device)
        _sync(device)
        times.setdefault(mode, []).append(time.perf_counter() - start)
        return histories

    batched = timed("batched", _batched)
    sequential = timed("sequential", _sequential)
    benchmark.pedantic(timed, args=("batched", _batched), rounds=1)
    same = all(a.drop(columns="elapsed_s").equals(b.drop(columns="elapsed_s"))
               for a, b in zip(batched, sequential, strict=True))
    t_batched, t_seq = min(times["batched"]), times["sequential"][0]
    speedup = t_seq / t_batched
    benchmark.group = f"vectorized seeds, ring8, S={S}, {device}"
    benchmark.extra_info.update({
        "S": S, "steps": STEPS, "device": device, "machine": machine(device),
        "sequential_s": t_seq, "batched_s": t_batched, "speedup": speedup,
        "target": TARGET["cuda" if device != "cpu" else "cpu"], "same_histories": same})
    if device == "cpu":
        assert same, "batched seeds differ from their runs alone"
    assert speedup >= benchmark.extra_info["target"], \
        f"{S} seeds: batched {t_batched:.1f}s vs sequential {t_seq:.1f}s ({speedup:.2f}×)"
