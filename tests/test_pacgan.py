"""PacGAN's networks, packing and batch norm as options of ``ring8`` / ``grid25``, the
training options of its protocol (one batch of fakes, epochs of a fixed data set), seeds
batched through batch norm, and the ``pacgan-table1`` reproduction.

Seeding: networks from ``torch.manual_seed``, data and noise from
``torch.Generator().manual_seed(...)``. The one statistical test compares two unbiased
estimators' means over ``R`` replicates within 5 standard errors of their difference, the
standard error estimated from the replicates.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.func import grad, vmap

from gangrad import estimators, reproductions, tasks
from gangrad._provenance import pinned_threads
from gangrad.cli import main
from gangrad.losses import generator_loss
from gangrad.reproductions import settle
from gangrad.reproductions._base import SAVED_FIELDS
from gangrad.reproductions.pacgan_table1 import (
    CLAIM,
    DEFAULT_GAN,
    PUBLISHED,
    PacGANTable1,
    claim,
)
from gangrad.runner.suite import SuiteError, parse_suite
from gangrad.tasks._pacgan import INIT_STD, BlocksBatchNorm, Maxout, PackedDiscriminator
from gangrad.train import TrainConfig, train, train_seeds
from gangrad.train.step import Epochs

ROW_FIELDS = list(SAVED_FIELDS)


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- architectures ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ring8", "grid25"])
def test_pacgan_generator_layers_and_init(key):
    torch.manual_seed(0)
    G = tasks.create(key, arch="pacgan").make_generator((2,))
    linears = [m for m in G.modules() if isinstance(m, nn.Linear)]
    norms = [m for m in G.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (2, 400), (400, 400), (400, 400), (400, 400), (400, 2)]
    assert [m.bias is None for m in linears] == [True] * 4 + [False]  # BN's shift is the bias
    assert len(norms) == 4 and all(n.num_features == 400 and n.eps == 1e-4 for n in norms)
    assert all(n.weight.eq(1).all() and n.bias.eq(0).all() for n in norms)
    assert sum(isinstance(m, nn.ReLU) for m in G.modules()) == 4
    # Linear -> BN -> ReLU in each hidden layer, then the linear head
    body = list(G.body)
    assert [type(m) for m in body] == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 4
    # 400·400 weights: the sample std has standard error ≈ 0.02/√(2·160,000) ≈ 3.5e-5
    w = torch.cat([m.weight.flatten() for m in linears])
    assert abs(w.std().item() - INIT_STD) < 5 * INIT_STD / math.sqrt(2 * w.numel())
    assert abs(w.mean().item()) < 5 * INIT_STD / math.sqrt(w.numel())
    assert linears[-1].bias.eq(0).all()


@pytest.mark.parametrize("pack", [1, 2, 3])
def test_pacgan_discriminator_layers_and_init(pack):
    torch.manual_seed(0)
    D = tasks.create("ring8", arch="pacgan", pack=pack).make_discriminator()
    maxouts = [m for m in D.modules() if isinstance(m, Maxout)]
    assert [(m.linear.in_features, m.out_features, m.pieces) for m in maxouts] == [
        (2 * pack, 200, 5), (200, 200, 5), (200, 200, 5)]
    linears = [m for m in D.modules() if isinstance(m, nn.Linear)]
    assert linears[-1].in_features == 200 and linears[-1].out_features == 1
    assert all(m.bias.eq(0).all() for m in linears)
    w = torch.cat([m.weight.flatten() for m in linears])
    assert abs(w.std().item() - INIT_STD) < 5 * INIT_STD / math.sqrt(2 * w.numel())


def test_maxout_takes_each_units_largest_piece():
    m = Maxout(3, 2, pieces=4)
    x = torch.randn(5, 3, generator=rng())
    pieces = m.linear(x).reshape(5, 2, 4)  # unit u: pieces 4u .. 4u + 3
    assert torch.equal(m(x), pieces.max(-1).values)


def test_pacgan_arch_generator_has_no_state_besides_parameters():
    """Batch norm without running averages: evaluation normalises over its own batch, and
    the generator is a pure function of its parameters (torch.func applies)."""
    G = tasks.create("ring8", arch="pacgan").make_generator((2,))
    assert list(G.buffers()) == []
    z = torch.randn(2500, 2, generator=rng())
    pre = G.body[0](z)  # 2500 x 400, normalised with this batch's own statistics
    expected = (pre - pre.mean(0)) / (pre.var(0, unbiased=False) + 1e-4).sqrt()
    assert torch.allclose(G.body[:2](z), expected, atol=1e-4)
    G.eval()
    assert torch.allclose(G.body[:2](z), expected, atol=1e-4)  # evaluation too


def test_bad_options_are_refused_by_name():
    for hyper, name in [({"arch": "dcgan"}, "arch"), ({"pack": 0}, "pack"),
                        ({"pack": 1.5}, "pack"), ({"dataset_size": 0}, "dataset_size"),
                        ({"dataset_seed": -1}, "dataset_seed"),
                        ({"arch": "pacgan", "hidden": 64}, "hidden")]:
        with pytest.raises(ValueError, match=name):
            tasks.create("grid25", **hyper)


# --- packing ----------------------------------------------------------------------------------


def _linear_packed(pack: int, dim: int = 2) -> tuple[PackedDiscriminator, torch.Tensor]:
    net = nn.Linear(pack * dim, 1)
    with torch.no_grad():
        net.weight.copy_(torch.arange(1.0, pack * dim + 1).unsqueeze(0))
        net.bias.fill_(0.5)
    return PackedDiscriminator(net, (dim,), pack), net.weight[0].detach()


@pytest.mark.parametrize("pack", [2, 3])
def test_packs_rows_a_batch_fraction_apart(pack):
    """Pack p holds rows p, p + P, ... (P = B/pack); every member gets its pack's logit."""
    D, w = _linear_packed(pack)
    B = 4 * pack
    P = B // pack
    x = torch.randn(B, 2, generator=rng())
    logits = D(x)
    assert logits.shape == (B,)
    for p in range(P):
        members = x[p::P]  # rows p, p + P, ...
        expected = members.flatten() @ w + 0.5
        assert torch.allclose(logits[p::P], expected.expand(pack), atol=1e-5)
    # antithetic pairs (rows 2i, 2i + 1) land in different packs
    assert all((2 * i) % P != (2 * i + 1) % P for i in range(B // 2))


@pytest.mark.parametrize("pack", [2, 3])
def test_packed_gradient_reaches_each_row_through_its_own_slot(pack):
    """f(x)_b is b's pack logit with its partners held fixed: d f_b / d x_b is the weight of
    b's slot, and nothing reaches the partners; the values are those of one pass."""
    D, w = _linear_packed(pack)
    B = 2 * pack
    x = torch.randn(B, 2, generator=rng(1)).requires_grad_(True)
    out = D(x)
    with torch.no_grad():
        assert torch.equal(out, D(x))  # routing changes gradients only
    for b in range(B):
        (g,) = torch.autograd.grad(out[b], x, retain_graph=True)
        slot = b // (B // pack)
        expected = torch.zeros(B, 2)
        expected[b] = w[2 * slot: 2 * slot + 2]
        assert torch.equal(g, expected)
    # the D parameters still see every member: d mean_b f_b / d bias = 1
    D.net.bias.grad = None
    D(x).mean().backward()
    assert D.net.bias.grad.item() == pytest.approx(1.0)


def test_packed_gradient_is_the_same_under_torch_func():
    """The gradient measurements use vmap(grad(...)): same routing as plain autograd."""
    torch.manual_seed(0)
    D = tasks.create("ring8", arch="pacgan", pack=2).make_discriminator().requires_grad_(False)
    f = generator_loss("nonsaturating", D)
    x = torch.randn(3, 8, 2, generator=rng(2))

    def loss(xr):
        return f(xr).mean()

    batched = vmap(grad(loss))(x)
    for r in range(3):
        xr = x[r].clone().requires_grad_(True)
        (plain,) = torch.autograd.grad(loss(xr), xr)
        assert torch.allclose(batched[r], plain, atol=1e-6)


def test_score_function_and_pathwise_agree_under_packing():
    """Both estimate mean_b ∇ E f(x)_b with the partners held fixed. Smoothing (pathwise
    through the noise) and REINFORCE at the same σ must agree in expectation; without the
    slot routing, pathwise would be twice the score function's gradient."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    for p in net.parameters():  # a steep D, so that the gradients stand out of the noise
        nn.init.normal_(p)
    D = PackedDiscriminator(net, (2,), 2).requires_grad_(False)
    f = generator_loss("nonsaturating", D)
    B, R, sigma = 4, 20_000, 0.5
    mu = torch.randn(B, 2, generator=rng(3))
    grads = {}
    for key, hyper in [("smoothing", {"sigma": sigma}),
                       ("score_function", {"sigma": sigma, "baseline": "mean", "samples": 2})]:
        est = estimators.create(key, **hyper)
        params = mu.repeat(R, 1).requires_grad_(True)  # R·B rows, packed R·B/2 apart
        est.surrogate(params, f, generator=rng(4)).sum().backward()
        grads[key] = params.grad.reshape(R, B, 2)
    diff = grads["smoothing"].mean(0) - grads["score_function"].mean(0)
    se = (grads["smoothing"].var(0) / R + grads["score_function"].var(0) / R).sqrt()
    assert (diff.abs() < 5 * se).all(), (diff, se)
    # and it tells a factor of two: "pathwise = 2 × score function" is rejected
    wrong = grads["smoothing"].mean(0) - 2 * grads["score_function"].mean(0)
    wrong_se = (grads["smoothing"].var(0) / R + 4 * grads["score_function"].var(0) / R).sqrt()
    assert (wrong.abs() > 5 * wrong_se).any()


@pytest.mark.parametrize("arch", ["mlp", "pacgan"])
def test_packed_discriminator_refuses_a_batch_not_divisible_by_pack(arch):
    D = tasks.create("ring8", arch=arch, pack=3).make_discriminator()
    with pytest.raises(ValueError, match="pack=3"):
        D(torch.zeros(7, 2))
    with pytest.raises(ValueError, match="multiple of the task's pack=3"):
        train(tasks.create("ring8", arch=arch, pack=3), "pathwise", steps=1, batch_size=8,
              device="cpu")


def test_fixed_data_set():
    task = tasks.create("ring8", dataset_size=50, dataset_seed=3)
    data = task.dataset
    assert data.shape == (50, 2)
    assert torch.equal(data, tasks.create("ring8", dataset_size=50, dataset_seed=3).dataset)
    assert not torch.equal(data, tasks.create("ring8", dataset_size=50).dataset)
    x = task.sample_real(400, rng())
    rows = (x[:, None] == data[None]).all(-1)  # 400 x 50: each draw is a data-set point
    assert rows.any(1).all()
    # 400 uniform draws of 50 points: P(some point never drawn) ≈ 50·(49/50)^400 ≈ 1.5e-2;
    # at least 45 distinct points fails with probability < 1e-6
    assert rows.any(0).sum() >= 45
    assert tasks.create("ring8").dataset is None


@pytest.mark.parametrize("key", ["score_function", "smoothing", "pathwise"])
def test_packed_training_with_estimators(key):
    """A few steps of packed PacGAN training: losses finite, D saw packs of real and of fake
    rows separately (its loss starts near 2·log 2)."""
    hyper = {"score_function": {"sigma": 0.05, "baseline": "mean", "samples": 2},
             "smoothing": {"sigma": 0.05}}.get(key, {})
    task = tasks.create("ring8", arch="pacgan", pack=2, dataset_size=1000)
    h = train(task, key, estimator_hyper=hyper, steps=3, eval_every=3, batch_size=20,
              eval_samples=100, device="cpu", beta1=0.2, lr_g=1e-4, lr_d=1e-4)
    assert h.attrs["status"] == "ok"
    assert abs(h.iloc[-1]["d_loss"] - 2 * math.log(2)) < 0.1
    assert math.isfinite(h.iloc[-1]["g_loss"])


def test_packed_mlp_seeds_batch_like_lone_runs():
    """The default arch packed trains many seeds as one batched model, each seed's run
    identical to its lone run."""
    task = tasks.create("ring8", pack=2, hidden=16)
    kw = {"steps": 4, "eval_every": 2, "eval_samples": 100, "device": "cpu", "batch_size": 16}
    batched = train_seeds(task, "pathwise", [0, 1], batched=True, **kw)
    alone = train(task, "pathwise", seed=1, **kw)
    cols = ["step", "g_loss", "d_loss", "modes", "high_quality", "reverse_kl"]
    pd.testing.assert_frame_equal(batched[1][cols], alone[cols])


# --- PacGAN's batch norm ----------------------------------------------------------------------


def test_blocks_batch_norm_normalises_each_slot_and_tracks_running_averages():
    bn = BlocksBatchNorm(3, slots=2)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    x = torch.randn(8, 3, generator=rng()) * 3 + 1
    out = bn(x)
    stats = []
    for k in range(2):  # slot k: rows [4k, 4k + 4)
        block = x[4 * k:4 * k + 4]
        mean, std = block.mean(0), (block.var(0, unbiased=False) + 1e-4).sqrt()
        stats.append((mean, std))
        expected = (block - mean) / std * bn.weight + bn.bias
        assert torch.allclose(out[4 * k:4 * k + 4], expected, atol=1e-5)
    mean = (stats[0][0] + stats[1][0]) / 2
    std = (stats[0][1] + stats[1][1]) / 2
    # Blocks' population update m·0.05 + p·0.95 from mean 0 and std 1
    assert torch.allclose(bn.running_mean, 0.05 * mean, atol=1e-6)
    assert torch.allclose(bn.running_std, 0.95 + 0.05 * std, atol=1e-6)
    bn.eval()
    y = torch.randn(5, 3, generator=rng(1))  # any batch size at evaluation
    expected = (y - bn.running_mean) / bn.running_std * bn.weight + bn.bias
    assert torch.allclose(bn(y), expected, atol=1e-6)
    before = bn.running_mean.clone()
    bn(y)
    assert torch.equal(bn.running_mean, before)  # evaluation never updates them
    bn.train()
    with pytest.raises(ValueError, match="slots=2"):
        bn(torch.zeros(7, 3))


def test_blocks_batch_norm_under_torch_func_updates_nothing():
    """Gradient measurements call G through vmap(grad(functional_call)): the running
    averages stay as they are, and the gradients are those of plain autograd."""
    from torch.func import functional_call

    torch.manual_seed(0)
    G = tasks.create("grid25", arch="pacgan", batch_norm="pacgan").make_generator((2,))
    before = {k: v.clone() for k, v in G.named_buffers()}
    params = {k: v.detach() for k, v in G.named_parameters()}
    z = torch.randn(3, 10, 2, generator=rng(2))

    def loss(p, zr):
        return functional_call(G, p, (zr,)).square().sum()

    batched = vmap(grad(loss), in_dims=(None, 0))(params, z)
    assert all(torch.equal(v, before[k]) for k, v in G.named_buffers())
    plain = torch.autograd.grad(loss(dict(G.named_parameters()), z[1]), list(G.parameters()))
    for (name, _), g in zip(G.named_parameters(), plain, strict=True):
        scale = g.abs().max()  # float32 rounding of sums over 400 units
        assert torch.allclose(batched[name][1], g, rtol=1e-4, atol=1e-5 * scale), name


def test_pacgan_batch_norm_options():
    G = tasks.create("ring8", arch="pacgan", pack=2, batch_norm="pacgan").make_generator((2,))
    norms = [m for m in G.modules() if isinstance(m, BlocksBatchNorm)]
    assert len(norms) == 4 and all(n.slots == 2 and n.eps == 1e-4 for n in norms)
    assert sorted(dict(G.named_buffers())) == sorted(
        f"body.{i}.running_{s}" for i in (1, 4, 7, 10) for s in ("mean", "std"))
    with pytest.raises(ValueError, match="batch_norm"):
        tasks.create("ring8", batch_norm="pacgan")  # the mlp arch has no batch norm
    with pytest.raises(ValueError, match="batch_norm"):
        tasks.create("ring8", arch="pacgan", batch_norm="layer")


def test_evaluation_reads_the_running_averages():
    """train() evaluates G in eval mode: its samples come from the running averages, not
    from the evaluation batch's statistics."""
    task = tasks.create("grid25", arch="pacgan", batch_norm="pacgan", dataset_size=500)
    seen = {}
    h = train(task, "pathwise", steps=3, eval_every=3, eval_samples=100, batch_size=20,
              device="cpu", checkpoint_steps=[3],
              on_checkpoint=lambda step, st: seen.update(G=st.G))
    G, z = seen["G"], h.attrs["config"]
    z_eval = torch.randn(100, 2, generator=torch.Generator().manual_seed(z["seed"] + 7))
    with torch.no_grad():
        G.eval()
        evaluated = G(z_eval)
        G.train()
        batch_stats = G(z_eval)
    assert torch.equal(h.attrs["samples"], evaluated)
    assert not torch.allclose(h.attrs["samples"], batch_stats)


# --- the protocol's training options ----------------------------------------------------------


def test_epochs_serve_each_pack_once_per_epoch():
    data = torch.arange(10.0).unsqueeze(1)  # point i is (i,)
    epochs = Epochs(data, pack=2, generator=rng(5))
    assert epochs.packs.shape == (2, 10, 1)
    rows = torch.cat([epochs.draw(4) for _ in range(5)])  # 5 batches of 2 packs: one epoch
    packs = [(rows[4 * b + p], rows[4 * b + 2 + p]) for b in range(5) for p in range(2)]
    served = sorted((a.item(), b.item()) for a, b in packs)
    fixed = sorted(zip(epochs.packs[0, :, 0].tolist(), epochs.packs[1, :, 0].tolist(),
                       strict=True))
    assert served == fixed  # every fixed pack once, slot j at rows [jP, (j+1)P)
    assert epochs.epoch == 1
    # a batch across an epoch's end takes the rest of it, then the next epoch's start
    across = Epochs(data, pack=1, generator=rng(6))
    first = torch.cat([across.draw(3) for _ in range(3)])  # 9 of the 10 packs
    assert across.epoch == 1 and across.position == 9
    straddling = across.draw(3)  # the 10th, then 2 of the next epoch
    assert across.epoch == 2 and across.position == 2
    assert sorted(torch.cat([first, straddling[:1]]).flatten().tolist()) == sorted(
        across.packs.flatten().tolist())
    # the packs are a bootstrap of the data: 10 draws of 10 points leave some out
    assert set(epochs.packs.flatten().tolist()) <= set(range(10))
    same = Epochs(data, pack=2, generator=rng(5))
    assert torch.equal(same.packs, Epochs(data, pack=2, generator=rng(5)).packs)
    with pytest.raises(ValueError, match="packs of 2"):
        epochs.draw(3)


def _discriminator_inputs(fakes: str, key: str = "pathwise", hyper=None) -> list:
    task = tasks.create("ring8", arch="pacgan", dataset_size=200)
    seen = []

    def hook(module, args):
        seen.append(args[0].detach().clone())

    cfg = TrainConfig(steps=1, eval_every=1, eval_samples=50, batch_size=10, device="cpu",
                      fakes=fakes)
    from gangrad.train.loop import init_state
    from gangrad.train.step import train_step

    task, est, cfg, _ = __import__("gangrad.train.config", fromlist=["prepare"]).prepare(
        task, key, hyper, cfg, {}, (), None)
    state = init_state(task, est, cfg)
    state.D.register_forward_pre_hook(hook)
    forwards = []
    state.G.register_forward_hook(lambda m, a, o: forwards.append(1))
    train_step(state, task, cfg)
    return seen, len(forwards)


@pytest.mark.parametrize(("key", "hyper"), [("pathwise", None), ("smoothing", {"sigma": 0.1})])
def test_shared_fakes_feed_both_losses_from_one_forward(key, hyper):
    """fakes='shared': G's loss goes through the very fakes D trained on (estimator noise
    included), from one forward pass of G; 'fresh' draws new ones."""
    (_, fake, g_input), forwards = _discriminator_inputs("shared", key, hyper)
    assert torch.equal(fake, g_input) and forwards == 1
    (_, fake, g_input), forwards = _discriminator_inputs("fresh", key, hyper)
    assert not torch.equal(fake, g_input) and forwards == 2


def test_protocol_options_are_validated_by_name():
    task = tasks.create("ring8")
    for cfg, name in [(TrainConfig(fakes="reused"), "fakes"),
                      (TrainConfig(data_order="sorted"), "data_order"),
                      (TrainConfig(fakes="shared", d_steps=0), "fakes"),
                      (TrainConfig(data_order="epochs"), "data_order")]:
        with pytest.raises(ValueError, match=name):
            train(task, "pathwise", config=cfg, steps=1)
    assert TrainConfig().fakes == "fresh" and TrainConfig().data_order == "draws"


def _protocol_runs(pack: int, packs: int, steps: int) -> tuple[list, dict]:
    """Seeds 0 and 4 of PacGAN's protocol (its batch norm, shared fakes, epochs,
    simultaneous updates) batched and alone: histories and final networks."""
    task = tasks.create("grid25", arch="pacgan", pack=pack, dataset_size=300,
                        batch_norm="pacgan")
    kw = {"steps": steps, "eval_every": steps, "eval_samples": 100, "device": "cpu",
          "batch_size": packs * pack, "fakes": "shared", "data_order": "epochs",
          "update_order": "simultaneous", "beta1": 0.8, "lr_g": 1e-4, "lr_d": 1e-4,
          "checkpoint_steps": [steps]}
    nets: dict = {}

    def keep(seed, state, tag):
        nets[seed, tag] = {**{f"G.{k}": v.clone() for k, v in state.G.state_dict().items()},
                           **{f"D.{k}": v.clone() for k, v in state.D.state_dict().items()}}

    batched = train_seeds(task, "pathwise", [0, 4], batched=True, **kw,
                          on_checkpoint=lambda seed, step, st: keep(seed, st, "batch"))
    pairs = []
    for seed, history in zip([0, 4], batched, strict=True):
        alone = train(task, "pathwise", seed=seed, **kw,
                      on_checkpoint=lambda step, st, seed=seed: keep(seed, st, "alone"))
        pairs.append((history.drop(columns="elapsed_s"), alone.drop(columns="elapsed_s"),
                      nets[seed, "batch"], nets[seed, "alone"]))
    return pairs


@pytest.mark.parametrize("pack", [1, 2])
def test_protocol_seeds_batch_bit_for_bit(pack):
    """With 64 packs per batch (whole blocks of the CPU's vectorised elementwise kernels)
    each batched seed's history, final networks and running averages are its lone run's,
    bit for bit, on one thread (as the runner runs a cell): with more, torch splits the
    batch-norm reductions over the stacked seeds differently from a lone seed's."""
    with pinned_threads(1):
        runs = _protocol_runs(pack, packs=64, steps=6)
    for history, alone, a, b in runs:
        pd.testing.assert_frame_equal(history, alone, check_exact=True)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert not torch.equal(a["G.body.1.running_std"], torch.ones(400))


def test_protocol_seeds_batch_to_rounding_at_100_packs():
    """At PacGAN's 100 packs a seed's last rows fall outside the vector blocks, where
    softplus and its derivative round differently (≤ 1 ulp): after one step each batched
    seed's networks are its lone run's to float32 rounding (relative 1e-5), as the module
    doc of gangrad.train.seeds states (on one thread, as the test above)."""
    with pinned_threads(1):
        runs = _protocol_runs(2, packs=100, steps=1)
    for history, alone, a, b in runs:
        pd.testing.assert_frame_equal(history, alone, rtol=1e-5)
        assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-8) for k in a)


