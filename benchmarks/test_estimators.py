"""Time per gradient estimate, for every (task, estimator) pair the registries allow.

One estimate: the task's generator and discriminator at initialisation (seeded), a
batch of the task's default training size, ``estimator.surrogate(G(z), f).mean()``
and its backward to G's parameters, with ``f`` the non-saturating generator loss through
D (frozen). Latents and noise are drawn inside the timed call, as in training. Runs on
the CPU and, when present, on CUDA.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.conftest import DEVICES, machine, synchronized
from gangrad import estimators, tasks
from gangrad.train import TrainConfig, generator_loss

# Pairs whose estimate calls f more than MAX_CALLS times per row are left out: on
# oracle_seq, IndeCateR (1 + 20·99 calls) and ARSM (1 + 100·99/2 swaps per position, about
# 10 GB per estimate at the task's batch) would time the machine's memory, not the
# estimator.
MAX_CALLS = 1_000
PAIRS = [(t, e) for t in tasks.available()
         for e in estimators.supporting(tasks.create(t).space)
         if estimators.create(e).evaluations(tasks.create(t).space) <= MAX_CALLS]


def _estimate(task_key: str, est_key: str, device: str):
    task = tasks.create(task_key)
    est = estimators.create(est_key)
    batch = TrainConfig().resolved(task).batch_size
    torch.manual_seed(0)
    G = task.make_generator(est.param_shape(task.space)).to(device)
    D = task.make_discriminator().to(device).requires_grad_(False)
    f = generator_loss("nonsaturating", D)
    rng = torch.Generator(device).manual_seed(1)

    def one():
        G.zero_grad(set_to_none=True)
        z = task.sample_latent(batch, generator=rng, device=device)
        est.surrogate(G(z), f, space=task.space, generator=rng,
                      **estimators.logit_kwargs(est, D)).mean().backward()
    return one, batch, est


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("task", "estimator"), PAIRS, ids=[f"{t}-{e}" for t, e in PAIRS])
def test_gradient_estimate(benchmark, task, estimator, device):
    one, batch, est = _estimate(task, estimator, device)
    benchmark.group = f"gradient estimate, {device}"
    benchmark.extra_info.update({"task": task, "estimator": estimator, "device": device,
                                 "machine": machine(device), "batch": batch,
                                 "f_evaluations": est.f_evaluations})
    benchmark.pedantic(synchronized(one, device), rounds=20, warmup_rounds=3)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["median_ms"] = benchmark.stats.stats.median * 1e3
