"""SeqGAN's released oracle as an option (a synthetic file of the same structure) and its
roll-out estimator, ``seqgan_rollout``.

Randomized tests draw from fixed seeds; an estimator's mean is compared with the exact value
within five of its standard errors, computed from independent chunks of the sample (the
seeding note of ``tests/test_seqgan.py``).
"""

from __future__ import annotations

import math
import os
import pickle

import numpy as np
import pytest
import torch

from gangrad import estimators, exact, reproductions, tasks
from gangrad.estimators.seqgan_rollout import _inverse_cdf
from gangrad.measure.gradients import draw_noise, loop_gradients, replicate_gradients
from gangrad.reproductions.seqgan_oracle import ENV_ORACLE, MLE_LOG, SeqGANOracle
from gangrad.spaces import Discrete
from gangrad.tasks._seqgan_oracle import SEQGAN_ORDER, RefusedPickle, load_arrays
from gangrad.tasks.oracle_seq import OracleLSTM, SeqGenerator, inverse_cdf_at
from gangrad.train import train_autoregressive
from gangrad.train.autoregressive import AutoregressiveSeed
from gangrad.train.config import TrainConfig
from gangrad.train.step import TrainState, gan_step


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def every_sequence(length: int, vocab: int) -> torch.Tensor:
    grids = torch.meshgrid(*[torch.arange(vocab)] * length, indexing="ij")
    return torch.stack([g.flatten() for g in grids], 1)


# --- the released oracle's file format ----------------------------------------------------

V, E, H = 7, 3, 4  # a small oracle of SeqGAN's structure


def seqgan_arrays(seed: int = 0, vocab: int = V, embed: int = E,
                  hidden: int = H) -> list[np.ndarray]:
    """Random float32 arrays in the order and shapes of SeqGAN's target_params pickle."""
    r = np.random.default_rng(seed)
    shapes = {"g_embeddings": (vocab, embed), "Wo": (hidden, vocab), "bo": (vocab,)}
    for gate in ("i", "f", "og", "c"):
        shapes |= {f"W{gate}": (embed, hidden), f"U{gate}": (hidden, hidden),
                   f"b{gate}": (hidden,)}
    return [r.normal(size=shapes[name]).astype(np.float32) for name in SEQGAN_ORDER]


def seqgan_nll(arrays: list[np.ndarray], symbols: np.ndarray) -> np.ndarray:
    """``-log p(x)`` by SeqGAN's target LSTM equations (target_lstm.py), in numpy float64:
    start token 0, gates i, f, o and the new memory from ``x W + h U + b``, logits
    ``h Wo + bo``."""
    a = dict(zip(SEQGAN_ORDER, (np.asarray(x, np.float64) for x in arrays), strict=True))

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    n = len(symbols)
    h, c = np.zeros((n, H)), np.zeros((n, H))
    x = a["g_embeddings"][np.zeros(n, dtype=int)]
    nll = np.zeros(n)
    for t in range(symbols.shape[1]):
        i = sigmoid(x @ a["Wi"] + h @ a["Ui"] + a["bi"])
        f = sigmoid(x @ a["Wf"] + h @ a["Uf"] + a["bf"])
        o = sigmoid(x @ a["Wog"] + h @ a["Uog"] + a["bog"])
        c = f * c + i * np.tanh(x @ a["Wc"] + h @ a["Uc"] + a["bc"])
        h = o * np.tanh(c)
        logits = h @ a["Wo"] + a["bo"]
        top = logits.max(1, keepdims=True)
        log_p = logits - top - np.log(np.exp(logits - top).sum(1, keepdims=True))
        nll -= log_p[np.arange(n), symbols[:, t]]
        x = a["g_embeddings"][symbols[:, t]]
    return nll


@pytest.fixture
def oracle_file(tmp_path):
    path = tmp_path / "target_params_py3.pkl"
    path.write_bytes(pickle.dumps(seqgan_arrays(), protocol=3))
    return path


