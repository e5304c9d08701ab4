"""Estimators against closed-form and enumerated gradients.

Each batch row holds the same parameters, so row ``b``'s gradient ``B·params.grad[b]`` is
one independent single-sample estimate: R rows give R replicates in one backward pass.
Tolerances come from the sample size (see ``_stats``); seeds are fixed per test.
"""

from __future__ import annotations

import pytest
import torch
from _stats import mean_within, variance_below, variance_within

from gangrad import estimators, exact
from gangrad.spaces import Discrete

R = 200_000
MU, SIGMA = 1.0, 1.0


def per_row_grads(est, params, f, **kw):
    """Replicate estimates: B x (param_shape), the gradient each row contributes."""
    params = params.detach().requires_grad_(True)
    est.surrogate(params, f, **kw).mean().backward()
    return params.grad * params.shape[0]


def quadratic(k):
    return lambda x: ((x - k) ** 2).sum(-1)


def normal_moment(h, loc=MU, scale=SIGMA):
    """E[h(x)], x ~ N(loc, scale²), by 40-point Gauss–Hermite (exact for these polynomials)."""
    nodes, weights = exact.gauss_hermite(40)
    return float((weights * h(loc + scale * nodes)).sum())


def score_variance(k, baseline=0.0):
    """Per-sample variance of (f(x) − b)(x − μ)/σ² for f = (x − k)²."""
    mean = 2 * (MU - k)
    second = normal_moment(lambda x: ((x - k) ** 2 - baseline) ** 2 * (x - MU) ** 2)
    return second / SIGMA**4 - mean**2


@pytest.mark.parametrize("k", [1.0, 0.0, -3.0])
def test_closed_form_variances_are_the_known_values(k):
    """The quadrature behind the score-function row: 15, 30, 495 at μ = σ = 1."""
    assert score_variance(k) == pytest.approx({1.0: 15, 0.0: 30, -3.0: 495}[k], rel=1e-9)


@pytest.mark.parametrize("k", [1.0, 0.0, -3.0])
@pytest.mark.parametrize(
    ("key", "hyper", "variance"),
    [
        ("smoothing", {"sigma": SIGMA}, lambda k: 4 * SIGMA**2),
        ("score_function", {"sigma": SIGMA}, score_variance),
    ],
)
def test_continuous_mean_and_variance(key, hyper, variance, k):
    torch.manual_seed(0)
    g = per_row_grads(estimators.create(key, **hyper), torch.full((R, 1), MU), quadratic(k))
    mean_within(g, 2 * (MU - k))
    variance_within(g, variance(k))


@pytest.mark.parametrize("k", [1.0, 0.0, -3.0])
def test_reparam_loc_and_log_scale(k):
    torch.manual_seed(1)
    params = torch.stack([torch.full((R, 1), MU), torch.full((R, 1), 0.0)], dim=1)  # R x 2 x 1
    g = per_row_grads(estimators.create("reparam"), params, quadratic(k))
    # ∂/∂s E[(μ + e^s ε − k)²] = 2σ²; Var = 4σ²((μ − k)² + 2σ²)
    mean_within(g[:, 0], 2 * (MU - k))
    variance_within(g[:, 0], 4 * SIGMA**2)
    mean_within(g[:, 1], 2 * SIGMA**2)
    variance_within(g[:, 1], 4 * SIGMA**2 * ((MU - k) ** 2 + 2 * SIGMA**2))


@pytest.mark.parametrize("k", [1.0, 0.0, -3.0])
def test_pathwise_is_exact(k):
    g = per_row_grads(estimators.create("pathwise"), torch.full((8, 1), MU), quadratic(k))
    torch.testing.assert_close(g, torch.full((8, 1), 2 * (MU - k)))


