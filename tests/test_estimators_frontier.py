r"""GST, ZGR, decoupled ST-Gumbel, ARMS and the measure-valued gradient against exact results.

As in ``test_estimators_discrete``, every batch row holds the same parameters, so row
``b``'s gradient ``B·params.grad[b]`` is one independent estimate. References are exact:
enumeration over the discrete sample (:mod:`gangrad.exact`), or Gauss–Hermite / adaptive
quadrature for Gaussians. Randomized checks use a fixed seed per test and a tolerance of
``Z = 5`` standard errors of the sample at hand (``_stats``); estimators whose gradient is a
function of the discrete sample alone (ZGR, GST, straight-through) are checked exactly, by
weighting each outcome with its probability.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _stats import mean_within, variance_se, variance_within
from scipy import integrate

from gangrad import estimators, exact
from gangrad.estimators.arms import dirichlet_joint
from gangrad.measure import gradient_stats
from gangrad.spaces import Continuous, Discrete
from gangrad.train import train

R = 100_000
KEYS = ("gst", "zgr", "decoupled_st", "arms", "measure_valued")

# multi-position, multi-class: Discrete(2, 3); multi-position Bernoulli: Discrete(3, 2)
LOGITS = torch.tensor([[0.2, -0.4, 1.0], [0.0, 0.7, -1.2]], dtype=torch.float64)
WEIGHTS = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.8, -1.0]], dtype=torch.float64)
BIN_LOGITS = torch.tensor([[0.0, 0.5], [0.3, -1.0], [0.0, 2.0]])
BIN_WEIGHTS = torch.tensor([1.0, -2.0, 0.7])
QUADRATIC = torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
T = 0.45  # the Bernoulli toy: f(b) = (b − t)², φ = 0


def linear(x):
    return (x * WEIGHTS.to(x.dtype)).sum((1, 2))


def square(x):
    return linear(x) ** 2 + 1.0


def quadratic_form(x):
    flat = x.flatten(1).to(QUADRATIC.dtype)
    return torch.einsum("ni,ij,nj->n", flat, QUADRATIC, flat).to(x.dtype)


def cubic(x):
    return linear(x) ** 3


def bernoulli_cost(x):
    return (x[..., 1] @ BIN_WEIGHTS.to(x.dtype) - 0.3) ** 2


def toy_cost(x):
    return (x[:, 0, 1] - T) ** 2


def replicate(logits, n):
    return logits.expand(n, *logits.shape).clone()


def per_row_grads(est, params, f, **kw):
    params = params.detach().requires_grad_(True)
    est.surrogate(params, f, **kw).mean().backward()
    return params.grad * params.shape[0]


def exact_grad(logits, f):
    return exact.discrete_gradient(logits.unsqueeze(0), f)[0]


def enumerated(est, logits, f):
    """Exact mean and total variance of ``ĝ`` over the sample ``D``, for estimators whose
    gradient depends on ``D`` alone: the noise of row ``i`` makes the Gumbel-max pick
    outcome ``i``."""
    xs = exact.outcomes(Discrete(*logits.shape), dtype=logits.dtype)  # N x L x C
    weights = exact.discrete_log_prob(logits.unsqueeze(0), xs)[0].exp()  # N
    noise = torch.where(xs > 0, 1 - 1e-12, 1e-12).to(logits.dtype)
    params = replicate(logits, len(xs)).requires_grad_(True)
    assert torch.equal(est.sample(params, noise=noise), xs)
    est.surrogate(params, f, noise=noise).sum().backward()
    g = params.grad  # N x L x C
    mean = (weights[:, None, None] * g).sum(0)
    var = (weights[:, None, None] * (g - mean) ** 2).sum()
    return mean, float(var)


def assert_unbiased(est, logits, f, n=R):
    """The harness of the unbiased estimators: the mean of ``n`` single-row estimates
    matches the enumerated gradient within 5 standard errors, coordinate by coordinate."""
    g = per_row_grads(est, replicate(logits, n), f)
    mean_within(g.reshape(n, -1), exact_grad(logits.double(), f).reshape(-1))
    return g


# -- ZGR -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("f", [linear, square, quadratic_form], ids=["linear", "square", "qform"])
def test_zgr_mean_is_exact_for_quadratic_costs(f):
    """ZGR's mean equals the gradient for every f of degree ≤ 2 in the one-hot x (exactly,
    by enumeration); straight-through's only for linear f."""
    truth = exact_grad(LOGITS, f)
    mean, _ = enumerated(estimators.create("zgr"), LOGITS, f)
    torch.testing.assert_close(mean, truth)
    st, _ = enumerated(estimators.create("straight_through"), LOGITS, f)
    if f is not linear:
        assert (st - truth).norm() > 0.3 * truth.norm()


