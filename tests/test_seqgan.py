"""SeqGAN's scale of ``oracle_seq``, its LSTM generator, autoregressive training and the
``seqgan-oracle`` reproduction.

Randomized tests draw from fixed seeds; a frequency or a mean is compared with its exact
value within five of its standard errors (computed from the sample size).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gangrad import estimators, reproductions, tasks
from gangrad.spaces import Discrete
from gangrad.tasks.oracle_seq import OracleLSTM, SeqGenerator, inverse_cdf
from gangrad.train import pretrain_mle, train_autoregressive


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def every_sequence(length: int, vocab: int) -> torch.Tensor:
    """All ``vocab**length`` sequences, symbols ``(vocab**length, length)``."""
    grids = torch.meshgrid(*[torch.arange(vocab)] * length, indexing="ij")
    return torch.stack([g.flatten() for g in grids], 1)


# --- options of oracle_seq ----------------------------------------------------------------


def test_options_set_shapes():
    task = tasks.create("oracle_seq", vocab=50, length=6, hidden=8, embed=4, train_size=30,
                        test_size=7)
    assert task.space == Discrete(6, 50)
    assert task.oracle.embed.shape == (51, 4) and task.oracle.w_ih.shape == (32, 4)
    assert task.oracle.w_hh.shape == (32, 8) and task.oracle.w_out.shape == (50, 8)
    assert task.train_symbols.shape == (30, 6) and task.test_symbols.shape == (7, 6)
    x = task.sample_real(200, rng())
    assert x.shape == (200, 6, 50)
    train = {tuple(s) for s in task.train_symbols.tolist()}
    assert {tuple(s) for s in x.argmax(-1).tolist()} <= train  # resampled from the fixed set
    assert task.nll_oracle(task.train_symbols).shape == (30,)


def test_oracle_parameters_are_seeded_standard_normal():
    task = tasks.create("oracle_seq", vocab=5000, embed=32, test_size=1)
    o = task.oracle
    g = rng(0)  # the oracle's seed; its draws come in this order
    expected = [torch.randn(5001, 32, generator=g), torch.randn(128, 32, generator=g),
                torch.randn(128, 32, generator=g), torch.randn(128, generator=g),
                torch.randn(5000, 32, generator=g), torch.randn(5000, generator=g)]
    got = [o.embed, o.w_ih, o.w_hh, o.bias, o.w_out, o.b_out]
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    w = torch.cat([t.flatten() for t in got]).double()
    n = len(w)  # ≈ 340,000 N(0, 1) values: mean s.e. 1/√n, variance s.e. √(2/n)
    assert abs(w.mean().item()) < 5 / math.sqrt(n)
    assert abs(w.var().item() - 1) < 5 * math.sqrt(2 / n)


def test_defaults_unchanged():
    """The default task draws the same oracle, held-out set and real stream as before the
    scale options existed."""
    task = tasks.create("oracle_seq")
    assert (task.embed, task.train_size, task.test_size) == (None, None, 1000)
    assert task.train_symbols is None
    oracle = OracleLSTM(100, 32, 0)
    assert torch.equal(task.oracle.embed, oracle.embed) and task.oracle.embed.shape == (101, 32)
    test_seed = int(np.random.SeedSequence([0, 1]).generate_state(1)[0])
    assert torch.equal(task.test_symbols, oracle.sample(1000, 20, rng(test_seed)))
    real = task.sample_real(50, rng(3)).argmax(-1)
    assert torch.equal(real, oracle.sample(50, 20, rng(3)))


@pytest.mark.parametrize("option", ["embed", "train_size", "test_size"])
def test_bad_options_are_named(option):
    with pytest.raises(ValueError, match=f"{option} must be an integer >= 1"):
        tasks.create("oracle_seq", **{option: 0})


def test_nll_oracle_checks_symbols():
    task = tasks.create("oracle_seq", vocab=5, length=3, test_size=1)
    with pytest.raises(ValueError, match="shape"):
        task.nll_oracle(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        task.nll_oracle(torch.full((2, 3), 5))


# --- sampling -----------------------------------------------------------------------------


def test_inverse_cdf_frequencies():
    p = torch.tensor([[0.1, 0.0, 0.6, 0.3]]).expand(200_000, 4)
    n = p.shape[0]
    counts = torch.bincount(inverse_cdf(p, rng()), minlength=4).double()
    assert counts[1] == 0
    assert ((counts / n - p[0]).abs() < 5 * (p[0] * (1 - p[0]) / n).sqrt() + 1e-12).all()


@pytest.mark.parametrize("method", ["multinomial", "inverse_cdf"])
def test_oracle_samples_follow_log_prob(method):
    oracle = OracleLSTM(vocab=3, hidden=8, seed=0, embed=5)
    n = 50_000
    symbols = oracle.sample(n, 2, rng(), method=method)
    counts = torch.bincount(symbols[:, 0] * 3 + symbols[:, 1], minlength=9).double()
    p = oracle.log_prob(every_sequence(2, 3)).exp().double()
    assert ((counts / n - p).abs() < 5 * (p * (1 - p) / n).sqrt() + 1e-12).all()


def small_generator(vocab: int = 3, length: int = 3) -> SeqGenerator:
    torch.manual_seed(0)
    return SeqGenerator(vocab, length, embed=4, hidden=5, init_std=1.0)


def test_generator_log_prob_is_normalised_and_sampled():
    G = small_generator()
    every = every_sequence(3, 3)
    p = G.log_prob(every).exp().double()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-5)
    n = 50_000
    s = G.sample(n, rng())
    counts = torch.bincount((s * torch.tensor([9, 3, 1])).sum(1), minlength=27).double()
    assert ((counts / n - p.detach()).abs() < 5 * (p * (1 - p) / n).sqrt().detach()
            + 1e-12).all()


def test_generator_initialisation_and_bad_arguments():
    torch.manual_seed(0)
    G = SeqGenerator(5000, 20)
    w = torch.cat([q.detach().flatten() for q in G.parameters()]).double()
    n = len(w)
    assert abs(w.std().item() - 0.1) < 5 * 0.1 / math.sqrt(2 * n)
    with pytest.raises(ValueError, match="init_std"):
        SeqGenerator(5, 3, init_std=0)
    with pytest.raises(ValueError, match="noise must be uniforms"):
        G(torch.rand(2, 20, 7))


@pytest.mark.parametrize("key", ["score_function", "straight_through", "gumbel_softmax",
                                 "st_gumbel"])
def test_estimators_sample_the_generator_path(key):
    """With the generator's uniforms, each estimator's sample is the generator's own path,
    and the independent-positions log-probability of the path is the LSTM's."""
    G = small_generator(vocab=7, length=5)
    est = estimators.create(key)
    template = torch.empty(64, 5, 7)
    u = est.noise(template, space=Discrete(5, 7), generator=rng())
    logits, path = G.path(u.reshape(64, 5, 7))
    x = est.sample(logits, noise=u, space=Discrete(5, 7))
    assert torch.equal(x.argmax(-1), path)
    along = logits.log_softmax(-1).gather(-1, path[..., None])[..., 0].sum(-1)
    torch.testing.assert_close(along, G.log_prob(path))


