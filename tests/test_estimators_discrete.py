r"""REBAR, RELAX, ARM, DisARM, Rao-Blackwellized ST and ReinMax against exact results.

As in ``test_estimators_analytic``, every batch row holds the same parameters, so row
``b``'s gradient ``B·params.grad[b]`` is one independent estimate: R rows give R replicates
in one backward pass. Exact references come from enumeration (:mod:`gangrad.exact`) or
closed forms derived below; tolerances come from the sample size (``_stats``: ``Z = 5``
standard errors). Seeds are fixed per test; with them the outcome is deterministic.

**The Bernoulli toy** (Tucker et al., 2017; Grathwohl et al., 2018): ``f(b) = (b − t)²``,
``b ~ Bernoulli(p)``, ``p = σ(α)``, ``q = 1 − p``, as ``Discrete(1, 2)`` with params
``θ = (0, α)`` (so ``α = θ₁ − θ₀``). We test the coordinate ``θ₁``, whose gradient is the
``α``-gradient (``θ₀``'s is its negative, checked exactly). Write ``Δ = f(1) − f(0) =
1 − 2t``; since ``b ∈ {0, 1}``, ``f(b) = f(0) + Δb``.

- Exact gradient: ``E f = p f(1) + q f(0)``, ``dp/dα = pq``, so ``∇ = pqΔ``
  (``Δ/4`` at α = 0).
- REINFORCE, one sample: ``ĝ = f(b)(b − p)``, i.e. ``q(1 − t)²`` w.p. ``p`` and ``−p t²``
  w.p. ``q``: ``Var = pq[q(1 − t)⁴ + p t⁴] − (pqΔ)²`` (at α = 0:
  ``((1 − t)⁴ + t⁴)/8 − Δ²/16``).
- RLOO, two samples (``score_function``, ``baseline="mean"``, ``samples=2``):
  ``ĝ = ½[(f₁ − f₂)(b₁ − p) + (f₂ − f₁)(b₂ − p)] = ½(f₁ − f₂)(b₁ − b₂) = ½Δ·1[b₁ ≠ b₂]``,
  a scaled Bernoulli(``s = 2pq``): ``Var = ¼Δ² s(1 − s)`` (``Δ²/16`` at α = 0).
- ARM: ``b = 1[u < p]``, ``b̃ = 1[u > q]``, ``ĝ = (f(b̃) − f(b))(u − ½) = Δ(b̃ − b)(u − ½)``.
  With ``m = max(p, q)``, ``b ≠ b̃`` iff ``|u − ½| > m − ½``, and then ``(b̃ − b)(u − ½) =
  |u − ½|``: ``E ĝ² = Δ²·2∫_m^1 (u − ½)² du = ⅔Δ²(⅛ − (m − ½)³)``, so
  ``Var = ⅔Δ²(⅛ − (m − ½)³) − (pqΔ)²`` (``Δ²/12 − Δ²/16 = Δ²/48`` at α = 0).
- DisARM: ``ĝ = ½(f(b) − f(b̃))(−1)^{b̃}1[b ≠ b̃]σ(|α|)`` equals ``½Δm`` whenever
  ``b ≠ b̃`` (probability ``2(1 − m)``) and 0 otherwise: ``Var = Δ²m²(1 − m)(m − ½)``,
  which is **0 at α = 0** (there DisARM is exact), while ARM keeps ``Δ²/48``.
- f-evaluations per estimate: 1, 2, 2, 2 (REBAR and RELAX: 3; measured only).

At ``t = 0.45``, α = 0: ``∇ = 0.025``; variances 1.5939e-2 (REINFORCE), 6.25e-4 (RLOO-2),
2.0833e-4 (ARM), 0 (DisARM).
"""

from __future__ import annotations

import math

import pytest
import torch
from _stats import mean_within, variance_below, variance_within

from gangrad import estimators, exact, tasks
from gangrad.estimators._conditional import conditional_gumbel, perturbed
from gangrad.measure import draw_noise, loop_gradients, replicate_gradients
from gangrad.spaces import Continuous, Discrete
from gangrad.train import generator_loss, train

