"""One conformance test over the whole estimator registry, and the bad-input cases.

Seeds: every test seeds torch's global generator or passes its own torch.Generator.
"""

from __future__ import annotations

import pytest
import torch

from gangrad import estimators
from gangrad.spaces import Continuous, Discrete

SPACES = [Continuous(3), Discrete(4, 3), Discrete(1, 5), Discrete(4, 2), Discrete(1, 2)]
CASES = [
    (key, space)
    for key in estimators.available()
    for space in SPACES
    if estimators.create(key).supports(space)
]


def _graph_leaves(t: torch.Tensor) -> list[torch.Tensor]:
    """The leaf tensors that ``t``'s autograd graph accumulates gradients into."""
    seen, leaves, stack = set(), [], [t.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if hasattr(fn, "variable"):
            leaves.append(fn.variable)
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return leaves


def _cost(space):
    """A smooth cost with a parameter of its own, like a generator loss through D."""
    w = torch.randn(torch.Size(space.shape).numel(), requires_grad=True)

    def f(x):
        return torch.nn.functional.softplus(-(x.flatten(1) @ w))

    return f, w


def _logit(est, w):
    """The logit of the linear D behind ``_cost`` (``f = softplus(−logit)``), for an estimator
    that ``needs_logit`` (no keyword for the others, as callers do)."""
    return estimators.logit_kwargs(est, lambda x: x.flatten(1) @ w)


@pytest.mark.parametrize(("key", "space"), CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_conformance(key, space):
    torch.manual_seed(0)
    est = estimators.create(key)
    B = 16
    shape = est.param_shape(space)
    params = torch.randn(B, *shape, requires_grad=True)
    f, w = _cost(space)

    s = est.surrogate(params, f, **_logit(est, w))
    assert s.shape == (B,)
    assert torch.isfinite(s).all()
    s.mean().backward()
    assert params.grad is not None and params.grad.shape == params.shape
    assert torch.isfinite(params.grad).all()
    assert params.grad.abs().sum() > 0
    leaves = {id(t) for t in _graph_leaves(s)}
    assert id(params) in leaves and leaves <= {id(params), id(w)}
    if not est.differentiable_f:
        assert w.grad is None, "a black-box estimator must not differentiate through f"

    x = est.sample(params)
    assert x.shape == (B, *space.shape)
    assert not x.requires_grad and x.grad_fn is None
    assert torch.isfinite(x).all()
    if isinstance(space, Discrete):
        assert torch.allclose(x.sum(-1), torch.ones(B, space.length))
        if key == "pathwise":
            assert torch.allclose(x, params.detach().softmax(-1))
        else:
            assert ((x == 0) | (x == 1)).all(), "discrete estimators emit one-hot samples"


@pytest.mark.parametrize(("key", "space"), CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_a_diverged_generator_gives_nan_not_an_error(key, space):
    """NaN params (a generator that diverged) flow through as NaN, so training reports a
    divergence with its step instead of failing inside a distribution's checks."""
    torch.manual_seed(0)
    est = estimators.create(key)
    params = torch.full((8, *est.param_shape(space)), float("nan"), requires_grad=True)
    f, w = _cost(space)
    s = est.surrogate(params, f, **_logit(est, w))
    s.mean().backward()
    assert s.shape == (8,) and not torch.isfinite(s).all()
    assert est.sample(params).shape == (8, *space.shape)


@pytest.mark.parametrize(("key", "space"), CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_noise_is_replayable(key, space):
    """Explicit noise, or a seeded generator, reproduces the surrogate and the sample."""
    est = estimators.create(key)
    params = torch.randn(8, *est.param_shape(space), generator=torch.Generator().manual_seed(1))
    f, w = _cost(space)
    noise = est.noise(params, generator=torch.Generator().manual_seed(2))
    a = est.surrogate(params, f, noise=noise, **_logit(est, w))
    b = est.surrogate(params, f, generator=torch.Generator().manual_seed(2), **_logit(est, w))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(est.sample(params, noise=noise),
                               est.sample(params, generator=torch.Generator().manual_seed(2)))


@pytest.mark.parametrize(("key", "space"), CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_surrogate_value_is_the_cost(key, space):
    """Magic-box form: the surrogate's value is f at what f saw."""
    est = estimators.create(key)
    if key == "score_function":
        est = estimators.create(key, baseline="mean", samples=3)
    params = torch.randn(8, *est.param_shape(space))
    f, w = _cost(space)
    seen = []

    def recording(x):
        seen.append(x.detach())
        return f(x)

    s = est.surrogate(params, recording, **_logit(est, w))
    fx = f(seen[0]).detach().reshape(8, -1).mean(1)
    torch.testing.assert_close(s.detach(), fx)


def test_registry_is_sorted_and_complete():
    keys = estimators.available()
    assert keys == sorted(keys)
    assert {"pathwise", "smoothing", "reparam", "score_function", "straight_through",
            "gumbel_softmax", "st_gumbel"} <= set(keys)


def test_unknown_key_lists_available():
    with pytest.raises(KeyError) as info:
        estimators.create("reinforce")
    for key in estimators.available():
        assert key in str(info.value)


@pytest.mark.parametrize(
    ("key", "hyper", "names"),
    [
        ("smoothing", {"sigma": 0.0}, ["sigma", "(0, inf)"]),
        ("smoothing", {"sigma": -1}, ["sigma", "(0, inf)"]),
        ("smoothing", {"sigma": float("nan")}, ["sigma"]),
        ("score_function", {"sigma": 0}, ["sigma", "(0, inf)"]),
        ("gumbel_softmax", {"temperature": 0}, ["temperature", "(0, inf)"]),
        ("st_gumbel", {"temperature": -0.5}, ["temperature", "(0, inf)"]),
        ("score_function", {"baseline": "median"}, ["baseline", "none", "mean", "ema"]),
        ("score_function", {"samples": 0}, ["samples", ">= 1"]),
        ("score_function", {"samples": 1.5}, ["samples"]),
        ("score_function", {"ema_decay": 1.0}, ["ema_decay", "(0, 1)"]),
        ("score_function", {"baseline": "group_norm"}, ["group_norm", "samples >= 2"]),
        ("score_function", {"baseline": "group_mean", "samples": 1}, ["samples >= 2"]),
        ("maligan", {"samples": 0}, ["samples", ">= 1"]),
        ("maligan", {"normalize": "seed"}, ["normalize", "batch", "row"]),
        ("maligan", {"baseline": "ema"}, ["baseline", "mean", "none"]),
        ("maligan", {"normalize": "row"}, ["normalize='row'", "samples >= 2"]),
        ("bgan", {"samples": 1}, ["samples", ">= 2"]),
        ("bgan", {"samples": 2.5}, ["samples"]),
        ("smoothing", {"temperature": 1.0}, ["temperature", "sigma"]),
        ("pathwise", {"sigma": 1.0}, ["sigma"]),
    ],
)
def test_bad_hyperparameters(key, hyper, names):
    with pytest.raises(ValueError) as info:
        estimators.create(key, **hyper)
    for name in names:
        assert name in str(info.value)


def test_unsupported_space_is_named():
    with pytest.raises(ValueError,
                       match=r"smoothing does not support Discrete\(2, 3\).*Continuous"):
        estimators.create("smoothing").param_shape(Discrete(2, 3))
    with pytest.raises(ValueError, match="straight_through does not support Continuous"):
        estimators.create("straight_through").param_shape(Continuous(2))


def test_bad_params_and_noise_are_named():
    est = estimators.create("score_function")
    params = torch.zeros(4, 2, 3)
    with pytest.raises(TypeError, match="floating-point tensor"):
        est.surrogate(params.long(), lambda x: x.sum((1, 2)))
    with pytest.raises(ValueError, match="noise= or generator=, not both"):
        est.surrogate(params, lambda x: x.sum((1, 2)), noise=est.noise(params),
                      generator=torch.Generator())
    with pytest.raises(ValueError, match=r"one noise row per params row"):
        est.surrogate(params, lambda x: x.sum((1, 2)), noise=torch.rand(3, 1, 2, 3))
    with pytest.raises(ValueError, match=r"which take noise of shape \(4, 1, 2, 3\)"):
        est.sample(params, noise=torch.rand(4, 1, 5))
    with pytest.raises(RuntimeError, match="mat1 and mat2"):  # the cost's own error
        est.surrogate(params, lambda x: x.flatten(1) @ torch.zeros(5, 1),
                      noise=est.noise(params))


def test_wrong_param_shape_is_named():
    est = estimators.create("reparam")
    with pytest.raises(ValueError, match=r"\(B, 2, dim\)"):
        est.surrogate(torch.zeros(4, 3), lambda x: x.sum(-1))
    with pytest.raises(ValueError, match=r"must have shape \(B, 2, 3\), got \(4, 3\)"):
        est.surrogate(torch.zeros(4, 3), lambda x: x.sum(-1), space=Continuous(3))
    with pytest.raises(ValueError, match=r"\(B, length, classes\)"):
        estimators.create("st_gumbel").sample(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"Discrete\(2, 3\) must have shape \(B, 2, 3\)"):
        estimators.create("pathwise").sample(torch.zeros(4, 3, 2), space=Discrete(2, 3))


def test_cost_with_wrong_output_shape_is_reported():
    with pytest.raises(ValueError, match=r"f must map x of shape \(N, \.\.\.\) to .* \(N,\)"):
        estimators.create("smoothing").surrogate(torch.zeros(4, 2), lambda x: x.sum())


NEEDS_LOGIT = [k for k in estimators.available() if estimators.create(k).needs_logit]


def test_the_estimators_that_need_the_logit():
    assert set(NEEDS_LOGIT) >= {"maligan", "bgan"}
    assert not estimators.create("score_function").needs_logit


@pytest.mark.parametrize("key", NEEDS_LOGIT)
def test_a_missing_logit_is_named_before_any_work(key):
    est = estimators.create(key)
    calls = []
    with pytest.raises(ValueError, match=r"pass logit=, a callable x -> Tensor\[B\]"):
        est.surrogate(torch.zeros(4, 2, 3), lambda x: calls.append(x) or x.sum((1, 2)))
    assert not calls, "f was called before the missing logit was reported"
    with pytest.raises(ValueError, match=r"logit must map x of shape \(N, \.\.\.\)"):
        est.surrogate(torch.zeros(4, 2, 3), lambda x: x.sum((1, 2)), logit=lambda x: x.sum())
    with pytest.raises(TypeError, match="logit must be a callable"):
        est.surrogate(torch.zeros(4, 2, 3), lambda x: x.sum((1, 2)), logit=1.0)


def test_a_logit_is_ignored_by_estimators_that_do_not_need_it():
    est = estimators.create("score_function", samples=2)
    params = torch.randn(4, 2, 3)
    noise = est.noise(params, generator=torch.Generator().manual_seed(0))
    assert estimators.logit_kwargs(est, lambda x: x.sum((1, 2))) == {}
    torch.testing.assert_close(
        est.surrogate(params, lambda x: x.sum((1, 2)), noise=noise),
        est.surrogate(params, lambda x: x.sum((1, 2)), noise=noise, logit=lambda x: x[0]))


def test_mean_baseline_needs_two_rows():
    est = estimators.create("score_function", baseline="mean")
    with pytest.raises(ValueError, match="at least 2 rows"):
        est.surrogate(torch.zeros(1, 2), lambda x: x.sum(-1))


def test_replace_changes_hyperparameters_and_validates():
    est = estimators.create("smoothing", sigma=1.0)
    assert est.replace(sigma=0.5) == estimators.create("smoothing", sigma=0.5)
    assert est.sigma == 1.0
    with pytest.raises(ValueError, match="sigma"):
        est.replace(sigma=0.0)
    with pytest.raises(ValueError, match="no hyper-parameter 'tau'"):
        est.replace(tau=1.0)