def test_reinforce_through_the_path_is_unbiased():
    """REINFORCE per sequence through the shared uniforms: its mean gradient matches the
    exact gradient of E_{p_θ}[f(x)], enumerated over all 27 sequences."""
    G = small_generator()
    space = Discrete(3, 3)
    weights = torch.randn(3, 3, generator=rng(1))

    def f(x):  # B x L x V -> B
        return (x * weights).sum((1, 2)) ** 2

    every = every_sequence(3, 3)
    one_hot = torch.nn.functional.one_hot(every, 3).float()
    exact = torch.autograd.grad((G.log_prob(every).exp() * f(one_hot)).sum(),
                                list(G.parameters()))
    exact = torch.cat([g.flatten() for g in exact])
    est = estimators.create("score_function")
    chunks = []
    g = rng(2)
    for _ in range(20):
        u = est.noise(torch.empty(20_000, 3, 3), space=space, generator=g)
        logits = G(u.reshape(-1, 3, 3))
        s = est.surrogate(logits, f, noise=u, space=space).mean()
        chunks.append(torch.cat([q.flatten() for q in torch.autograd.grad(
            s, list(G.parameters()))]))
    chunks = torch.stack(chunks)  # 20 independent estimates of the gradient
    mean, se = chunks.mean(0), chunks.std(0) / math.sqrt(len(chunks))
    assert ((mean - exact).abs() < 5 * se + 1e-6).all()


# --- training -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_task():
    return tasks.create("oracle_seq", vocab=20, length=6, hidden=16, train_size=500,
                        test_size=10)


