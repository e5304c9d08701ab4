"""IndeCateR, double control variates, RODEO and ARSM against exact results.

As in ``test_estimators_discrete``, every batch row holds the same parameters, so row
``b``'s gradient ``B·params.grad[b]`` is one independent estimate. References are exact
(enumeration, :mod:`gangrad.exact`); tolerances come from the sample size (``_stats``:
``Z = 5`` standard errors). Seeds are fixed per test; with them the outcome is deterministic.
"Equal evaluations" compares against leave-one-out REINFORCE (``score_function``,
``baseline="mean"``) with as many samples as the estimator calls ``f`` per row.
"""

from __future__ import annotations

import pytest
import torch
from _stats import mean_within, variance_below

from gangrad import estimators, exact, tasks
from gangrad.measure import gradient_stats
from gangrad.spaces import Continuous, Discrete
from gangrad.train import train

R = 100_000
NEW = ["indecater", "double_cv", "rodeo", "arsm"]
BINARY_ONLY = ["double_cv", "rodeo"]

LOGITS = torch.tensor([[0.2, -0.4, 1.0], [0.0, 0.7, -1.2]])  # Discrete(2, 3)
WEIGHTS = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.8, -1.0]])
BIN_LOGITS = torch.tensor([[0.0, 0.5], [0.3, -1.0], [0.0, 2.0]])  # Discrete(3, 2)
BIN_WEIGHTS = torch.tensor([1.0, -2.0, 0.7])
T = 0.45  # the Bernoulli toy: f(b) = (b − t)², Discrete(1, 2), φ = 0


def categorical_cost(x):
    return (x * WEIGHTS.to(x.dtype)).sum((1, 2)) ** 2 + 1.0


def bernoulli_cost(x):
    return (x[..., 1] @ BIN_WEIGHTS.to(x.dtype) - 0.3) ** 2


def toy_cost(x):
    return (x[:, 0, 1] - T) ** 2


PROBLEMS = {"categorical": (LOGITS, categorical_cost), "bernoulli": (BIN_LOGITS, bernoulli_cost),
            "toy": (torch.zeros(1, 2), toy_cost)}


def replicate(logits, n):
    return logits.expand(n, *logits.shape).clone()


def per_row_grads(est, logits, f, n, **kw):
    params = replicate(logits, n).requires_grad_(True)
    est.surrogate(params, f, **kw).mean().backward()
    return (params.grad * n).reshape(n, -1).double()


def exact_grad(logits, f):
    return exact.discrete_gradient(logits.unsqueeze(0), f)[0].reshape(-1)


def unbiased(g, truth):
    """``mean_within``, or equality where every estimate is the same (IndeCateR on one
    position sums it out exactly: zero variance)."""
    truth = truth.double()
    if bool((g.std(0) == 0).all()):
        torch.testing.assert_close(g.mean(0), truth)
    else:
        mean_within(g, truth)


def learned(key, logits, f, steps, **hyper):
    est = estimators.create(key, **hyper)
    for _ in range(steps):
        est.learn(replicate(logits, 64), f)
    return est


def rloo(samples):
    return estimators.create("score_function", baseline="mean", samples=samples)


# -- unbiased against enumeration -----------------------------------------------------------
CASES = [(k, h, p) for k, h in [("indecater", {}), ("indecater", {"samples": 2}), ("arsm", {}),
                                ("double_cv", {}), ("double_cv", {"expansion": "mean"}),
                                ("rodeo", {})]
         for p in PROBLEMS if p != "categorical" or k in ("indecater", "arsm")]


@pytest.mark.parametrize(("key", "hyper", "problem"), CASES,
                         ids=[f"{k}-{'-'.join(map(str, h.values()))}-{p}" for k, h, p in CASES])
def test_unbiased_against_enumeration(key, hyper, problem):
    torch.manual_seed(1)
    logits, f = PROBLEMS[problem]
    g = per_row_grads(estimators.create(key, **hyper), logits, f, R)
    unbiased(g, exact_grad(logits, f))


@pytest.mark.parametrize("key", BINARY_ONLY)
@pytest.mark.parametrize("problem", ["bernoulli", "toy"])
def test_unbiased_after_learning(key, problem):
    """A control variate moved far by learn() (large cv_lr) leaves the mean exact."""
    torch.manual_seed(2)
    logits, f = PROBLEMS[problem]
    est = learned(key, logits, f, 30, cv_lr=0.3)
    assert est.control_ is not None
    mean_within(per_row_grads(est, logits, f, R), exact_grad(logits, f))


# -- evaluation counts ------------------------------------------------------------------------
@pytest.mark.parametrize(("key", "hyper", "space", "count"), [
    ("indecater", {}, Discrete(1, 2), 2), ("indecater", {}, Discrete(4, 3), 1 + 4 * 2),
    ("indecater", {"samples": 3}, Discrete(2, 5), 3 * (1 + 2 * 4)),
    ("arsm", {}, Discrete(1, 2), 2), ("arsm", {}, Discrete(3, 5), 1 + 10),
    ("double_cv", {}, Discrete(4, 2), 2), ("double_cv", {"samples": 3}, Discrete(4, 2), 3),
    ("double_cv", {"expansion": "mean"}, Discrete(4, 2), 3),
    ("rodeo", {"samples": 4}, Discrete(4, 2), 4)])