def test_zgr_is_exact_on_a_bernoulli_quadratic_and_biased_on_a_cubic():
    logits = BIN_LOGITS.double()
    mean, _ = enumerated(estimators.create("zgr"), logits, bernoulli_cost)
    torch.testing.assert_close(mean, exact_grad(logits, bernoulli_cost))
    mean, _ = enumerated(estimators.create("zgr"), LOGITS, cubic)
    assert (mean - exact_grad(LOGITS, cubic)).norm() > 0.5


def test_zgr_is_the_average_of_straight_through_and_darn():
    """Per position: ĝ = ½(J(p)ᵀ∇f + ∇log p(x)·⟨∇f, x − p⟩) at the sampled x; also
    ReinMax's estimate at τ = 1 for the same noise."""
    torch.manual_seed(0)
    est = estimators.create("zgr")
    params = torch.randn(64, 4, 3, dtype=torch.float64)
    noise = est.noise(params)
    x = est.sample(params, noise=noise)
    c = torch.randn(4, 3, dtype=torch.float64)

    def f(v):
        return ((v * c).sum((1, 2))) ** 2

    g = per_row_grads(est, params, f, noise=noise)
    grad_f = 2 * (x * c).sum((1, 2))[:, None, None] * c  # ∇_x f at x
    p = params.softmax(-1)
    st = p * (grad_f - (p * grad_f).sum(-1, keepdim=True))
    darn = (x - p) * ((x - p) * grad_f).sum(-1, keepdim=True)
    torch.testing.assert_close(g, 0.5 * (st + darn))
    reinmax = per_row_grads(estimators.create("reinmax", temperature=1.0), params, f,
                            noise=noise)
    torch.testing.assert_close(g, reinmax)


# -- GST -----------------------------------------------------------------------------------------
def test_gst_backward_is_the_softmax_of_the_gapped_logits():
    """θ = (0, 1, 2), sample D = class 0: m = (θ_max, min(θ_c, θ_max − κ)) = (2, 1, 1) at
    κ = 1; with κ_p = −log(1 − π_0)/π_0 for GST-p. For f = cᵀx the estimate is
    J(softmax(m/τ))ᵀc/τ."""
    theta = torch.tensor([[[0.0, 1.0, 2.0]]], dtype=torch.float64)
    noise = torch.tensor([[[1 - 1e-12, 1e-12, 1e-12]]], dtype=torch.float64)  # picks class 0
    c = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    pi0 = float(theta.softmax(-1)[0, 0, 0])
    kappa_p = -math.log(1 - pi0) / pi0
    for variant, m in [("fixed", [2.0, 1.0, 1.0]), ("p", [2.0, 2 - kappa_p, 2 - kappa_p])]:
        for tau in (0.5, 1.0):
            est = estimators.create("gst", variant=variant, temperature=tau)
            g = per_row_grads(est, theta, lambda x: x[:, 0] @ c, noise=noise)[0, 0]
            s = (torch.tensor(m, dtype=torch.float64) / tau).softmax(-1)
            torch.testing.assert_close(g, s * (c - (s * c).sum()) / tau)
    est = estimators.create("gst", gap=0.25)
    g = per_row_grads(est, theta, lambda x: x[:, 0] @ c, noise=noise)[0, 0]
    s = (torch.tensor([2.0, 1.0, 1.75], dtype=torch.float64) / 0.5).softmax(-1)
    torch.testing.assert_close(g, s * (c - (s * c).sum()) / 0.5)