def test_released_oracle_file_gives_seqgans_nll(oracle_file):
    task = tasks.create("oracle_seq", vocab=V, length=5, hidden=H, embed=E, test_size=3,
                        train_size=20, oracle_file=str(oracle_file))
    assert task.oracle_file == str(oracle_file)
    symbols = torch.randint(V, (400, 5), generator=rng())
    expected = seqgan_nll(seqgan_arrays(), symbols.numpy())
    np.testing.assert_allclose(task.nll_oracle(symbols).numpy(), expected, rtol=1e-5)
    # normalised: the probabilities of every sequence of length 3 sum to one
    oracle = OracleLSTM.from_seqgan(oracle_file)
    assert oracle.log_prob(every_sequence(3, V)).double().exp().sum().item() == \
        pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(-oracle.log_prob(task.train_symbols).numpy(),
                               seqgan_nll(seqgan_arrays(), task.train_symbols.numpy()),
                               rtol=1e-5)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_every_pickle_protocol_of_numpy_arrays_loads(tmp_path, protocol):
    path = tmp_path / "oracle.pkl"
    path.write_bytes(pickle.dumps(seqgan_arrays(), protocol=protocol))
    for got, want in zip(load_arrays(path), seqgan_arrays(), strict=True):
        np.testing.assert_array_equal(got, want)