def test_pretraining_lowers_nll_oracle(tiny_task):
    torch.manual_seed(0)
    G = SeqGenerator(20, 6, embed=16, hidden=16)
    n = 4000

    def nll(model):
        v = tiny_task.nll_oracle(model.sample(n, rng(5))) / 6
        return v.mean().item(), v.std().item() / math.sqrt(n)

    before, se_before = nll(G)
    losses = pretrain_mle(G, tiny_task.train_symbols, epochs=8, seed=0)
    after, se_after = nll(G)
    floor = (tiny_task.nll_oracle(tiny_task.train_symbols) / 6).mean().item()
    assert losses[-1] < losses[0]
    assert after < before - 5 * math.hypot(se_before, se_after)
    assert after > floor - 0.5  # near the oracle's entropy rate, not below it


def test_train_autoregressive_runs_from_a_given_generator(tiny_task):
    torch.manual_seed(0)
    G = SeqGenerator(20, 6, embed=16, hidden=16)
    before = [p.detach().clone() for p in G.parameters()]
    history, trained = train_autoregressive(
        tiny_task, "score_function", G, estimator_hyper={"baseline": "mean"}, steps=6,
        batch_size=16, eval_every=3, eval_samples=50, d_warmup=2, device="cpu")
    assert history["step"].tolist() == [0, 3, 6]
    assert {"g_loss", "d_loss", "nll_oracle"} <= set(history.columns)
    assert history.attrs["status"] == "ok"
    # starts from G's weights, leaves G itself alone, and moves its copy
    assert all(torch.equal(a, b) for a, b in zip(before, G.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(before, trained.parameters(),
                                                     strict=True))
    first, _ = train_autoregressive(tiny_task, "straight_through", G, steps=1,
                                    batch_size=8, eval_samples=20, device="cpu")
    assert first.loc[0, "nll_oracle"] == pytest.approx(history.loc[0, "nll_oracle"], rel=0.5)


def test_train_autoregressive_refuses_what_it_cannot_train(tiny_task):
    G = SeqGenerator(20, 6)
    with pytest.raises(ValueError, match="uniform per logit"):
        train_autoregressive(tiny_task, "pathwise", G, steps=1, device="cpu")
    with pytest.raises(ValueError, match=r"\(length, vocab\)"):
        train_autoregressive(tiny_task, "straight_through", SeqGenerator(20, 5), steps=1,
                             device="cpu")
    with pytest.raises(ValueError, match="d_warmup"):
        train_autoregressive(tiny_task, "straight_through", G, d_warmup=-1, device="cpu")


# --- the reproduction ---------------------------------------------------------------------


def test_registered():
    assert "seqgan-oracle" in reproductions.available()
    rep = reproductions.create("seqgan-oracle")
    assert rep.full["vocab"] == 5000 and rep.full["mle_epochs"] == 120
    assert rep.quick["vocab"] == 5000 and rep.quick["length"] == 20


@pytest.mark.slow
def test_quick_reproduction_rows(tmp_path, monkeypatch):
    monkeypatch.delenv("GANGRAD_SEQGAN_ORACLE", raising=False)  # gangrad's own oracle
    rep = reproductions.reproduce("seqgan-oracle")
    published = [r for r in rep.rows if r.published is not None]
    assert [r.published for r in published] == [10.310, 9.038, 8.736, 10.1716, 9.42939]
    assert all(r.verdict == "scaled" for r in published)  # another oracle: trends only
    for r in rep.rows:
        assert r.lo <= r.measured <= r.hi and math.isfinite(r.measured)
    oracle = [r for r in rep.rows if r.quantity == "NLL-oracle per token"]
    assert len(oracle) == 9 and len(rep.rows) == 17  # + 2 log epochs, NLL-test of 6
    by = {r.setting.split(" (")[0]: r for r in oracle}
    floor = by["oracle's own samples"]
    unigram = by["random tokens, i.i.d. from the real data's symbol frequencies"]
    assert floor.measured < by["MLE"].measured < unigram.measured < \
        by["uniform random tokens"].measured
    assert "epochs" in by["MLE"].note and "published 120" in by["MLE"].note
    assert "NLL-oracle" in rep.summary or "random tokens" in rep.summary
    paths = reproductions.save(rep, tmp_path)
    assert paths["json"].exists() and paths["md"].exists()
