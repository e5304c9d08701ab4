"""PacGAN's networks and packing as options of ``ring8`` / ``grid25``, and the
``pacgan-table1`` reproduction.

Seeding: networks from ``torch.manual_seed``, data and noise from
``torch.Generator().manual_seed(...)``. The one statistical test compares two unbiased
estimators' means over ``R`` replicates within 5 standard errors of their difference, the
standard error estimated from the replicates.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import pytest
import torch
from torch import nn
from torch.func import grad, vmap

from gangrad import estimators, reproductions, tasks
from gangrad.losses import generator_loss
from gangrad.reproductions.pacgan_table1 import DEFAULT_GAN, PUBLISHED, PacGANTable1
from gangrad.runner.suite import SuiteError, parse_suite
from gangrad.tasks._pacgan import INIT_STD, Maxout, PackedDiscriminator
from gangrad.train import train, train_seeds

ROW_FIELDS = ["quantity", "setting", "published", "published_error", "measured", "lo", "hi",
              "agrees", "note"]


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
    """The default arch packed still trains many seeds as one batched model, each seed's run
    identical to its lone run; the PacGAN arch (batch norm) trains seed by seed."""
    task = tasks.create("ring8", pack=2, hidden=16)
    kw = {"steps": 4, "eval_every": 2, "eval_samples": 100, "device": "cpu", "batch_size": 16}
    batched = train_seeds(task, "pathwise", [0, 1], batched=True, **kw)
    alone = train(task, "pathwise", seed=1, **kw)
    cols = ["step", "g_loss", "d_loss", "modes", "high_quality", "reverse_kl"]
    pd.testing.assert_frame_equal(batched[1][cols], alone[cols])
    with pytest.raises(ValueError, match="batch norm"):
        train_seeds(tasks.create("ring8", arch="pacgan"), "pathwise", [0, 1], batched=True,
                    **kw)


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


def test_measure_on_a_tiny_protocol_gives_the_schema():
    rep = PacGANTable1()
    settings = {**rep.quick, "seeds": 2, "steps": 2, "default_gan_steps": 2,
                "eval_samples": 100, "dataset_size": 500}
    messages = []
    rows, data = rep.measure(settings, 0, messages.append)
    assert len(rows) == 18 and len(messages) == len(data) == 12
    assert [f.name for f in dataclasses.fields(rows[0])] == ROW_FIELDS
    published = [r for r in rows if r.published is not None]
    assert len(published) == 12 and all(isinstance(r.agrees, bool) for r in published)
    comparison = [r for r in rows if r.setting == DEFAULT_GAN]
    assert len(comparison) == 6 and all(r.agrees is None for r in comparison)
    for r in rows:
        assert r.lo <= r.measured <= r.hi
        assert "2 of 400,000 steps" in r.note or r.setting == DEFAULT_GAN
    assert rep.summary(rows, settings).startswith(
        f"{sum(bool(r.agrees) for r in published)} of 12")
    with pytest.raises(ValueError, match="seeds"):
        rep.measure({**settings, "seeds": 1}, 0, messages.append)


@pytest.mark.slow
def test_quick_reproduction(tmp_path):
    rep = reproductions.reproduce("pacgan-table1")
    assert rep.settings["wall_seconds"] < 600
    paths = reproductions.save(rep, tmp_path)
    saved = json.loads(paths["json"].read_text())
    assert saved["name"] == "pacgan-table1" and len(saved["rows"]) == 18
    assert all(list(r) == ROW_FIELDS for r in saved["rows"])
    assert all(r["note"] for r in saved["rows"])  # quick mode says what it scaled
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