class _Runs:
    """An object whose pickle calls ``os.system`` when loaded by a plain unpickler."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_any_other_global_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([_Runs(f"touch {marker}"), *seqgan_arrays()[1:]]))
    with pytest.raises(RefusedPickle, match=r"refused to load global (posix|nt|os)\.system"):
        load_arrays(path)
    with pytest.raises(ValueError, match="numpy arrays only"):  # RefusedPickle is one
        tasks.create("oracle_seq", vocab=V, hidden=H, embed=E, oracle_file=str(path))
    assert not marker.exists()
    path.write_bytes(pickle.dumps({"weights": seqgan_arrays()}))  # a dict needs no global
    with pytest.raises(ValueError, match="a list of 15 arrays"):
        load_arrays(path)
    path.write_bytes(pickle.dumps(seqgan_arrays()[:14]))
    with pytest.raises(ValueError, match="of length 14"):
        load_arrays(path)
    path.write_bytes(pickle.dumps([np.zeros(3, dtype=object), *seqgan_arrays()[1:]]))
    with pytest.raises(ValueError, match="g_embeddings must be a floating-point"):
        load_arrays(path)


def test_inconsistent_or_mismatched_oracles_are_named(tmp_path, oracle_file):
    arrays = seqgan_arrays()
    arrays[2] = np.zeros((H, H + 1), np.float32)  # Ui
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(arrays))
    with pytest.raises(ValueError, match=r"Ui \(4, 5\) \(expected \(4, 4\)\)"):
        OracleLSTM.from_seqgan(path)
    with pytest.raises(ValueError, match=r"vocabulary 7.*pass vocab=7 \(got 100\)"):
        tasks.create("oracle_seq", hidden=H, embed=E, oracle_file=str(oracle_file))
    with pytest.raises(FileNotFoundError, match=r"target_params_py3\.pkl"):
        tasks.create("oracle_seq", oracle_file=str(tmp_path / "missing.pkl"))


# --- the roll-out estimator ----------------------------------------------------------------


def small_generator(vocab: int = 3, length: int = 3, seed: int = 0) -> SeqGenerator:
    torch.manual_seed(seed)
    return SeqGenerator(vocab, length, embed=4, hidden=5, init_std=1.0)


WEIGHTS = torch.randn(3, 3, generator=rng(1))


def cost(x):  # B x L x V -> B: the reward arrives at the sequence's end only
    return (x * WEIGHTS).sum((1, 2)) ** 2


def flat(grads) -> torch.Tensor:
    return torch.cat([g.flatten() for g in grads])


def rollout_chunks(G, rollout, est, chunks: int = 20, n: int = 20_000) -> torch.Tensor:
    """``chunks`` independent estimates of ∇_θ E[f], each the mean over ``n`` sequences."""
    space = Discrete(G.length, G.vocab)
    g = rng(2)
    out = []
    for _ in range(chunks):
        u = est.noise(torch.empty(n, *space.shape), space=space, generator=g)
        logits, _ = G.path(u[..., :G.vocab])
        s = est.surrogate(logits, cost, noise=u, space=space, rollout=rollout).mean()
        out.append(flat(torch.autograd.grad(s, list(G.parameters()))))
    return torch.stack(out)


def exact_gradient(G) -> torch.Tensor:
    every = every_sequence(G.length, G.vocab)
    one_hot = torch.nn.functional.one_hot(every, G.vocab).float()
    return flat(torch.autograd.grad((G.log_prob(every).exp() * cost(one_hot)).sum(),
                                    list(G.parameters())))


def test_rollout_gradient_of_an_autoregressive_generator_is_the_policy_gradient():
    """With the generator itself as roll-out policy, the mean of SeqGAN's estimate is the
    exact ∇_θ E[f] of an LSTM over 3 symbols and 3 positions (all 27 sequences)."""
    G = small_generator()
    est = estimators.create("seqgan_rollout", rollouts=2)
    chunks = rollout_chunks(G, G.complete, est)
    mean, se = chunks.mean(0), chunks.std(0) / math.sqrt(len(chunks))
    exact_grad = exact_gradient(G)
    assert ((mean - exact_grad).abs() < 5 * se + 1e-6).all()
    assert (exact_grad.abs() > 10 * se).sum() >= 10  # the test has power


def test_a_stale_rollout_policy_biases_it():
    """Roll-outs from another network value the prefixes wrongly: the mean moves away from
    the exact gradient by many standard errors (what a delayed copy of G risks)."""
    G, other = small_generator(), small_generator(seed=7)
    est = estimators.create("seqgan_rollout", rollouts=2)
    chunks = rollout_chunks(G, other.complete, est, chunks=10)
    mean, se = chunks.mean(0), chunks.std(0) / math.sqrt(len(chunks))
    assert ((mean - exact_gradient(G)).abs() / (se + 1e-6)).max() > 10


def test_rollout_gradient_with_independent_positions_is_exact_in_mean():
    """Without a roll-out callable the estimator completes prefixes from params (the
    generator's own law when positions are independent given z): unbiased for the exact
    gradient, enumerated over 27 outcomes per row."""
    params = torch.randn(4, 3, 3, generator=rng(3), requires_grad=True)
    exact_grad, = torch.autograd.grad(exact.discrete_expectation(params, cost).sum(), params)
    est = estimators.create("seqgan_rollout", rollouts=3)
    g = rng(4)
    chunks = []
    for _ in range(20):
        big = params.repeat(5000, 1, 1)  # row r*4 + b
        s = est.surrogate(big, cost, generator=g).reshape(5000, 4).mean(0).sum()
        chunks.append(torch.autograd.grad(s, params)[0].flatten())
    chunks = torch.stack(chunks)
    mean, se = chunks.mean(0), chunks.std(0) / math.sqrt(len(chunks))
    assert ((mean - exact_grad.flatten()).abs() < 5 * se + 1e-6).all()


def test_completions_follow_the_generator_given_their_prefix():
    """``SeqGenerator.complete`` keeps each prefix and draws the rest from p_θ(· | prefix):
    the frequencies of the completions of one sequence match the exact conditionals."""
    G = small_generator()
    y = torch.tensor([[2, 0, 1]])
    n = 40_000
    done = G.complete(y.repeat(n, 1), torch.rand(n, 2, 3, generator=rng(5)))
    assert done.shape == (n, 2, 3)
    assert (done[:, 0, 0] == 2).all() and (done[:, 1, :2] == torch.tensor([2, 0])).all()
    every = every_sequence(3, 3)
    with torch.no_grad():
        p = G.log_prob(every).exp().double()
    for t in (1, 2):
        keep = (every[:, :t] == y[0, :t]).all(1)  # sequences with this prefix
        conditional = p[keep] / p[keep].sum()
        codes = (done[:, t - 1] * torch.tensor([9, 3, 1])).sum(1)
        counts = torch.bincount(codes, minlength=27).double()[keep]
        assert counts.sum() == n
        assert ((counts / n - conditional).abs()
                < 5 * (conditional * (1 - conditional) / n).sqrt() + 1e-12).all()


def test_inverse_cdf_helpers_agree():
    probs = torch.rand(500, 9, generator=rng(6)).softmax(-1)
    u = torch.rand(500, generator=rng(7))
    assert torch.equal(_inverse_cdf(probs, u), inverse_cdf_at(probs, u))


def test_cost_value_and_hyper_parameters():
    est = estimators.create("seqgan_rollout", rollouts=5, update_rate=0.2)
    assert est.takes_rollout and not est.differentiable_f and est.rows_independent
    assert est.f_evaluations == 1
    assert est.evaluations(Discrete(20, 5000)) == 1 + 5 * 19
    assert estimators.create("seqgan_rollout").evaluations(Discrete(1, 4)) == 1
    calls = []

    def counting(x):
        calls.append(x.shape[0])
        return cost(x)

    params = torch.randn(6, 3, 3)
    s = estimators.create("seqgan_rollout", rollouts=5).surrogate(params, counting)
    assert calls == [6] + [5 * 6] * 2  # the sample, then N completions of each prefix
    assert sum(calls) / 6 == estimators.create("seqgan_rollout", rollouts=5).evaluations(
        Discrete(3, 3))
    assert s.shape == (6,)
    for bad, match in (({"rollouts": 0}, "rollouts must be an integer >= 1"),
                       ({"rollouts": 2.5}, "rollouts"),
                       ({"update_rate": 0.0}, r"update_rate must be a number in \(0, 1\]"),
                       ({"update_rate": 1.5}, r"\(0, 1\]"),
                       ({"update_rate": True}, "update_rate")):
        with pytest.raises(ValueError, match=match):
            estimators.create("seqgan_rollout", **bad)
    with pytest.raises(ValueError, match=r"update_rate=0\.2 < 1 needs a roll-out network"):
        est.surrogate(params, cost)
    with pytest.raises(TypeError, match="rollout must be a callable"):
        est.surrogate(params, cost, rollout="G")
    with pytest.raises(ValueError, match=r"rollout must return completions of shape"):
        est.surrogate(params, cost, rollout=lambda s, u: s)


def test_replicates_under_vmap_match_the_loop():
    t = tasks.create("oracle_seq", vocab=6, length=4, test_size=2)
    est = estimators.create("seqgan_rollout", rollouts=3)
    torch.manual_seed(0)
    G = t.make_generator(est.param_shape(t.space))
    D = t.make_discriminator().requires_grad_(False)

    def f(x):
        return torch.nn.functional.softplus(-D(x))

    z = t.sample_latent(5, generator=rng(1))
    noise = draw_noise(est, G(z), 4, t.space, rng(2))
    batched = replicate_gradients(est, G, f, z, noise, t.space)
    looped = loop_gradients(est, G, f, z, noise, t.space)
    for name in looped:
        torch.testing.assert_close(batched[name], looped[name], rtol=1e-4, atol=1e-6)


# --- training an autoregressive generator with roll-outs ---------------------------------


@pytest.fixture(scope="module")
def tiny_task():
    return tasks.create("oracle_seq", vocab=20, length=6, hidden=16, train_size=500,
                        test_size=10)


def test_rollout_network_lags_the_generator_by_the_update_rate(tiny_task):
    """After each G step, β ← (1 − r)·β + r·θ; with r = 1 the roll-outs come from G."""
    torch.manual_seed(0)
    G = SeqGenerator(20, 6, embed=8, hidden=8)
    cfg = TrainConfig(steps=3, batch_size=8, lr_g=0.05, d_steps=1, device="cpu",
                      loss="probability").resolved(tiny_task)
    est = estimators.create("seqgan_rollout", rollouts=2, update_rate=0.25)
    D = tiny_task.make_discriminator()
    state = TrainState(G=G, D=D, opt_g=torch.optim.Adam(G.parameters(), 0.05),
                       opt_d=torch.optim.Adam(D.parameters(), 1e-3), estimator=est,
                       rng=rng(1), data_rng=rng(2), noise_rng=rng(3))
    seeds = AutoregressiveSeed(state, tiny_task, cfg)
    beta = seeds._rollout_net
    assert beta is not G
    expected = [p.detach().clone() for p in G.parameters()]
    for _ in range(3):
        gan_step(seeds)
        expected = [0.75 * b + 0.25 * p.detach() for b, p in zip(expected, G.parameters(),
                                                               strict=True)]
        for b, e in zip(beta.parameters(), expected, strict=True):
            torch.testing.assert_close(b.detach(), e)
    assert not all(torch.equal(b, p) for b, p in zip(beta.parameters(), G.parameters(),
                                                     strict=True))
    assert seeds.rollout().__self__ is beta
    same = AutoregressiveSeed(
        TrainState(G=G, D=D, opt_g=state.opt_g, opt_d=state.opt_d,
                   estimator=estimators.create("seqgan_rollout"), rng=rng(1), data_rng=rng(2),
                   noise_rng=rng(3)), tiny_task, cfg)
    assert same.rollout().__self__ is G


def test_train_autoregressive_with_rollouts(tiny_task):
    torch.manual_seed(0)
    G = SeqGenerator(20, 6, embed=16, hidden=16)
    history, trained = train_autoregressive(
        tiny_task, "seqgan_rollout", G, estimator_hyper={"rollouts": 2, "update_rate": 0.5},
        steps=4, batch_size=8, eval_every=2, eval_samples=40, d_warmup=1, device="cpu",
        loss="probability", lr_g=0.01)
    assert history.attrs["status"] == "ok" and history["step"].tolist() == [0, 2, 4]
    assert history.attrs["estimator_hyper"] == {"rollouts": 2, "update_rate": 0.5}
    assert (history["g_loss"].dropna() < 0).all()  # the probability loss is -D(x)
    assert not all(torch.equal(a, b) for a, b in zip(G.parameters(), trained.parameters(),
                                                     strict=True))


# --- the reproduction, at a tiny protocol -------------------------------------------------

TINY = {"vocab": 9, "length": 5, "hidden": 4, "train_size": 300, "eval_samples": 400,
        "mle_epochs": 6, "mle_batch": 32, "mle_lr": 0.01, "adv_steps": 2, "adv_batch": 8,
        "lr_g": 1e-3, "lr_d": 1e-3, "d_steps": 1, "d_warmup": 1, "seqgan_steps": 2,
        "seqgan_batch": 4, "rollouts": 2, "seqgan_lr": 0.01, "seqgan_beta1": 0.9,
        "seqgan_lr_d": 1e-4, "seqgan_d_steps": 1, "seqgan_d_warmup": 1,
        "seqgan_eval_every": 1, "curve_samples": 40, "seeds": 2, "oracle_seed": 0}


class TinySeqGAN(SeqGANOracle):
    quick = {**TINY, "mle_epochs": 1, "seeds": 1}
    full = TINY


def test_reproduction_rows_with_and_without_the_released_oracle(tmp_path, monkeypatch):
    path = tmp_path / "target_params_py3.pkl"
    path.write_bytes(pickle.dumps(seqgan_arrays(vocab=9, embed=4, hidden=4), protocol=3))
    monkeypatch.delenv(ENV_ORACLE, raising=False)
    assert SeqGANOracle().oracle_file is None
    monkeypatch.setenv(ENV_ORACLE, str(path))
    assert reproductions.create("seqgan-oracle").oracle_file == str(path)

    rep = TinySeqGAN().reproduce(full=True)  # the file, from the environment
    assert rep.settings["oracle"].startswith("SeqGAN's released oracle (target_params_py3.pkl")
    published = {r.setting: r for r in rep.rows if r.published is not None}
    assert set(published) == {
        "random tokens, i.i.d. from the real data's symbol frequencies", "MLE",
        "SeqGAN: REINFORCE with Monte Carlo roll-outs (seqgan_rollout), from MLE",
        "MLE after epoch 1", "MLE after epoch 6"}
    assert published["MLE after epoch 6"].published == MLE_LOG[6]
    for setting in ("random tokens, i.i.d. from the real data's symbol frequencies", "MLE",
                    "MLE after epoch 1", "MLE after epoch 6",
                    "SeqGAN: REINFORCE with Monte Carlo roll-outs (seqgan_rollout), from MLE"):
        row = published[setting]
        assert row.verdict in ("agrees", "differs", "inconclusive") and row.margin == 0.1
        assert row.dof == 1 and row.se > 0  # two seeds
    assert "SeqGAN's log" in rep.summary and "Verdicts over 5 published rows" in rep.summary
    quick = TinySeqGAN().reproduce()  # 1 of 6 MLE epochs: MLE and SeqGAN are cut down
    assert [r.verdict for r in quick.rows if r.published is not None][1:3] == ["scaled"] * 2
    curve = rep.data[rep.data["phase"] == "adversarial"]
    assert set(curve["setting"]) == {"SeqGAN: REINFORCE with Monte Carlo roll-outs",
                                     *("REINFORCE per sequence, leave-one-out baseline",
                                       "Gumbel-softmax (temperature 0.5)", "straight-through")}
    saved = reproductions.save(rep, tmp_path / "with")
    assert saved["md"].exists()

    monkeypatch.delenv(ENV_ORACLE)
    rep = TinySeqGAN().reproduce()  # gangrad's own oracle: every published row is a trend
    assert rep.settings["oracle"] == "gangrad's random oracle (oracle_seed 0)"
    published = [r for r in rep.rows if r.published is not None]
    assert [r.setting for r in published if r.quantity.startswith("NLL-oracle per token (MLE")
            ] == ["MLE after epoch 1"]
    assert all(r.verdict == "scaled" and "GANGRAD_SEQGAN_ORACLE" in r.note for r in published)
    assert all(r.verdict is None for r in rep.rows if r.published is None)