# --- suites -----------------------------------------------------------------------------------


def test_suites_accept_the_options():
    suite = parse_suite("""
seeds = [0]
[train]
steps = 400000
batch_size = 200
lr_g = 1e-4
lr_d = 1e-4
beta1 = 0.2
[[tasks]]
key = "ring8"
params = { arch = "pacgan", pack = 2, dataset_size = 100000 }
estimators = ["pathwise", { key = "smoothing", sigma = 0.05 }]
""", "pacgan2")
    assert {c.task_params["pack"] for c in suite.cells} == {2}
    assert all(c.task_params["arch"] == "pacgan" for c in suite.cells)
    with pytest.raises(SuiteError, match="pack"):
        parse_suite("""
[train]
batch_size = 101
[[tasks]]
key = "grid25"
params = { pack = 2 }
estimators = ["pathwise"]
""", "odd")
    with pytest.raises(SuiteError, match="arch"):
        parse_suite("""
[[tasks]]
key = "grid25"
params = { arch = "resnet" }
estimators = ["pathwise"]
""", "bad")


# --- the reproduction -------------------------------------------------------------------------


def test_registered_and_published_rows():
    assert "pacgan-table1" in reproductions.available()
    assert isinstance(reproductions.create("pacgan-table1"), PacGANTable1)
    assert len(PUBLISHED) == 4 and all(len(v) == 3 for v in PUBLISHED.values())
    assert PUBLISHED[("grid25", "PacGAN2")]["modes"] == (23.8, 0.7)