@pytest.mark.parametrize("k", [0.0, -3.0])
def test_score_function_baselines_unbiased_and_lower_variance(k):
    torch.manual_seed(2)
    f = quadratic(k)
    params = torch.full((R, 1), MU)
    plain = per_row_grads(estimators.create("score_function", sigma=SIGMA), params, f)
    loo = per_row_grads(estimators.create("score_function", sigma=SIGMA, baseline="mean"),
                        params, f)
    mean_within(loo, 2 * (MU - k))
    # with R rows the leave-one-out mean is E f = (μ − k)² + σ² up to O(R^-1/2)
    variance_within(loo, score_variance(k, baseline=(MU - k) ** 2 + SIGMA**2))
    variance_below(loo, plain)

    ema = estimators.create("score_function", sigma=SIGMA, baseline="ema")
    per_row_grads(ema, params[:1000], f)  # one batch of history
    assert ema.baseline_ is not None
    g = per_row_grads(ema, params, f)
    mean_within(g, 2 * (MU - k))
    variance_below(g, plain)


def test_score_function_rloo_over_samples():
    torch.manual_seed(3)
    f = quadratic(-3.0)
    params = torch.full((R // 4, 1), MU)
    none4 = per_row_grads(estimators.create("score_function", sigma=SIGMA, samples=4),
                          params, f)
    rloo4 = per_row_grads(
        estimators.create("score_function", sigma=SIGMA, samples=4, baseline="mean"), params, f
    )
    mean_within(none4, 2 * (MU + 3.0))
    variance_within(none4, score_variance(-3.0) / 4)  # the mean of 4 independent draws
    mean_within(rloo4, 2 * (MU + 3.0))
    variance_below(rloo4, none4)


# -- discrete --------------------------------------------------------------------------------
K = 5
LOGITS = torch.tensor([0.5, -1.0, 0.0, 1.5, -0.3])
COST = torch.tensor([3.0, -1.0, 0.5, 2.0, -2.5])  # tabulated cost per symbol


def linear_cost(x):
    return x[:, 0, :] @ COST  # one-hot N x 1 x K -> N


def exact_grad(f, logits=LOGITS):
    """Exact gradient for logits of shape (L, C) (or (C,) for one position)."""
    logits = logits.reshape(-1, logits.shape[-1])
    return exact.discrete_gradient(logits.unsqueeze(0), f)[0]


def enumerated_reinforce_variance(logits, f, space):
    """Σ_x p(x)|g(x)|² − |Σ_x p(x) g(x)|² for g(x) = f(x)∇log p(x) = f(x)(x − p)."""
    xs = exact.outcomes(space)
    p = exact.discrete_log_prob(logits.reshape(1, *space.shape), xs)[0].exp()  # N
    g = f(xs)[:, None, None] * (xs - logits.reshape(space.shape).softmax(-1))  # N x L x C
    mean = (p[:, None, None] * g).sum(0)
    return float((p[:, None, None] * g**2).sum() - mean.pow(2).sum())


def replicate(logits, space, n):
    return logits.reshape(1, *space.shape).expand(n, *space.shape).clone()


def test_reinforce_matches_enumeration_linear_cost():
    torch.manual_seed(4)
    space = Discrete(1, K)
    g = per_row_grads(estimators.create("score_function"), replicate(LOGITS, space, R),
                      linear_cost)
    mean_within(g.reshape(R, -1), exact_grad(linear_cost).reshape(-1))
    truth = enumerated_reinforce_variance(LOGITS, linear_cost, space)
    v, se = _total_variance(g)
    assert abs(v - truth) <= 5 * se, (v, truth, se)


def _total_variance(g):
    """Trace of the covariance and its SE (from the per-row squared deviation)."""
    flat = g.reshape(g.shape[0], -1).double()
    sq = (flat - flat.mean(0)).pow(2).sum(1)  # per-row squared distance to the mean
    return float(sq.mean()), float(sq.std() / flat.shape[0] ** 0.5)


def test_reinforce_matches_enumeration_nonlinear_cost_on_sequences():
    """Discrete(3, 3): 27 outcomes, a cost that is not linear in the one-hot."""
    torch.manual_seed(5)
    space = Discrete(3, 3)
    logits = torch.tensor([[0.2, -0.4, 1.0], [0.0, 0.7, -1.2], [1.1, 0.3, -0.5]])
    weights = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.8, -1.0], [-0.7, 0.2, 1.5]])

    def f(x):
        return (x * weights).sum((1, 2)) ** 2

    g = per_row_grads(estimators.create("score_function"), replicate(logits, space, R), f)
    mean_within(g.reshape(R, -1), exact_grad(f, logits).reshape(-1))
    v, se = _total_variance(g)
    truth = enumerated_reinforce_variance(logits, f, space)
    assert abs(v - truth) <= 5 * se, (v, truth, se)