def test_evaluations_count_the_rows_f_sees(key, hyper, space, count):
    est = estimators.create(key, **hyper)
    assert est.evaluations(space) == count
    B, rows = 6, []
    params = torch.randn(B, *est.param_shape(space))
    est.surrogate(params, lambda x: rows.append(x.shape[0]) or x.sum((1, 2)))
    assert sum(rows) == B * count


def test_f_evaluations_on_the_smallest_case():
    assert {k: estimators.create(k).f_evaluations for k in NEW} == {
        "indecater": 2, "double_cv": 2, "rodeo": 2, "arsm": 2}
    assert {k for k in NEW if estimators.create(k).learns} == {"double_cv", "rodeo"}


# -- stated properties ------------------------------------------------------------------------
def target_cost(target):
    """f(x) = Σ_d |x_d − b_d| on the symbols x_d = argmax of the one-hot rows."""
    def f(x):
        symbols = (x * torch.arange(x.shape[-1], dtype=x.dtype)).sum(-1)
        return (symbols - target).abs().sum(-1)
    f.target = target
    return f


@pytest.mark.slow
@pytest.mark.parametrize(("L", "C"), [(12, 3), (6, 10), (3, 100)])
def test_indecater_variance_below_reinforce_at_equal_evaluations(L, C):
    """The paper's synthetic setting, target b drawn from the sample space. This f is a sum
    over positions, so IndeCateR (each position summed out exactly) is exact here: zero
    variance against RLOO's 1.7, 2.6, 15 (n = 400 replicates)."""
    gen = torch.Generator().manual_seed(L)
    logits = torch.randn(L, C, generator=gen)
    f = target_cost(torch.randint(0, C, (L,), generator=gen).double())
    est = estimators.create("indecater")
    n = 400
    torch.manual_seed(3)
    ic = per_row_grads(est, logits.double(), f, n)
    sf = per_row_grads(rloo(int(est.evaluations(Discrete(L, C)))), logits.double(), f, n)
    # f is separable: E f = Σ_d Σ_k p_d(k)|k − b_d|, differentiated exactly
    theta = logits.double().requires_grad_(True)
    target = f.target
    (theta.softmax(-1) * (torch.arange(C) - target[:, None]).abs()).sum().backward()
    mean_within(ic, theta.grad.reshape(-1))
    mean_within(sf, theta.grad.reshape(-1))
    variance_below(ic, sf)


def test_arsm_with_two_classes_is_arm():
    """Same noise (π = (1 − u, u)), same estimate, row by row."""
    params = replicate(torch.tensor([[0.0, 0.3], [1.0, -1.0], [0.2, 0.9]]), 512)
    u = torch.rand(512, 3, generator=torch.Generator().manual_seed(4))
    pi = torch.stack([1 - u, u], -1)
    arm = per_row_grads(estimators.create("arm"), params[0], bernoulli_cost, 512, noise=u)
    arsm = per_row_grads(estimators.create("arsm"), params[0], bernoulli_cost, 512, noise=pi)
    torch.testing.assert_close(arsm, arm)
    assert torch.equal(estimators.create("arsm").sample(params, noise=pi),
                       estimators.create("arm").sample(params, noise=u))


def paper_toy(x, t=0.499):
    return ((x[..., 1] - t) ** 2).mean(-1)


def test_double_cv_on_the_paper_toy():
    """D = 200, t = 0.499, φ = 0: the expansion at the mean learns β ≈ 1 and beats RLOO at
    equal evaluations (3) by orders of magnitude; the paper's expansion at the samples learns
    β ≈ 0 there (vertex slopes ±2/D are far from the secant (1 − 2t)/D) and stays at
    RLOO's variance, unbiased either way."""
    torch.manual_seed(5)
    logits, n = torch.zeros(200, 2), 4000
    truth = torch.full((200,), (1 - 2 * 0.499) / 4 / 200)
    est = learned("double_cv", logits, paper_toy, 100, cv_lr=3e-2, expansion="mean")
    assert 0.9 < float(est.control_["weight"].detach()) < 1.1
    g = per_row_grads(est.frozen(), logits, paper_toy, n)[:, 1::2]
    base = per_row_grads(rloo(3), logits, paper_toy, n)[:, 1::2]
    mean_within(g, truth)
    assert g.var(0).sum() < 1e-2 * base.var(0).sum()
    at_samples = learned("double_cv", logits, paper_toy, 100, cv_lr=3e-2)
    assert abs(float(at_samples.control_["weight"].detach())) < 0.1