def _tiny(rep: PacGANTable1, **changes):
    return {**rep.quick, "seeds": 2, "steps": 2, "default_gan_steps": 2, "eval_samples": 100,
            "dataset_size": 500, "evaluations": 1, "workers": 1, **changes}


def test_measure_on_a_tiny_protocol_gives_the_schema():
    rep = PacGANTable1()
    settings = _tiny(rep)
    messages = []
    rows, data = rep.measure(settings, 0, messages.append)
    rows = settle(rows, rep.margins, rep.published_dof)
    # per task: 3 metrics x (GAN, PacGAN2, default GAN), then 2 claim rows
    assert len(rows) == 2 * (3 * 3 + 2)
    assert set(data["setting"]) == {"GAN", "PacGAN2", DEFAULT_GAN}
    assert len(messages) == 2 * 3 * 2  # a final line per seed and configuration
    published = [r for r in rows if r.published is not None]
    assert len(published) == 16 and all(r.verdict == "scaled" for r in published)
    assert all(r.agrees is False for r in published)
    comparison = [r for r in rows if r.setting == DEFAULT_GAN]
    assert len(comparison) == 6 and all(r.verdict is None for r in comparison)
    claims = [r for r in rows if r.quantity.startswith(CLAIM)]
    assert [r.quantity for r in claims] == [f"{CLAIM}, modes (ring8)",
                                            f"{CLAIM}, reverse KL (ring8)",
                                            f"{CLAIM}, modes (grid25)",
                                            f"{CLAIM}, reverse KL (grid25)"]
    assert claims[2].published == pytest.approx(23.8 - 17.3)
    assert "claim" in claims[2].note and "paired over 2 seeds" in claims[2].note
    for r in rows:
        assert r.lo <= r.measured <= r.hi
        assert "2 of 400,000 steps" in r.note or r.setting == DEFAULT_GAN
    assert "16 scaled" in rep.summary(rows, settings)
    with pytest.raises(ValueError, match="seeds"):
        rep.measure({**settings, "seeds": 1}, 0, messages.append)
    with pytest.raises(ValueError, match="beta1"):
        rep.measure({**settings, "beta1": [0.5]}, 0, messages.append)