@pytest.mark.parametrize("hyper", [{"baseline": "mean"}, {"baseline": "ema"},
                                   {"baseline": "mean", "samples": 4}],
                         ids=["loo-batch", "ema", "rloo-4"])
def test_discrete_baselines_unbiased_and_lower_variance(hyper):
    """A positive cost, as a GAN's softplus(−D) is: the baseline removes its offset.

    (Around a mean near 0 a noisy leave-one-out baseline can add variance instead.)
    """
    torch.manual_seed(6)

    def cost(x):
        return linear_cost(x) + 5.0

    space = Discrete(1, K)
    n = R // hyper.get("samples", 1)
    params = replicate(LOGITS, space, n)
    est = estimators.create("score_function", **hyper)
    if hyper["baseline"] == "ema":
        per_row_grads(est, params[:1000], cost)
    g = per_row_grads(est, params, cost)
    plain = per_row_grads(estimators.create("score_function", samples=hyper.get("samples", 1)),
                          params, cost)
    mean_within(g.reshape(n, -1), exact_grad(cost).reshape(-1))
    variance_below(g.reshape(n, -1), plain.reshape(n, -1))


@pytest.mark.parametrize("key", ["pathwise", "straight_through"])
def test_exact_for_linear_cost(key):
    """∇_x f = COST is constant, so softmax pass-through and ST give ∂p/∂θᵀ·COST exactly."""
    torch.manual_seed(7)
    space = Discrete(1, K)
    g = per_row_grads(estimators.create(key), replicate(LOGITS, space, 64), linear_cost)
    torch.testing.assert_close(g, exact_grad(linear_cost).expand_as(g))


def test_softmax_pass_through_is_biased_for_nonlinear_cost():
    space = Discrete(1, K)

    def f(x):
        return (x[:, 0, :] @ COST) ** 2

    g = per_row_grads(estimators.create("pathwise"), replicate(LOGITS, space, 4), f)
    assert (g[0] - exact_grad(f)).norm() > 0.1 * exact_grad(f).norm()


def test_gumbel_softmax_bias_shrinks_with_temperature():
    torch.manual_seed(8)
    space = Discrete(1, K)
    truth = exact_grad(linear_cost).reshape(-1)
    biases, ses = [], []
    for tau in (2.0, 1.0, 0.5, 0.1):
        g = per_row_grads(estimators.create("gumbel_softmax", temperature=tau),
                          replicate(LOGITS, space, R), linear_cost).reshape(R, -1)
        biases.append(float((g.mean(0) - truth).norm()))
        ses.append(float((g.var(0).sum() / R).sqrt()))
    # strictly falling while the bias dominates the noise; at τ = 0.1 it is within noise
    for hi, lo, se_hi, se_lo in zip(biases[:3], biases[1:3], ses, ses[1:], strict=False):
        assert lo + 5 * (se_hi**2 + se_lo**2) ** 0.5 < hi, (biases, ses)
    assert biases[3] < biases[2] + 5 * ses[3], (biases, ses)
    assert biases[0] > 10 * ses[0], "the relaxation is biased at high temperature"


def test_st_gumbel_forward_is_an_exact_categorical_sample():
    torch.manual_seed(9)
    space = Discrete(1, K)
    x = estimators.create("st_gumbel").sample(replicate(LOGITS, space, R))
    freq = x[:, 0, :].mean(0)
    p = LOGITS.softmax(-1)
    assert torch.all((freq - p).abs() <= 5 * (p * (1 - p) / R).sqrt())