R = 100_000

# a small categorical problem: Discrete(2, 3), a cost that is not linear in the one-hot
LOGITS = torch.tensor([[0.2, -0.4, 1.0], [0.0, 0.7, -1.2]])
WEIGHTS = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.8, -1.0]])

# a small Bernoulli problem: Discrete(3, 2)
BIN_LOGITS = torch.tensor([[0.0, 0.5], [0.3, -1.0], [0.0, 2.0]])
BIN_WEIGHTS = torch.tensor([1.0, -2.0, 0.7])


def categorical_cost(x):
    return (x * WEIGHTS).sum((1, 2)) ** 2 + 1.0


def offset_cost(x):
    """The same with a large offset, as a GAN's positive softplus(−D) has."""
    return (x * WEIGHTS).sum((1, 2)) ** 2 + 5.0


def bernoulli_cost(x):
    return (x[..., 1] @ BIN_WEIGHTS - 0.3) ** 2


def per_row_grads(est, params, f, **kw):
    """Replicate estimates: R x (param_shape), the gradient each row contributes."""
    params = params.detach().requires_grad_(True)
    est.surrogate(params, f, **kw).mean().backward()
    return params.grad * params.shape[0]


def replicate(logits, n):
    return logits.expand(n, *logits.shape).clone()


def exact_grad(logits, f):
    return exact.discrete_gradient(logits.unsqueeze(0), f)[0]


def learned(key, logits, f, steps, **hyper):
    """An estimator after ``steps`` learn() steps on batches of 256 rows at ``logits``."""
    est = estimators.create(key, **hyper)
    for _ in range(steps):
        est.learn(replicate(logits, 256), f)
    return est


# -- the conditional Gumbel ----------------------------------------------------------------------
def test_conditional_gumbel_has_the_law_of_z_given_b():
    """(b, z̃) from independent uniforms matches (argmax z, z): E[z_c·1[b = k]] for all c, k."""
    torch.manual_seed(0)
    logits = replicate(LOGITS, R)
    z, b = perturbed(logits, torch.rand(R, 2, 3))
    _, b2 = perturbed(logits, torch.rand(R, 2, 3))
    z_tilde = conditional_gumbel(logits, b2, torch.rand(R, 2, 3))
    assert torch.equal(z_tilde.argmax(-1, keepdim=True), b2.argmax(-1, keepdim=True))
    for h in (lambda z: z, lambda z: (z / 0.5).softmax(-1)):
        a = (h(z).unsqueeze(-1) * b.unsqueeze(-2)).reshape(R, -1).double()  # R x (L·C·C)
        c = (h(z_tilde).unsqueeze(-1) * b2.unsqueeze(-2)).reshape(R, -1).double()
        se = (a.var(0) / R + c.var(0) / R).sqrt()
        assert torch.all((a.mean(0) - c.mean(0)).abs() <= 5 * se)


# -- unbiased estimators against enumeration ----------------------------------------------------
UNBIASED = [
    ("rebar", {}), ("relax", {}), ("relax", {"rebar_term": False}), ("arm", {}),
    ("disarm", {}), ("score_function", {"baseline": "mean", "samples": 2}),
]
PROBLEMS = {"categorical": (LOGITS, categorical_cost), "bernoulli": (BIN_LOGITS, bernoulli_cost)}
UNBIASED_CASES = [(key, hyper, problem) for key, hyper in UNBIASED for problem in PROBLEMS
                  if key not in ("arm", "disarm") or problem == "bernoulli"]


def label(key, hyper):
    return key + "".join(f"-{k}={v}" for k, v in hyper.items())


@pytest.mark.parametrize(("key", "hyper", "problem"), UNBIASED_CASES,
                         ids=[f"{label(k, h)}-{p}" for k, h, p in UNBIASED_CASES])
