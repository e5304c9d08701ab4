"""The batched replicate engine (torch.func.vmap) against a Python loop over replicates.

Setting: ``ring8`` (2-D, 128-unit MLPs for G and D), smoothing σ = 0.1, a fixed z batch of
64 rows, R replicate gradients of every G parameter. Target: the batched path is not slower
than the loop on the CPU; the speed-up is recorded in ``extra_info``.
"""

from __future__ import annotations

import pytest
import torch

from gangrad import estimators, tasks
from gangrad.measure import loop_gradients, measure_cost, replicate_gradients
from gangrad.measure.gradstats import draw_noise
from gangrad.train import generator_loss

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _setup(R: int):
    task = tasks.create("ring8", hidden=128)
    est = estimators.create("smoothing", sigma=0.1)
    torch.manual_seed(0)
    G = task.make_generator(est.param_shape(task.space)).to(DEVICE)
    D = task.make_discriminator().to(DEVICE).requires_grad_(False)
    f = generator_loss("nonsaturating", D)
    z = task.sample_latent(64, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    noise = draw_noise(est, G(z), R, task.space, torch.Generator(DEVICE).manual_seed(2))
    batched = lambda: replicate_gradients(est, G, f, z, noise, task.space)  # noqa: E731
    looped = lambda: loop_gradients(est, G, f, z, noise, task.space)  # noqa: E731
    return batched, looped


@pytest.mark.parametrize("R", [64, 256, 1024])
@pytest.mark.parametrize("mode", ["batched", "loop"])
def test_replicates(benchmark, mode, R):
    batched, looped = _setup(R)
    benchmark.group = f"replicate gradients, ring8, R={R}, {DEVICE}"
    benchmark.extra_info.update({"R": R, "device": DEVICE, "mode": mode})
    benchmark.pedantic(batched if mode == "batched" else looped, rounds=5, warmup_rounds=1)


def test_batched_not_slower_than_loop(benchmark):
    """R = 256: median time of the loop over that of the batched engine must be ≥ 1."""
    batched, looped = _setup(256)
    t_batched = measure_cost(batched, DEVICE, warmup=1, repeats=5, memory=False).time_ms
    t_loop = measure_cost(looped, DEVICE, warmup=1, repeats=5, memory=False).time_ms
    benchmark.extra_info.update({"batched_ms": t_batched, "loop_ms": t_loop,
                                 "speedup": t_loop / t_batched, "device": DEVICE})
    benchmark.pedantic(batched, rounds=3, warmup_rounds=1)
    assert t_loop / t_batched >= 1.0, f"batched {t_batched:.1f} ms vs loop {t_loop:.1f} ms"