def test_full_protocol_rows_get_verdicts():
    """At the published protocol the rows are settled against the published numbers
    (constructed runs): runs on the published means agree where the published error is
    small beside the margin, and are at worst inconclusive where it is not (the
    published value's own error limits what can be shown); runs 5 modes off differ."""
    rep = PacGANTable1()
    settings = dict(rep.full)
    rng_ = np.random.default_rng(0)
    records = []
    for (key, setting), values in PUBLISHED.items():
        for beta1, shift in ((0.8, 0.0), (0.2, 5.0)):
            for seed in range(10):
                noise = rng_.normal(0, 0.01)
                records.append({"task": key, "setting": setting, "beta1": beta1, "seed": seed,
                                "status": "ok", "step": 400_000,
                                "modes": values["modes"][0] + shift + noise,
                                "high_quality": values["high_quality"][0] / 100 + noise,
                                "reverse_kl": values["reverse_kl"][0] + noise})
    final = pd.DataFrame(records)
    rows = [rep._row(final, key, setting, beta1, metric, settings)
            for key in ("ring8", "grid25") for metric in ("modes", "reverse_kl")
            for beta1 in (0.8, 0.2) for setting in ("GAN", "PacGAN2")]
    assert all(r.verdict is None for r in rows)  # the published protocol: not scaled
    rows = settle(rows, rep.margins, rep.published_dof)
    for r in rows:
        if "0.2" in r.setting and r.quantity.startswith("modes"):
            assert r.verdict == "differs", r
        elif r.published_error <= 0.1 * r.margin:
            assert r.verdict == "agrees", r
        else:
            assert r.verdict in ("agrees", "inconclusive"), r