def test_unbiased_against_enumeration(key, hyper, problem):
    torch.manual_seed(1)
    logits, f = PROBLEMS[problem]
    n = R // hyper.get("samples", 1)
    g = per_row_grads(estimators.create(key, **hyper), replicate(logits, n), f)
    mean_within(g.reshape(n, -1), exact_grad(logits, f).reshape(-1))


LEARNERS = [("rebar", {}), ("relax", {}), ("relax", {"rebar_term": False})]


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize(("key", "hyper"), LEARNERS, ids=[label(k, h) for k, h in LEARNERS])
def test_unbiased_after_learning_and_learning_lowers_variance(key, hyper, problem):
    """A control variate moved far by learn() (large cv_lr) leaves the mean exact; on a cost
    with an offset, learning lowers the variance."""
    torch.manual_seed(2)
    logits, f = PROBLEMS[problem]
    est = learned(key, logits, f, 20, cv_lr=0.1, **hyper)
    assert est.control_ is not None
    g = per_row_grads(est, replicate(logits, R), f)
    mean_within(g.reshape(R, -1), exact_grad(logits, f).reshape(-1))
    if problem == "categorical":
        n = R // 2
        before = per_row_grads(estimators.create(key, **hyper), replicate(LOGITS, n),
                               offset_cost)
        after = per_row_grads(learned(key, LOGITS, offset_cost, 100, cv_lr=3e-2, **hyper),
                              replicate(LOGITS, n), offset_cost)
        mean_within(after.reshape(n, -1), exact_grad(LOGITS, offset_cost).reshape(-1))
        variance_below(after.reshape(n, -1), before.reshape(n, -1))


# -- the Bernoulli toy ---------------------------------------------------------------------------
T = 0.45


def toy_variance(key, alpha, t=T):
    """The closed forms of the module docstring."""
    p = 1 / (1 + math.exp(-alpha))
    q, m, delta = 1 - p, max(p, 1 - p), 1 - 2 * t
    grad = p * q * delta
    if key == "reinforce":
        return p * q * (q * (1 - t) ** 4 + p * t**4) - grad**2
    if key == "rloo2":
        s = 2 * p * q
        return delta**2 * s * (1 - s) / 4
    if key == "arm":
        return 2 / 3 * delta**2 * (1 / 8 - (m - 0.5) ** 3) - grad**2
    return delta**2 * m**2 * (1 - m) * (m - 0.5)


TOY = {"reinforce": ("score_function", {}), "rloo2": ("score_function",
                                                    {"baseline": "mean", "samples": 2}),
       "arm": ("arm", {}), "disarm": ("disarm", {})}


def toy_cost(x):
    return (x[:, 0, 1] - T) ** 2


def test_toy_closed_forms_at_zero():
    assert toy_variance("reinforce", 0.0) == pytest.approx(((1 - T) ** 4 + T**4) / 8 - 0.01 / 16)
    assert toy_variance("rloo2", 0.0) == pytest.approx(0.01 / 16)
    assert toy_variance("arm", 0.0) == pytest.approx(0.01 / 48)
    assert toy_variance("disarm", 0.0) == 0.0


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("name", sorted(TOY))
def test_bernoulli_toy_mean_and_variance(name, alpha):
    torch.manual_seed(3)
    key, hyper = TOY[name]
    g = per_row_grads(estimators.create(key, **hyper),
                      replicate(torch.tensor([[0.0, alpha]]), 2 * R), toy_cost)
    torch.testing.assert_close(g[:, 0, 0], -g[:, 0, 1])
    p = 1 / (1 + math.exp(-alpha))
    truth = toy_variance(name, alpha)
    if truth == 0:  # DisARM at α = 0: every estimate is exactly Δ/4
        torch.testing.assert_close(g[:, 0, 1], torch.full((2 * R,), (1 - 2 * T) / 4))
        return
    mean_within(g[:, 0, 1], p * (1 - p) * (1 - 2 * T))
    variance_within(g[:, 0, 1], truth)