@pytest.mark.parametrize("variant", ["fixed", "p"])
@pytest.mark.parametrize("f", [square, quadratic_form], ids=["square", "qform"])
def test_gst_bias_below_straight_through_and_variance_below_st_gumbel(f, variant):
    """The ordering of Fan et al. (2022): GST keeps ST-Gumbel's gapped relaxation but drops
    its Gumbel noise from the backward pass, so at the same τ (0.5) its variance is below
    ST-Gumbel's, and its bias below plain straight-through's, whose backward softmax has
    no gap. GST and ST exactly by enumeration; ST-Gumbel by Monte Carlo (5 SEs). Not a
    law for every cost: on (w·x)³ here GST's bias exceeds ST's (1.69 vs 1.10)."""
    torch.manual_seed(1)
    truth = exact_grad(LOGITS, f)
    gst_mean, gst_var = enumerated(estimators.create("gst", variant=variant), LOGITS, f)
    st_mean, _ = enumerated(estimators.create("straight_through"), LOGITS, f)
    assert (gst_mean - truth).norm() < 0.8 * (st_mean - truth).norm()
    stgs = per_row_grads(estimators.create("st_gumbel", temperature=0.5),
                         replicate(LOGITS, R), f).reshape(R, -1)
    var, se = variance_se(stgs)
    assert gst_var < var.sum() - 5 * se.pow(2).sum().sqrt()


def test_gst_given_the_sample_is_deterministic():
    """Two noises that pick the same D give the same GST estimate (no resampling), while
    ST-Gumbel's estimate moves with the Gumbels."""
    noise_a = torch.tensor([[[0.9, 0.2, 0.1], [0.3, 0.95, 0.2]]], dtype=torch.float64)
    noise_b = torch.tensor([[[0.99, 0.6, 0.5], [0.7, 0.999, 0.01]]], dtype=torch.float64)
    params = LOGITS.unsqueeze(0)
    for key, same in [("gst", True), ("st_gumbel", False)]:
        est = estimators.create(key)
        assert torch.equal(est.sample(params, noise=noise_a), est.sample(params, noise=noise_b))
        a = per_row_grads(est, params, square, noise=noise_a)
        b = per_row_grads(est, params, square, noise=noise_b)
        assert torch.allclose(a, b) == same


# -- decoupled ST-Gumbel -------------------------------------------------------------------------
def value_and_grads(est, params, f, noise):
    params = params.clone().requires_grad_(True)
    value = est.surrogate(params, f, noise=noise)
    value.sum().backward()
    return value.detach(), params.grad


