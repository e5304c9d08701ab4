"""Overhead of the estimator layer: a gangrad training step against a hand-written one.

Both steps train the same ``ring8`` G and D (3×128 MLPs, batch 256, Adam) on the same
real data: one D update on detached fakes, then one G update through the frozen D with
the non-saturating loss. The hand-written step is what one writes in plain PyTorch;
gangrad's is :func:`gangrad.train.train_step` with the ``pathwise`` estimator. The two
are timed in alternation; target: gangrad / hand-written ≤ 1.05.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.conftest import DEVICES, interleaved_medians, machine, synchronized
from gangrad import estimators, tasks
from gangrad.train import TrainConfig, init_state, train_step

TARGET = 1.05


def _steps(device: str):
    task = tasks.create("ring8")
    cfg = TrainConfig(device=device).resolved(task)
    state = init_state(task, estimators.create("pathwise"), cfg)

    torch.manual_seed(0)
    G = task.make_generator((2,)).to(device)
    D = task.make_discriminator().to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    rng = torch.Generator(device).manual_seed(0)
    data_rng = torch.Generator().manual_seed(1)
    B = cfg.batch_size

    def hand_written():
        z = torch.randn(B, 2, generator=rng, device=device)
        with torch.no_grad():
            fake = G(z)
        real = task.sample_real(B, generator=data_rng).to(device)
        d_loss = (nn.functional.softplus(-D(real)).mean()
                  + nn.functional.softplus(D(fake)).mean())
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        D.requires_grad_(False)
        z = torch.randn(B, 2, generator=rng, device=device)
        g_loss = nn.functional.softplus(-D(G(z))).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        D.requires_grad_(True)

    return hand_written, lambda: train_step(state, task, cfg)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["hand_written", "gangrad"])
def test_training_step(benchmark, mode, device):
    hand, ours = _steps(device)
    benchmark.group = f"training step, ring8, pathwise, {device}"
    benchmark.extra_info.update({"mode": mode, "device": device, "machine": machine(device)})
    benchmark.pedantic(synchronized(ours if mode == "gangrad" else hand, device),
                       rounds=200, warmup_rounds=10)


@pytest.mark.parametrize("device", DEVICES)
def test_overhead_ratio(benchmark, device):
    """Median of gangrad's step over the hand-written one's, timed in alternation."""
    hand, ours = _steps(device)
    t_hand, t_ours = interleaved_medians(hand, ours, device, rounds=400, warmup=20)
    ratio = t_ours / t_hand
    benchmark.group = f"overhead ratio, {device}"
    benchmark.extra_info.update({"hand_written_ms": t_hand * 1e3, "gangrad_ms": t_ours * 1e3,
                                 "ratio": ratio, "target": TARGET, "device": device,
                                 "machine": machine(device)})
    benchmark.pedantic(synchronized(ours, device), rounds=20, warmup_rounds=2)
    assert ratio <= TARGET, f"gangrad {t_ours * 1e3:.3f} ms vs hand-written " \
                            f"{t_hand * 1e3:.3f} ms: ratio {ratio:.3f} > {TARGET}"
