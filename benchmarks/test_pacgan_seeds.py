"""Vectorized seeds through batch norm: PacGAN's networks and protocol (its Blocks batch
norm with running averages, one batch of fakes for both losses, epochs of a fixed data
set, simultaneous updates; :mod:`gangrad.reproductions.pacgan_table1`), S seeds trained
as one batched model against S runs one after another, for the GAN (pack 1) and PacGAN2
(pack 2) on ``grid25``.

The batch is 64 packs, not the protocol's 100: at a multiple of 64 rows the two ways give
the same histories bit for bit on the CPU (checked here; at 100 packs they agree to
float32 rounding per step, see :mod:`gangrad.train.seeds`), and the time per step scales
with the batch. The two ways are timed in alternation, twice each, and the speed-up is the
ratio of their best times, as in ``test_seeds.py``. S = 16 on the CPU; S = 16 and 64 on a
GPU.

Targets: on the CPU the networks' matrix products keep the cores busy with one seed, so
batching buys little; the benchmark asserts it costs nothing (≥ 0.9×, a margin for a
machine whose load drifts). On one GPU, where a seed's step is a string of small kernels,
≥ 8×.
"""

from __future__ import annotations

import time

import pytest
import torch

from benchmarks.conftest import DEVICES, machine
from gangrad import tasks
from gangrad.train import train, train_seeds

STEPS, PACKS = 30, 64
TARGET = {"cpu": 0.9, "cuda": 8.0}
PROTOCOL = {"fakes": "shared", "data_order": "epochs", "update_order": "simultaneous",
            "beta1": 0.8, "beta2": 0.999, "lr_g": 1e-4, "lr_d": 1e-4}
CASES = [(device, pack, seeds) for device in DEVICES for pack in (1, 2)
         for seeds in ((16,) if device == "cpu" else (16, 64))]


def _sync(device: str) -> None:
    if device != "cpu":
        torch.cuda.synchronize()


@pytest.mark.parametrize(("device", "pack", "seeds"), CASES,
                         ids=[f"{d}-pack{p}-S{s}" for d, p, s in CASES])
def test_pacgan_seeds_speedup(benchmark, device, pack, seeds):
    task = tasks.create("grid25", arch="pacgan", pack=pack, dataset_size=100_000,
                        batch_norm="pacgan")
    run = {"steps": STEPS, "eval_every": STEPS, "eval_samples": 2500, "device": device,
           "batch_size": PACKS * pack, **PROTOCOL}
    train(task, "pathwise", **{**run, "steps": 2, "eval_every": 2})  # warm up
    train_seeds(task, "pathwise", [0, 1], **{**run, "steps": 2, "eval_every": 2})
    times: dict[str, list[float]] = {}

    def timed(mode, fn):
        _sync(device)
        start = time.perf_counter()
        histories = fn()
        _sync(device)
        times.setdefault(mode, []).append(time.perf_counter() - start)
        return histories

    def batched():
        return train_seeds(task, "pathwise", list(range(seeds)), batched=True, **run)

    def sequential():
        return [train(task, "pathwise", seed=s, **run) for s in range(seeds)]

    first = timed("batched", batched)
    alone = timed("sequential", sequential)
    benchmark.pedantic(timed, args=("batched", batched), rounds=1)
    timed("sequential", sequential)
    same = all(a.drop(columns="elapsed_s").equals(b.drop(columns="elapsed_s"))
               for a, b in zip(first, alone, strict=True))
    t_batched, t_seq = min(times["batched"]), min(times["sequential"])
    speedup = t_seq / t_batched
    benchmark.group = f"vectorized seeds, PacGAN protocol, pack {pack}, S={seeds}, {device}"
    benchmark.extra_info.update({
        "task": "grid25", "arch": "pacgan", "pack": pack, "packs_per_batch": PACKS,
        "S": seeds, "steps": STEPS, "device": device, "machine": machine(device),
        "sequential_s": t_seq, "batched_s": t_batched, "speedup": speedup,
        "ms_per_seed_step_batched": 1000 * t_batched / (seeds * STEPS),
        "ms_per_seed_step_sequential": 1000 * t_seq / (seeds * STEPS),
        "batched_runs_s": times["batched"], "sequential_runs_s": times["sequential"],
        "target": TARGET["cuda" if device != "cpu" else "cpu"], "same_histories": same})
    if device == "cpu":
        assert same, "batched seeds differ from their runs alone"
    assert speedup >= benchmark.extra_info["target"], \
        f"{seeds} seeds: batched {t_batched:.1f}s vs sequential {t_seq:.1f}s ({speedup:.2f}×)"


PROJECTION_STEPS = 3000


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the full protocol's GPU rate")
def test_pacgan_full_protocol_projection(benchmark):
    """The full protocol's step rate on one GPU, projected to its 400,000 steps: its 8
    configurations (ring8 and grid25, GAN and PacGAN2, both Adam readings; 10 seeds
    batched in each) run as ``gangrad reproduce pacgan-table1 --full`` runs them, in 8
    processes sharing the device, for 3,000 steps; the slowest configuration's time per
    step, times 400,000, is the projection (start-up and evaluation excluded)."""
    from gangrad.reproductions.pacgan_table1 import FULL_STEPS, PacGANTable1, _jobs, _run

    settings = {**PacGANTable1.full, "steps": PROJECTION_STEPS, "evaluations": 1,
                "default_gan_steps": 0}
    jobs = _jobs(settings, 0)

    def run():
        return [r for done in _run(jobs, settings["workers"], lambda line: None) for r in done]

    start = time.perf_counter()
    records = benchmark.pedantic(run, rounds=1)
    wall = time.perf_counter() - start
    per_job = {f"{r['task']} {r['setting']} beta1={r['beta1']}": r["wall_s"] for r in records}
    slowest = max(per_job.values())
    projected_h = slowest / PROJECTION_STEPS * FULL_STEPS / 3600
    benchmark.group = "PacGAN full protocol, one GPU"
    benchmark.extra_info.update({
        "device": "cuda", "machine": machine("cuda"), "steps": PROJECTION_STEPS,
        "configurations": len(jobs), "seeds": settings["seeds"],
        "workers": settings["workers"], "wall_s": wall, "job_s": per_job,
        "ms_per_step_slowest": 1000 * slowest / PROJECTION_STEPS,
        "projected_full_h": projected_h, "target_h": 1.0})
