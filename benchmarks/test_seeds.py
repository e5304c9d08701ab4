"""Vectorized seeds: S = 16 seeds trained as one batched model against 16 runs one after
another (:func:`gangrad.train.train_seeds` against :func:`gangrad.train.train`), with the
task's networks and batch: ``ring8`` with ``pathwise``, and ``binary_digits`` with the
estimators that keep a state or a batch per seed (REBAR, RELAX, the batch-mean score
function).

Both produce the same histories (checked, bit for bit on the CPU). The two ways are timed
in alternation, twice each (batched, sequential, batched, sequential), and the speed-up is
the ratio of their best times, so that a machine whose load drifts favours neither.
Targets: ≥ 1.5× on the CPU, ≥ 8× on one GPU.
"""

from __future__ import annotations

import time

import pytest
import torch

from benchmarks.conftest import DEVICES, machine
from gangrad.train import train, train_seeds

S = 16
TARGET = {"cpu": 1.5, "cuda": 8.0}
# (task, estimator, hyper-parameters, steps, evaluation samples): the stateless case, and
# the estimators that keep a state or a batch per seed (a control variate, a batch-mean
# baseline); digits are evaluated on fewer samples, so that training, not the Fréchet
# distance both ways compute alike, is what is timed
CASES = [("ring8", "pathwise", {}, 200, 2500), ("binary_digits", "rebar", {}, 100, 500),
         ("binary_digits", "relax", {}, 100, 500),
         ("binary_digits", "score_function", {"baseline": "mean"}, 100, 500)]


def _sync(device: str) -> None:
    if device != "cpu":
        torch.cuda.synchronize()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("task", "key", "hyper", "steps", "samples"), CASES,
                         ids=[f"{c[0]}-{c[1]}" + (f"-{c[2]['baseline']}" if c[2] else "")
                              for c in CASES])
def test_seeds_speedup(benchmark, device, task, key, hyper, steps, samples):
    run = {"steps": steps, "eval_every": steps, "eval_samples": samples, "device": device,
           "estimator_hyper": hyper}
    train(task, key, steps=3, device=device, estimator_hyper=hyper)  # warm up
    train_seeds(task, key, [0, 1], steps=3, device=device, estimator_hyper=hyper)
    times = {}

    def timed(mode, fn):
        _sync(device)
        start = time.perf_counter()
        histories = fn()
        _sync(device)
        times.setdefault(mode, []).append(time.perf_counter() - start)
        return histories

    def batched():
        return train_seeds(task, key, list(range(S)), **run)

    def sequential():
        return [train(task, key, seed=s, **run) for s in range(S)]

    first = timed("batched", batched)
    alone = timed("sequential", sequential)
    benchmark.pedantic(timed, args=("batched", batched), rounds=1)
    timed("sequential", sequential)
    same = all(a.drop(columns="elapsed_s").equals(b.drop(columns="elapsed_s"))
               for a, b in zip(first, alone, strict=True))
    t_batched, t_seq = min(times["batched"]), min(times["sequential"])
    speedup = t_seq / t_batched
    benchmark.group = f"vectorized seeds, {task}, {key}, S={S}, {device}"
    benchmark.extra_info.update({
        "task": task, "estimator": key, "hyper": hyper, "S": S, "steps": steps,
        "device": device, "machine": machine(device), "sequential_s": t_seq,
        "batched_s": t_batched, "speedup": speedup, "batched_runs_s": times["batched"],
        "sequential_runs_s": times["sequential"],
        "target": TARGET["cuda" if device != "cpu" else "cpu"], "same_histories": same})
    if device == "cpu":
        assert same, "batched seeds differ from their runs alone"
    assert speedup >= benchmark.extra_info["target"], \
        f"{S} seeds: batched {t_batched:.1f}s vs sequential {t_seq:.1f}s ({speedup:.2f}×)"
