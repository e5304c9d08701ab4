"""The batched replicate engine (torch.func.vmap) against a Python loop over replicates,
and its place on the roofline.

Setting: ``ring8`` (2-D, 128-unit MLPs for G and D), smoothing σ = 0.1, a fixed z batch of
64 rows, R replicate gradients of every G parameter. Target: the batched path is not slower
than the loop; the speed-up is recorded in ``extra_info``. The roofline line: the FLOPs of
one batched call (``torch.utils.flop_counter``) over its median time, against the
measured rate of a large float32 matrix product on the same device.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.conftest import DEVICES, interleaved_medians, machine, synchronized
from gangrad import estimators, tasks
from gangrad.measure import draw_noise, loop_gradients, replicate_gradients
from gangrad.train import generator_loss


def _setup(R: int, device: str):
    task = tasks.create("ring8", hidden=128)
    est = estimators.create("smoothing", sigma=0.1)
    torch.manual_seed(0)
    G = task.make_generator(est.param_shape(task.space)).to(device)
    D = task.make_discriminator().to(device).requires_grad_(False)
    f = generator_loss("nonsaturating", D)
    z = task.sample_latent(64, generator=torch.Generator().manual_seed(1)).to(device)
    noise = draw_noise(est, G(z), R, task.space, torch.Generator(device).manual_seed(2))
    batched = lambda: replicate_gradients(est, G, f, z, noise, task.space)  # noqa: E731
    looped = lambda: loop_gradients(est, G, f, z, noise, task.space)  # noqa: E731
    return batched, looped


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("R", [64, 256, 1024])
@pytest.mark.parametrize("mode", ["batched", "loop"])
def test_replicates(benchmark, mode, R, device):
    batched, looped = _setup(R, device)
    benchmark.group = f"replicate gradients, ring8, R={R}, {device}"
    benchmark.extra_info.update({"R": R, "device": device, "mode": mode,
                                 "machine": machine(device)})
    benchmark.pedantic(synchronized(batched if mode == "batched" else looped, device),
                       rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("R", [64, 256, 1024])
def test_batched_not_slower_than_loop(benchmark, R, device):
    """Median time of the loop over that of the batched engine must be ≥ 1."""
    batched, looped = _setup(R, device)
    t_batched, t_loop = interleaved_medians(batched, looped, device, rounds=5, warmup=1)
    benchmark.group = f"replicate speed-up, {device}"
    benchmark.extra_info.update({"R": R, "batched_ms": t_batched * 1e3,
                                 "loop_ms": t_loop * 1e3, "speedup": t_loop / t_batched,
                                 "device": device, "machine": machine(device)})
    benchmark.pedantic(synchronized(batched, device), rounds=3, warmup_rounds=1)
    assert t_loop / t_batched >= 1.0, f"batched {t_batched * 1e3:.1f} ms vs loop " \
                                      f"{t_loop * 1e3:.1f} ms"


def matmul_rate(device: str) -> float:
    """FLOP/s of a large float32 matrix product (median of 10, after warm-up)."""
    n = 4096 if device != "cpu" else 1536
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    t, _ = interleaved_medians(lambda: a @ b, lambda: None, device, rounds=10, warmup=3)
    return 2 * n**3 / t


@pytest.mark.parametrize("device", DEVICES)
def test_roofline(benchmark, device):
    from torch.utils.flop_counter import FlopCounterMode

    R = 1024
    batched, _ = _setup(R, device)
    with FlopCounterMode(display=False) as counter:
        batched()
    flops = counter.get_total_flops()
    benchmark.pedantic(synchronized(batched, device), rounds=10, warmup_rounds=2)
    if benchmark.stats is not None:
        t = benchmark.stats.stats.median
    else:  # --benchmark-disable
        t, _ = interleaved_medians(batched, lambda: None, device, rounds=3, warmup=0)
    peak = matmul_rate(device)
    benchmark.group = f"roofline, replicate engine R={R}, {device}"
    benchmark.extra_info.update({
        "R": R, "flops": flops, "time_ms": t * 1e3, "achieved_gflops": flops / t / 1e9,
        "matmul_gflops": peak / 1e9, "fraction_of_matmul": flops / t / peak,
        "device": device, "machine": machine(device),
        "matmul_precision": torch.get_float32_matmul_precision()})
    assert flops > 0