@pytest.mark.parametrize("key", ["rebar", "relax"])
def test_bernoulli_toy_rebar_relax_unbiased(key):
    torch.manual_seed(4)
    g = per_row_grads(estimators.create(key), replicate(torch.tensor([[0.0, 0.0]]), R),
                      toy_cost)
    mean_within(g[:, 0, 1], (1 - 2 * T) / 4)


# -- biased estimators ---------------------------------------------------------------------------
def enumerated_mean(est, logits, f):
    """``E[ĝ]`` over the sample ``D``, exactly, for estimators whose gradient depends on ``D``
    alone: the noise of row ``i`` makes the Gumbel-max pick outcome ``i``."""
    xs = exact.outcomes(Discrete(*logits.shape), dtype=torch.float64)  # N x L x C
    weights = exact.discrete_log_prob(logits.unsqueeze(0), xs)[0].exp()  # N
    noise = torch.where(xs > 0, 1 - 1e-12, 1e-12)
    params = replicate(logits, len(xs)).requires_grad_(True)
    assert torch.equal(est.sample(params, noise=noise), xs)
    est.surrogate(params, f, noise=noise).sum().backward()
    return (weights[:, None, None] * params.grad).sum(0)


QUADRATIC = torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def quadratic_form(x):
    flat = x.flatten(1)
    return torch.einsum("ni,ij,nj->n", flat, QUADRATIC, flat)


def linear_cost(x):
    return (x * WEIGHTS.to(x.dtype)).sum((1, 2))


@pytest.mark.parametrize(("f", "st_exact"), [(linear_cost, True), (categorical_cost, False),
                                             (quadratic_form, False)],
                         ids=["linear", "square", "quadratic-form"])
def test_reinmax_mean_is_exact_for_quadratic_costs(f, st_exact):
    """At τ = 1 ReinMax's mean is exact for f of degree ≤ 2 in the one-hot x (Heun's rule
    is exact for quadratics); straight-through's only for linear f. Exact over D."""
    logits = LOGITS.double()
    truth = exact_grad(logits, f)
    torch.testing.assert_close(enumerated_mean(estimators.create("reinmax"), logits, f), truth)
    st = enumerated_mean(estimators.create("straight_through"), logits, f)
    if st_exact:
        torch.testing.assert_close(st, truth)
    else:
        assert (st - truth).norm() > 0.1 * truth.norm()


def test_reinmax_bias_below_straight_through_on_a_quadratic():
    """Exact bias over D. Not a general law: for a cubic f ReinMax's bias can exceed ST's
    (1.48 vs 1.10 for (w·x)³ here), and τ ≠ 1 makes it biased even for linear f."""
    logits = LOGITS.double()
    truth = exact_grad(logits, categorical_cost)
    rm = enumerated_mean(estimators.create("reinmax"), logits, categorical_cost)
    st = enumerated_mean(estimators.create("straight_through"), logits, categorical_cost)
    assert (rm - truth).norm() < 1e-6 < 0.5 * (st - truth).norm()
    hot = enumerated_mean(estimators.create("reinmax", temperature=2.0), logits, linear_cost)
    assert (hot - exact_grad(logits, linear_cost)).norm() > 0.1


@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_rao_blackwell_st_same_mean_lower_variance_than_st_gumbel(temperature):
    """E[RB-ST] = E[ST-GS] (a conditional expectation of it) and Var is lower (K = 10)."""
    torch.manual_seed(5)
    n = R // 2
    st = per_row_grads(estimators.create("st_gumbel", temperature=temperature),
                       replicate(LOGITS, n), categorical_cost).reshape(n, -1).double()
    rb = per_row_grads(estimators.create("rao_blackwell_st", temperature=temperature),
                       replicate(LOGITS, n), categorical_cost).reshape(n, -1).double()
    se = (st.var(0) / n + rb.var(0) / n).sqrt()
    assert torch.all((st.mean(0) - rb.mean(0)).abs() <= 5 * se)
    variance_below(rb, st)