def test_double_cv_at_the_mean_is_exact_for_linear_costs():
    w = torch.tensor([0.5, -1.0, 2.0])
    est = estimators.create("double_cv", expansion="mean")
    est.control_ = {"weight": torch.tensor(1.0)}

    def f(x):
        return x[..., 1] @ w + 3.0

    g = per_row_grads(est, BIN_LOGITS, f, 256)
    torch.testing.assert_close(g, exact_grad(BIN_LOGITS, f).double().expand_as(g),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("key", BINARY_ONLY)
def test_variance_below_rloo_after_adapting(key):
    """300 learn() steps (batches of 64, cv_lr 1e-2) on the Bernoulli problem (rodeo) and on
    a smooth cost over 10 bits (double_cv); RLOO with as many evaluations (2)."""
    torch.manual_seed(6)
    if key == "rodeo":
        logits, f = BIN_LOGITS, bernoulli_cost
    else:
        w = torch.randn(10, generator=torch.Generator().manual_seed(3))
        logits = torch.stack([torch.zeros(10), 0.5 * torch.randn(10)], -1)

        def f(x):
            return torch.nn.functional.softplus(x[..., 1] @ w.to(x.dtype))
    est = learned(key, logits, f, 300, cv_lr=1e-2)
    n = 20_000
    g = per_row_grads(est.frozen(), logits, f, n)
    mean_within(g, exact_grad(logits, f))
    variance_below(g, per_row_grads(rloo(2), logits, f, n))


# -- contract: refusals, learned state, torch.func, training ----------------------------------
@pytest.mark.parametrize(("key", "hyper", "names"), [
    ("indecater", {"samples": 0}, ["samples", ">= 1"]),
    ("double_cv", {"samples": 1}, ["samples", ">= 2"]),
    ("double_cv", {"expansion": "zero"}, ["expansion", "samples", "mean"]),
    ("double_cv", {"cv_lr": 0.0}, ["cv_lr", "(0, inf)"]),
    ("rodeo", {"samples": 1}, ["samples", ">= 2"]),
    ("rodeo", {"hidden": 0}, ["hidden", ">= 1"]),
    ("rodeo", {"cv_lr": -1.0}, ["cv_lr", "(0, inf)"]),
    ("arsm", {"samples": 2}, ["no hyper-parameter", "samples"])])
def test_bad_hyperparameters(key, hyper, names):
    with pytest.raises(ValueError) as info:
        estimators.create(key, **hyper)
    for name in names:
        assert name in str(info.value)


@pytest.mark.parametrize("key", NEW)
def test_unsupported_spaces_are_named(key):
    est = estimators.create(key)
    with pytest.raises(ValueError, match=rf"{key} does not support Continuous.*Discrete"):
        est.param_shape(Continuous(2))
    if key in BINARY_ONLY:
        with pytest.raises(ValueError,
                           match=r"does not support Discrete\(2, 3\).*Discrete\(n, 2\)"):
            est.param_shape(Discrete(2, 3))
    else:
        assert est.supports(Discrete(2, 7))


@pytest.mark.parametrize("key", BINARY_ONLY)
def test_learned_state(key):
    frozen = estimators.create(key).frozen()
    frozen.learn(replicate(BIN_LOGITS, 32), bernoulli_cost)
    assert frozen.control_ is None, "a frozen copy learns nothing"
    est = estimators.create(key)
    est.surrogate(replicate(BIN_LOGITS, 8), bernoulli_cost)
    assert est.control_ is None, "the surrogate creates no state"
    est = learned(key, BIN_LOGITS, bernoulli_cost, 2, cv_lr=0.1)
    start = est._init_control((3, 2))
    assert any(not torch.allclose(v.detach().double(), start[k]) for k, v in est.control_.items())
    twin = est.frozen()
    assert twin.control_ is est.control_
    snapshot = {k: v.detach().clone() for k, v in est.control_.items()}
    twin.learn(replicate(BIN_LOGITS, 32), bernoulli_cost)
    assert all(torch.equal(snapshot[k], v) for k, v in est.control_.items())
    est.reset()
    assert est.control_ is None


@pytest.mark.parametrize("key", ["indecater", "arsm"])
def test_gradient_stats_on_categorical_unbiased(key):
    df = gradient_stats("categorical", [key], replicates=500, seed=0, timing=False)
    total = df[df["layer"] == "total"].iloc[0]
    assert total["reference"] == "enumeration"
    # IndeCateR sums one position out exactly: zero variance, bias at rounding level
    assert total["bias_lo"] == 0.0 or total["bias"] < 1e-6
    assert total["f_evals"] == estimators.create(key).evaluations(
        tasks.create("categorical").space)


@pytest.mark.parametrize("key", [k for k in NEW if k not in BINARY_ONLY])
def test_trains_on_categorical(key):  # binary ones: test_estimators_discrete, binary_digits
    h = train("categorical", key, steps=3, eval_every=3, eval_samples=64, batch_size=16,
              device="cpu")
    assert h.attrs["status"] == "ok"