def test_decoupled_st_at_unit_temperatures_is_st_gumbel():
    """τ_f = τ_b = 1: the same noise gives the same sample, value and gradient as
    st_gumbel(temperature=1), the one temperature at which the two forms agree."""
    torch.manual_seed(2)
    params = torch.randn(32, 2, 3, dtype=torch.float64)
    dec = estimators.create("decoupled_st")
    stg = estimators.create("st_gumbel", temperature=1.0)
    noise = dec.noise(params)
    assert torch.equal(dec.sample(params, noise=noise), stg.sample(params, noise=noise))
    for a, b in zip(value_and_grads(dec, params, square, noise),
                    value_and_grads(stg, params, square, noise), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("tau", [0.3, 0.5, 2.0])
def test_decoupled_st_at_equal_temperatures_is_the_papers_st_gs(tau):
    """τ_f = τ_b = τ is the paper's ST-GS, softmax(θ/τ + g): st_gumbel(1) on the logits θ/τ
    (same noise, same sample, 1/τ times its gradient). It is not torch's st_gumbel(τ),
    softmax((θ + g)/τ), which emits Cat(softmax θ) for every τ: the samples differ."""
    torch.manual_seed(3)
    params = torch.randn(256, 2, 3, dtype=torch.float64)
    dec = estimators.create("decoupled_st", forward_temperature=tau, backward_temperature=tau)
    unit = estimators.create("st_gumbel", temperature=1.0)
    noise = dec.noise(params)
    assert torch.equal(dec.sample(params, noise=noise), unit.sample(params / tau, noise=noise))
    g = per_row_grads(dec, params, square, noise=noise)
    torch.testing.assert_close(g, per_row_grads(unit, params / tau, square, noise=noise) / tau)
    torch_form = estimators.create("st_gumbel", temperature=tau)
    assert not torch.equal(dec.sample(params, noise=noise),
                           torch_form.sample(params, noise=noise))
    assert not torch.allclose(g, per_row_grads(torch_form, params, square, noise=noise))


@pytest.mark.parametrize(("tau_f", "tau_b"), [(0.5, 2.0), (2.0, 0.5), (0.7, 1.0)])
def test_decoupled_st_backward_is_softmax_of_the_logits_over_tau_b_plus_g(tau_f, tau_b):
    """For a linear f (∇_x f = W) the gradient is (1/τ_b)·y ⊙ (W − yᵀW) with
    y = softmax(θ/τ_b + g) and the forward's Gumbels g, row by row, whatever τ_f."""
    torch.manual_seed(4)
    params = torch.randn(64, 2, 3, dtype=torch.float64)
    est = estimators.create("decoupled_st", forward_temperature=tau_f,
                            backward_temperature=tau_b)
    noise = est.noise(params)
    y = (params / tau_b - torch.log(-torch.log(noise))).softmax(-1)
    expected = y * (WEIGHTS - (y * WEIGHTS).sum(-1, keepdim=True)) / tau_b
    torch.testing.assert_close(per_row_grads(est, params, linear, noise=noise), expected)


def test_decoupled_st_forward_temperature_only_picks_the_class():
    """Same noise, same τ_b, two forward temperatures: rows whose samples agree have equal
    gradients, rows whose samples differ do not (both kinds occur)."""
    torch.manual_seed(5)
    params = torch.randn(256, 2, 3, dtype=torch.float64)
    cold, hot = (estimators.create("decoupled_st", forward_temperature=t,
                                   backward_temperature=0.5) for t in (0.5, 3.0))
    noise = cold.noise(params)
    same = (cold.sample(params, noise=noise) == hot.sample(params, noise=noise)).flatten(1)
    same = same.all(-1)
    assert 0 < int(same.sum()) < params.shape[0]
    a = per_row_grads(cold, params, square, noise=noise)
    b = per_row_grads(hot, params, square, noise=noise)
    torch.testing.assert_close(a[same], b[same])
    assert not torch.allclose(a[~same], b[~same])


def test_decoupled_st_emits_the_tempered_categorical():
    """x ~ Cat(softmax(θ/τ_f)): symbol frequencies within 5 standard errors."""
    torch.manual_seed(4)
    est = estimators.create("decoupled_st", forward_temperature=2.0)
    x = est.sample(replicate(LOGITS.float(), R))  # R x 2 x 3
    probs = (LOGITS.float() / 2.0).softmax(-1)
    mean_within(x.reshape(R, -1), probs.reshape(-1))


# -- ARMS ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("samples", [2, 3, 5])
def test_arms_unbiased_on_a_multi_position_bernoulli(samples):
    torch.manual_seed(5)
    assert_unbiased(estimators.create("arms", samples=samples), BIN_LOGITS, bernoulli_cost,
                    n=R // samples)


@pytest.mark.parametrize("samples", [2, 4])
@pytest.mark.parametrize("phi", [0.0, -1.5, 2.0])
def test_arms_unbiased_on_the_bernoulli_toy(samples, phi):
    torch.manual_seed(6)
    g = per_row_grads(estimators.create("arms", samples=samples),
                      replicate(torch.tensor([[0.0, phi]], dtype=torch.float64), R), toy_cost)
    torch.testing.assert_close(g[:, 0, 0], -g[:, 0, 1])
    p = 1 / (1 + math.exp(-phi))
    mean_within(g[:, 0, 1], p * (1 - p) * (1 - 2 * T))


def test_arms_with_two_samples_is_disarm():
    """Same noise, same estimate: ARMS(S = 2) from uniforms v (shape (B, 1, n)) equals
    DisARM from u = v (shape (B, n)), and so do the surrogate's value and the sample."""
    torch.manual_seed(7)
    params = torch.randn(256, 6, 2, dtype=torch.float64) * 2
    u = torch.rand(256, 6, dtype=torch.float64)
    w = torch.randn(6, dtype=torch.float64)

    def f(x):
        return torch.sin(x[..., 1] @ w) + (x[..., 1] @ w) ** 2

    arms, disarm = estimators.create("arms"), estimators.create("disarm")
    a = per_row_grads(arms, params, f, noise=u.unsqueeze(1))
    d = per_row_grads(disarm, params, f, noise=u)
    assert d.abs().sum() > 0
    torch.testing.assert_close(a, d)
    torch.testing.assert_close(arms.surrogate(params, f, noise=u.unsqueeze(1)),
                               disarm.surrogate(params, f, noise=u))
    assert torch.equal(arms.sample(params, noise=u.unsqueeze(1)), disarm.sample(params, noise=u))


@pytest.mark.parametrize("samples", [2, 3, 6])
def test_arms_copula_marginals_and_joint(samples):
    """Each sample is exactly Bernoulli(p) and two of them are both 1 with the Dirichlet
    copula's closed-form probability (frequencies within 5 SEs)."""
    torch.manual_seed(8)
    est = estimators.create("arms", samples=samples)
    alpha = torch.tensor([-2.5, -0.4, 0.0, 0.3, 1.7])
    params = replicate(torch.stack([torch.zeros(5), alpha], -1), R)
    b = est._draws(alpha.expand(R, 5), est.noise(params))  # R x S x 5
    p = torch.sigmoid(alpha)
    for i in range(samples):
        mean_within(b[:, i], p)
    mean_within(b[:, 0] * b[:, -1], dirichlet_joint(p, samples))
    rho = (dirichlet_joint(p, samples) - p**2) / (p * (1 - p))
    assert torch.all(rho < 0), "mutually antithetic"


def test_arms_variance_below_leave_one_out_at_equal_evaluations():
    """Four antithetic samples against four independent ones (RLOO, the ρ = 0 case)."""
    torch.manual_seed(9)
    n = R // 4
    arms = per_row_grads(estimators.create("arms", samples=4), replicate(BIN_LOGITS, n),
                         bernoulli_cost)
    loo = per_row_grads(estimators.create("score_function", baseline="mean", samples=4),
                        replicate(BIN_LOGITS, n), bernoulli_cost)
    v_arms, se_arms = variance_se(arms.reshape(n, -1))
    v_loo, se_loo = variance_se(loo.reshape(n, -1))
    gap = v_loo.sum() - v_arms.sum()
    assert gap > 5 * (se_arms.pow(2).sum() + se_loo.pow(2).sum()).sqrt()


# -- measure-valued ------------------------------------------------------------------------------
MU, SIGMA = 1.0, 1.0
ONE_D = {
    "square-k1": (lambda x: (x - 1.0) ** 2, lambda m, s: 2 * (m - 1.0)),
    "square-k0": (lambda x: x**2, lambda m, s: 2 * m),
    "square-k-3": (lambda x: (x + 3.0) ** 2, lambda m, s: 2 * (m + 3.0)),
    "sin": (torch.sin, lambda m, s: math.cos(m) * math.exp(-(s**2) / 2)),
    "exp": (torch.exp, lambda m, s: math.exp(m + s**2 / 2)),
}


def rayleigh_moment(h):
    """E[h(w)], w ~ Weibull(√2, 2) (density w e^{−w²/2}), by adaptive quadrature (the
    mass beyond w = 40 is e^{−800})."""
    value, _ = integrate.quad(lambda w: h(w) * w * math.exp(-w * w / 2), 0, 40)
    return value


def mv_variance(f, mu=MU, sigma=SIGMA):
    """Per-sample variance of (f(μ + σw) − f(μ − σw))/(σ√(2π)) in one dimension."""
    c = 1 / (sigma * math.sqrt(2 * math.pi))

    def g(w):
        x = torch.tensor([mu + sigma * w, mu - sigma * w], dtype=torch.float64)
        return c * float(f(x)[0] - f(x)[1])

    return rayleigh_moment(lambda w: g(w) ** 2) - rayleigh_moment(g) ** 2


def test_measure_valued_quadrature_reproduces_the_closed_form():
    """(16/π − 4)(μ − k)² for f = (x − k)²: the identities the docstring states."""
    for k in (1.0, 0.0, -3.0):
        assert mv_variance(lambda x, k=k: (x - k) ** 2) == pytest.approx(
            (16 / math.pi - 4) * (MU - k) ** 2, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", sorted(ONE_D))
def test_measure_valued_one_dimension_mean_and_variance(name):
    f, grad = ONE_D[name]
    torch.manual_seed(10)
    est = estimators.create("measure_valued", sigma=SIGMA)
    g = per_row_grads(est, torch.full((R, 1), MU, dtype=torch.float64), lambda x: f(x[:, 0]))
    truth = grad(MU, SIGMA)
    var = mv_variance(f)
    if var < 1e-12:  # f = (x − μ)²: f(μ + σw) = f(μ − σw), every estimate is exactly 0
        assert torch.all(g.abs() < 1e-12) and truth == 0
        return
    mean_within(g, truth)
    variance_within(g, var)


def test_measure_valued_several_dimensions_against_quadrature():
    """d = 3, coupled coordinates: f(x) = sin(x₁x₂) + exp(x₃/2) + (x₁ − x₃)²; the exact
    gradient by tensor-product Gauss–Hermite quadrature of E[f(μ + σε)ε]/σ."""
    def f(x):
        return torch.sin(x[:, 0] * x[:, 1]) + torch.exp(x[:, 2] / 2) + (x[:, 0] - x[:, 2]) ** 2

    mu, sigma = torch.tensor([0.3, -0.8, 0.5], dtype=torch.float64), 0.7
    nodes, weights = exact.gauss_hermite(40)
    grid = torch.cartesian_prod(nodes, nodes, nodes)  # N x 3
    wts = torch.cartesian_prod(weights, weights, weights).prod(-1)  # N
    truth = (wts[:, None] * f(mu + sigma * grid)[:, None] * grid).sum(0) / sigma
    torch.manual_seed(11)
    g = per_row_grads(estimators.create("measure_valued", sigma=sigma), replicate(mu, R), f)
    mean_within(g, truth)


def test_measure_valued_pairs_and_value():
    """f sees the Gaussian sample first (the surrogate's value), then the 2·dim pair points,
    which differ from μ + σε in one coordinate, set to μ_k ± σw_k."""
    est = estimators.create("measure_valued", sigma=0.5)
    params = torch.randn(4, 3, generator=torch.Generator().manual_seed(12))
    noise = est.noise(params, generator=torch.Generator().manual_seed(13))
    seen = []
    s = est.surrogate(params, lambda x: seen.append(x) or x.sum(-1), noise=noise)
    eps, w = noise[:, 0], noise[:, 1]
    torch.testing.assert_close(seen[0], params + 0.5 * eps)
    torch.testing.assert_close(s, seen[0].sum(-1))
    pairs = seen[1].reshape(4, 3, 2, 3)
    for k in range(3):
        for j, sign in enumerate((1, -1)):
            expected = (params + 0.5 * eps).clone()
            expected[:, k] = params[:, k] + sign * 0.5 * w[:, k]
            torch.testing.assert_close(pairs[:, k, j], expected)
    assert torch.all(w > 0)


# -- cost, refusals, hyper-parameters -------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "hyper", "space", "evals"),
    [("gst", {}, Discrete(4, 3), 1), ("gst", {"variant": "p"}, Discrete(2, 5), 1),
     ("zgr", {}, Discrete(4, 3), 1), ("decoupled_st", {}, Discrete(4, 3), 1),
     ("arms", {}, Discrete(5, 2), 2), ("arms", {"samples": 5}, Discrete(5, 2), 5),
     ("measure_valued", {}, Continuous(1), 3), ("measure_valued", {}, Continuous(5), 11)],
)
def test_f_evaluations_are_what_f_is_called_on(key, hyper, space, evals):
    est = estimators.create(key, **hyper)
    assert est.evaluations(space) == evals
    if space.shape[0] == 1 or key != "measure_valued":
        assert est.f_evaluations == (evals if key != "measure_valued" else 3)
    rows = []
    params = torch.randn(8, *est.param_shape(space))
    est.surrogate(params, lambda x: rows.append(x.shape[0]) or x.flatten(1).sum(-1),
                  space=space)
    assert sum(rows) == 8 * evals


@pytest.mark.parametrize(
    ("key", "hyper", "names"),
    [("gst", {"gap": 0.0}, ["gap", "(0, inf)"]),
     ("gst", {"gap": -1.0}, ["gap", "(0, inf)"]),
     ("gst", {"variant": "1.0"}, ["variant", "fixed", "p"]),
     ("gst", {"temperature": 0}, ["temperature", "(0, inf)"]),
     ("zgr", {"temperature": 1.0}, ["no hyper-parameter", "temperature"]),
     ("decoupled_st", {"forward_temperature": 0.0}, ["forward_temperature", "(0, inf)"]),
     ("decoupled_st", {"backward_temperature": float("nan")}, ["backward_temperature"]),
     ("decoupled_st", {"temperature": 1.0}, ["temperature", "forward_temperature"]),
     ("arms", {"samples": 1}, ["samples", ">= 2"]),
     ("arms", {"samples": 2.5}, ["samples", ">= 2"]),
     ("measure_valued", {"sigma": 0.0}, ["sigma", "(0, inf)"]),
     ("measure_valued", {"sigma": math.inf}, ["sigma", "(0, inf)"])],
)
def test_bad_hyperparameters(key, hyper, names):
    with pytest.raises(ValueError) as info:
        estimators.create(key, **hyper)
    for name in names:
        assert name in str(info.value)


def test_unsupported_spaces_are_named():
    arms = estimators.create("arms")
    assert arms.supports(Discrete(64, 2))
    for space in (Discrete(2, 3), Continuous(2)):
        with pytest.raises(ValueError, match=r"arms does not support .*binary Discrete\(n, 2\)"):
            arms.param_shape(space)
    with pytest.raises(ValueError, match=r"Discrete\(n, 2\)"):
        arms.surrogate(torch.zeros(4, 2, 3), lambda x: x.sum((1, 2)))
    for key in ("gst", "zgr", "decoupled_st"):
        with pytest.raises(ValueError, match=rf"{key} does not support Continuous.*Discrete"):
            estimators.create(key).param_shape(Continuous(2))
    with pytest.raises(ValueError, match=r"measure_valued does not support .*Continuous"):
        estimators.create("measure_valued").param_shape(Discrete(2, 3))


def test_defaults():
    assert estimators.create("gst").hyperparameters() == {"gap": 1.0, "variant": "fixed",
                                                          "temperature": 0.5}
    assert estimators.create("arms").samples == 2
    assert (estimators.create("measure_valued").sigma == estimators.create("smoothing").sigma
            == estimators.create("score_function").sigma)
    for key in KEYS:
        est = estimators.create(key)
        assert est.rows_independent and not est.learns
        assert est.differentiable_f == (key in ("gst", "zgr", "decoupled_st"))


# -- the measurement engine and training ---------------------------------------------------------
TASK_OF = {"gst": "categorical", "zgr": "categorical", "decoupled_st": "categorical",
           "arms": "binary_digits", "measure_valued": "gaussian1d"}


def test_gradient_stats_on_small_tasks():
    df = gradient_stats("categorical", ["gst", ("gst", {"variant": "p"}), "zgr",
                                        "decoupled_st"], replicates=200, timing=False)
    tot = df[df["layer"] == "total"].set_index("estimator")
    assert set(tot["reference"]) == {"enumeration"} and (tot["f_evals"] == 1).all()
    assert np.isfinite(tot[["bias", "variance", "mse"]].to_numpy()).all()
    assert (tot["variance"] > 0).all()
    df = gradient_stats("gaussian1d", ["measure_valued"], replicates=400, batch_size=64,
                        fresh_z=True, timing=False)
    row = df[df["layer"] == "total"].iloc[0]
    assert row["reference"] == "quadrature" and row["f_evals"] == 3
    assert row["bias_lo"] == 0.0, "unbiased: the bias interval reaches 0"
    df = gradient_stats("binary_digits", ["arms", ("arms", {"samples": 4})], replicates=8,
                        batch_size=4, reference_replicates=8, timing=False)
    tot = df[df["layer"] == "total"].set_index("estimator")
    assert list(tot["f_evals"]) == [2, 4] and np.isfinite(tot["variance"]).all()


SHORT = {"steps": 3, "eval_every": 3, "eval_samples": 64, "batch_size": 16, "device": "cpu"}


@pytest.mark.parametrize("key", KEYS)
def test_trains(key):
    h = train(TASK_OF[key], estimators.create(key), **SHORT)
    assert h.attrs["status"] == "ok" and list(h["step"]) == [0, 3]