def test_claim_is_decided_by_paired_comparisons():
    def final(pac_modes, gan_modes, pac_kl, gan_kl):
        return pd.DataFrame([{"task": "grid25", "setting": s, "beta1": 0.8, "seed": i,
                              "status": "ok", "modes": m[i], "reverse_kl": k[i]}
                             for s, m, k in (("PacGAN2", pac_modes, pac_kl),
                                             ("GAN", gan_modes, gan_kl))
                             for i in range(10)])

    base = np.linspace(-1, 1, 10)
    better = final(24 + 0.3 * base, 17 + 0.3 * base[::-1], 0.1 + 0.01 * base,
                   0.7 + 0.01 * base[::-1])
    assert claim(better, "grid25", 0.8)["verdict"] == "supported"
    worse = final(17 + 0.3 * base, 24 + 0.3 * base[::-1], 0.1 + 0.01 * base,
                  0.7 + 0.01 * base[::-1])
    decided = claim(worse, "grid25", 0.8)
    assert decided["verdict"] == "contradicted" and decided["outcomes"]["modes"] == "worse"
    noisy = final(20 + 5 * base, 20 + 5 * base[::-1], 0.5 + 0.5 * base, 0.5 - 0.5 * base)
    assert claim(noisy, "grid25", 0.8)["verdict"] == "undetermined"