# -- contract: binary spaces, refusals, learn() --------------------------------------------------
@pytest.mark.parametrize("key", ["arm", "disarm"])
def test_binary_estimators_refuse_other_spaces(key):
    est = estimators.create(key)
    assert est.supports(Discrete(64, 2))
    for space in (Discrete(2, 3), Continuous(2)):
        assert not est.supports(space)
        with pytest.raises(ValueError, match=rf"{key} does not support .*Discrete\(n, 2\)"):
            est.param_shape(space)
    with pytest.raises(ValueError, match=r"Discrete\(n, 2\)"):
        est.surrogate(torch.zeros(4, 2, 3), lambda x: x.sum((1, 2)))
    with pytest.raises(ValueError, match=r"Discrete\(n, 2\)"):
        est.surrogate(torch.zeros(4, 2, 3), lambda x: x.sum((1, 2)), space=Discrete(2, 3))


def test_binary_sample_is_b_and_f_sees_the_antithetic_pair():
    est = estimators.create("arm")
    params = torch.tensor([[[0.0, 0.3], [1.0, -1.0]]]).expand(64, 2, 2)
    u = torch.rand(64, 2, generator=torch.Generator().manual_seed(6))
    seen = []
    est.surrogate(params, lambda x: seen.append(x) or x.sum((1, 2)), noise=u)
    p = torch.sigmoid(params[..., 1] - params[..., 0])
    b, b_tilde = (u < p).float(), (1 - u < p).float()
    assert torch.equal(est.sample(params, noise=u)[..., 1], b)
    assert torch.equal(seen[0][0::2, :, 1], b) and torch.equal(seen[0][1::2, :, 1], b_tilde)


@pytest.mark.parametrize(
    ("key", "hyper", "names"),
    [("rebar", {"temperature": 0.0}, ["temperature", "(0, inf)"]),
     ("rebar", {"cv_lr": -1.0}, ["cv_lr", "(0, inf)"]),
     ("relax", {"hidden": 0}, ["hidden", ">= 1"]),
     ("relax", {"rebar_term": "yes"}, ["rebar_term", "True or False"]),
     ("relax", {"cv_lr": 0}, ["cv_lr"]),
     ("rao_blackwell_st", {"samples": 0}, ["samples", ">= 1"]),
     ("rao_blackwell_st", {"temperature": -1.0}, ["temperature", "(0, inf)"]),
     ("reinmax", {"temperature": 0.0}, ["temperature", "(0, inf)"]),
     ("arm", {"temperature": 1.0}, ["no hyper-parameter", "temperature"])],
)
def test_bad_hyperparameters(key, hyper, names):
    with pytest.raises(ValueError) as info:
        estimators.create(key, **hyper)
    for name in names:
        assert name in str(info.value)


def test_f_evaluations_and_learns_flags():
    evals = {k: estimators.create(k).f_evaluations for k in estimators.available()}
    assert evals == {"pathwise": 1, "smoothing": 1, "reparam": 1, "score_function": 1,
                     "straight_through": 1, "gumbel_softmax": 1, "st_gumbel": 1,
                     "rebar": 3, "relax": 3, "arm": 2, "disarm": 2, "rao_blackwell_st": 1,
                     "reinmax": 1, "gst": 1, "zgr": 1, "decoupled_st": 1, "arms": 2,
                     "measure_valued": 3, "indecater": 2, "double_cv": 2, "rodeo": 2,
                     "arsm": 2, "maligan": 1, "bgan": 20, "seqgan_rollout": 1}
    assert estimators.create("relax", rebar_term=False).f_evaluations == 1
    assert estimators.create("score_function", samples=4).f_evaluations == 4
    # counts that grow with the space: one call per position and other class, per swap,
    # per coordinate pair
    assert estimators.create("indecater").evaluations(Discrete(6, 10)) == 1 + 6 * 9
    assert estimators.create("arsm").evaluations(Discrete(2, 4)) == 1 + 4 * 3 / 2
    assert estimators.create("measure_valued").evaluations(Continuous(5)) == 11
    assert estimators.create("arm").evaluations(Discrete(64, 2)) == 2
    assert {k for k in estimators.available() if estimators.create(k).learns} == {
        "rebar", "relax", "double_cv", "rodeo"}
    est = estimators.create("st_gumbel")
    assert est.learn(torch.zeros(4, 2, 3), categorical_cost) is None


def test_relax_without_the_rebar_term_treats_f_as_a_black_box():
    est = estimators.create("relax", rebar_term=False)
    assert not est.differentiable_f
    w = torch.ones(3, requires_grad=True)
    params = replicate(LOGITS, 16).requires_grad_(True)
    est.surrogate(params, lambda x: (x.sum(1) @ w) ** 2).mean().backward()
    assert w.grad is None and params.grad.abs().sum() > 0


@pytest.mark.parametrize("key", ["rebar", "relax"])
def test_learn_touches_only_the_control_variate(key):
    w = torch.ones(3, requires_grad=True)

    def f(x):
        return ((x * WEIGHTS).sum(-1) @ w[:2]) ** 2

    frozen = estimators.create(key).frozen()
    frozen.learn(replicate(LOGITS, 32), f)
    assert frozen.control_ is None, "a frozen copy learns nothing"
    est = learned(key, LOGITS, f, 1)
    start = est._init_control((2, 3))
    moved = {k: float((v.detach().double() - start[k]).abs().max())
             for k, v in est.control_.items()}
    assert max(moved.values()) > 0 and w.grad is None
    snapshot = {k: v.detach().clone() for k, v in est.control_.items()}
    twin = est.frozen()
    assert twin.control_ is est.control_, "frozen copies share the learned state"
    twin.learn(replicate(LOGITS, 32), f)
    assert all(torch.equal(snapshot[k], v) for k, v in est.control_.items())
    with pytest.raises(ValueError, match="reset"):
        est.surrogate(torch.zeros(4, 3, 3), lambda x: x.sum((1, 2)))
    est.reset()
    assert est.control_ is None


@pytest.mark.parametrize("key", ["rebar", "relax", "double_cv", "rodeo"])
def test_learned_control_variate_under_vmap_matches_the_loop(key):
    t = tasks.create("binary_digits")
    torch.manual_seed(0)
    est = estimators.create(key, cv_lr=0.05)
    G = t.make_generator(est.param_shape(t.space))
    f = generator_loss("nonsaturating", t.make_discriminator().requires_grad_(False))
    z = t.sample_latent(8, generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        est.learn(G(z), f, generator=torch.Generator().manual_seed(2))
    est = est.frozen()
    noise = draw_noise(est, G(z), 4, t.space, torch.Generator().manual_seed(3))
    batched = replicate_gradients(est, G, f, z, noise, t.space)
    looped = loop_gradients(est, G, f, z, noise, t.space)
    for name in looped:
        torch.testing.assert_close(batched[name], looped[name], rtol=1e-4, atol=1e-6)


# -- training ------------------------------------------------------------------------------------
SHORT = {"steps": 3, "eval_every": 3, "eval_samples": 64, "batch_size": 16, "device": "cpu"}


BINARY_DIGITS = [k for k in estimators.available()
                 if estimators.create(k).supports(tasks.create("binary_digits").space)]


@pytest.mark.parametrize("key", BINARY_DIGITS)
def test_trains_on_binary_digits(key):
    est = estimators.create(key)
    h = train("binary_digits", est, **SHORT)
    assert h.attrs["status"] == "ok" and list(h["step"]) == [0, 3]
    if est.learns:  # the training loop called learn(): the control variate moved
        start = est._init_control((64, 2))
        assert est.control_ is not None
        assert any(not torch.allclose(v.detach().double(), start[k])
                   for k, v in est.control_.items())


def test_training_with_a_learned_control_variate_is_deterministic():
    a = train("binary_digits", "relax", seed=5, **SHORT)
    b = train("binary_digits", "relax", seed=5, **SHORT)
    cols = [c for c in a.columns if c != "elapsed_s"]
    assert a[cols].equals(b[cols])