def test_budgets_and_cli_validation(capsys):
    rep = PacGANTable1()
    assert set(rep.protocols()) == {"quick", "full", "cpu"}
    cpu = rep.protocols()["cpu"]
    assert cpu["seeds"] >= 10 and cpu["tasks"] == ["grid25"] and cpu["beta1"] == [0.8]
    assert rep.full["steps"] == 400_000 and rep.full["beta1"] == [0.8, 0.2]
    assert main(["reproduce", "pacgan-table1", "--budget", "huge"]) == 2
    assert "not offered by pacgan-table1" in capsys.readouterr().err
    assert main(["reproduce", "bernoulli-toy", "--budget", "cpu"]) == 2
    assert main(["reproduce", "pacgan-table1", "--full", "--budget", "cpu"]) == 2
    assert main(["reproduce", "--list"]) == 0
    assert "quick, full, cpu" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_reproduction(tmp_path):
    rep = reproductions.reproduce("pacgan-table1")
    assert rep.settings["wall_seconds"] < 600
    paths = reproductions.save(rep, tmp_path)
    saved = json.loads(paths["json"].read_text())
    assert saved["name"] == "pacgan-table1" and len(saved["rows"]) == 22
    assert all(list(r) == ROW_FIELDS for r in saved["rows"])
    assert all(r["note"] for r in saved["rows"])  # quick mode says what it scaled
    assert {r["verdict"] for r in saved["rows"]} == {"scaled", None}
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
