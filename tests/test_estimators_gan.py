r"""MaliGAN, BGAN and the group baselines of the score function, by exact enumeration.

Exact expectations. A row's draws enter these estimators only through which symbols were
drawn, so on ``Discrete(1, C)`` the expectation of a row's gradient over ``N`` draws is a
finite sum over the outcomes: over the count vectors ``n`` (``Σ n_c = N``) with the
multinomial probabilities for MaliGAN and BGAN, whose gradient is symmetric in the draws,
and over every ordered ``K``-tuple for the score function. Each outcome is one row of a
single call, its draws forced by uniforms that make Gumbel-max pick them
(:func:`noise_for`), so the expectations are computed from the estimators' own code, in
float64, to rounding (tolerance 1e-10).

The optimal discriminator. For data ``p_d`` and generator ``p_θ = softmax(θ)``, D's optimal
logit is ``T*(x) = log p_d(x) − log p_θ(x)`` (Goodfellow et al., 2014, Prop. 1), so
``e^{T*} = D*/(1 − D*) = p_d/p_θ``, and both papers' target gradient is
``∇_θ KL(p_d ‖ p_θ) = −E_{p_d} ∇_θ log softmax(θ)_x = p_θ − p_d``.

The Monte Carlo test (the gradient statistics) is seeded; its intervals are the engine's
95% intervals, so the outcome is deterministic and its chance of failing on a fresh seed is
that of a 95% interval.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy.stats import multinomial

from gangrad import estimators, exact, tasks
from gangrad.estimators import _categorical as cat
from gangrad.measure import gradient_stats
from gangrad.runner.cell import run_cells
from gangrad.runner.suite import SuiteError, parse_suite
from gangrad.schedules import Schedule
from gangrad.train import train, train_autoregressive, train_seeds

THETA = torch.tensor([0.4, -0.3, 0.9], dtype=torch.float64)
P_DATA = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
W = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


def noise_for(symbols: torch.Tensor, classes: int) -> torch.Tensor:
    """Uniforms ``(*symbols.shape, classes)`` whose Gumbel-max draws are ``symbols``: the
    chosen class gets ``u = 1 − 10⁻¹²`` (Gumbel 27.6), the others ``u = ½`` (Gumbel 0.37)."""
    u = torch.full((*symbols.shape, classes), 0.5, dtype=torch.float64)
    return u.scatter(-1, symbols.unsqueeze(-1), 1 - 1e-12)


def optimal_logit(theta: torch.Tensor = THETA, p_data: torch.Tensor = P_DATA):
    """The optimal D's logit ``T*(x) = log p_d(x) − log p_θ(x)`` on one-hot ``x (N, 1, C)``."""
    t = p_data.log() - theta.log_softmax(-1)
    return lambda x: x.squeeze(1) @ t


def nonsaturating(logit):
    return lambda x: torch.nn.functional.softplus(-logit(x))


def count_vectors(n: int, classes: int) -> list[tuple[int, ...]]:
    """Every ``(n_1, …, n_C)`` of non-negative integers summing to ``n`` (stars and bars)."""
    out = []
    for cut in itertools.combinations(range(n + classes - 1), classes - 1):
        edges = (-1, *cut, n + classes - 1)
        out.append(tuple(edges[i + 1] - edges[i] - 1 for i in range(classes)))
    return out


def expected_by_counts(est, theta: torch.Tensor, f, n: int, **kw) -> torch.Tensor:
    """``E`` of a row's gradient (w.r.t. ``θ (C,)``) with ``n`` draws per row, exactly."""
    C = theta.shape[-1]
    counts = count_vectors(n, C)
    symbols = torch.tensor([[k for k, c in enumerate(cnt) for _ in range(c)] for cnt in counts])
    pmf = torch.tensor(multinomial(n, theta.softmax(-1).numpy()).pmf(counts),
                       dtype=torch.float64)
    assert abs(float(pmf.sum()) - 1) < 1e-9
    params = theta.reshape(1, 1, C).repeat(len(counts), 1, 1).requires_grad_(True)
    est.surrogate(params, f, noise=noise_for(symbols.unsqueeze(-1), C), **kw).sum().backward()
    return (pmf[:, None] * params.grad.reshape(len(counts), C)).sum(0)


def expected_by_tuples(est, theta: torch.Tensor, f, k: int) -> torch.Tensor:
    """``E`` of a row's gradient with ``k`` ordered draws per row, over all ``C^k`` tuples."""
    C = theta.shape[-1]
    tuples = torch.tensor(list(itertools.product(range(C), repeat=k)))  # R x k
    prob = theta.softmax(-1)[tuples].prod(1)
    params = theta.reshape(1, 1, C).repeat(len(tuples), 1, 1).requires_grad_(True)
    est.surrogate(params, f, noise=noise_for(tuples.unsqueeze(-1), C)).sum().backward()
    return (prob[:, None] * params.grad.reshape(len(tuples), C)).sum(0)


def exact_gradient(theta: torch.Tensor, f) -> torch.Tensor:
    theta = theta.clone().requires_grad_(True)
    exact.discrete_expectation(theta.reshape(1, 1, -1), f).sum().backward()
    return theta.grad


def test_noise_for_forces_the_draws():
    symbols = torch.tensor([[0, 2, 1, 2]])
    x = cat.one_hot_argmax(3 * THETA + cat.gumbel(noise_for(symbols, 3)))
    assert torch.equal(x.argmax(-1), symbols)


# -- the papers' formulas, line by line --------------------------------------------------------
def _draws_and_logits(B: int, S: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    params = torch.randn(B, 2, 3, generator=g, dtype=torch.float64)
    w = torch.randn(6, generator=g, dtype=torch.float64)
    return params, (lambda x: x.flatten(1) @ w), g


def test_bgan_is_the_released_code_loss():
    """``−(w̃ · log g).sum(0).mean()`` with ``w̃`` the softmax over the samples of D's output
    (``multinomial_BGAN``, rdevon/BGAN ``lib/loss.py``), held constant."""
    B, M = 5, 6
    params, logit, g = _draws_and_logits(B, M, 0)
    est = estimators.create("bgan", samples=M)
    noise = est.noise(params, generator=g)
    ours = params.clone().requires_grad_(True)
    est.surrogate(ours, nonsaturating(logit), noise=noise, logit=logit).mean().backward()

    x = cat.one_hot_argmax(params.unsqueeze(1) + cat.gumbel(noise))  # B x M x L x C
    theirs = params.clone().requires_grad_(True)
    log_g = (x * theirs.log_softmax(-1).unsqueeze(1)).sum((2, 3))  # B x M
    w_tilde = logit(x.flatten(0, 1)).reshape(B, M).softmax(1)
    (-(w_tilde * log_g).sum(1).mean()).backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("baseline", ["mean", "none"])
def test_maligan_is_the_papers_update(baseline):
    """``Σ_i (r_D(x_i)/Σ_j r_D(x_j) − b) ∇ log p_θ(x_i)`` over the batch's ``m`` draws,
    ``r_D = D/(1 − D)``, ``b = 1/m`` (or 0), ascended: the estimate is its negative."""
    B, S = 6, 2
    params, logit, g = _draws_and_logits(B, S, 1)
    est = estimators.create("maligan", samples=S, baseline=baseline)
    noise = est.noise(params, generator=g)
    ours = params.clone().requires_grad_(True)
    est.surrogate(ours, nonsaturating(logit), noise=noise, logit=logit).mean().backward()

    x = cat.one_hot_argmax(params.unsqueeze(1) + cat.gumbel(noise)).flatten(0, 1)  # m x L x C
    theirs = params.clone().requires_grad_(True)
    log_p = (x * theirs.log_softmax(-1).repeat_interleave(S, 0)).sum((1, 2))  # m
    d = torch.sigmoid(logit(x))
    r = d / (1 - d)
    b = 1 / (B * S) if baseline == "mean" else 0.0
    (-((r / r.sum() - b) * log_p).sum()).backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-10, atol=1e-13)


def test_maligan_batch_normalisation_equals_one_row_of_all_draws():
    """Rows sharing θ, one draw each, normalised over the batch: the same gradient w.r.t. θ
    as one row holding all the draws normalised together; and BGAN is MaliGAN normalised
    per row without a baseline."""
    symbols = torch.tensor([0, 2, 2, 1, 0, 2, 1])
    n, f, logit = len(symbols), nonsaturating(optimal_logit()), optimal_logit()
    theta = THETA.clone().requires_grad_(True)
    batch = estimators.create("maligan")
    batch.surrogate(theta.reshape(1, 1, 3).expand(n, 1, 3), f, logit=logit,
                    noise=noise_for(symbols.reshape(n, 1, 1), 3)).mean().backward()
    grads = [theta.grad.clone()]
    for est in (estimators.create("maligan", normalize="row", samples=n),
                estimators.create("maligan", normalize="row", samples=n, baseline="none"),
                estimators.create("bgan", samples=n)):
        theta.grad = None
        est.surrogate(theta.reshape(1, 1, 3), f, logit=logit,
                      noise=noise_for(symbols.reshape(1, n, 1), 3)).mean().backward()
        grads.append(theta.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grads[2], grads[3], rtol=1e-12, atol=1e-14)
    # b = 1/m changes the estimate (by a multiple of Σ_i ∇log p(x_i)), not its mean
    assert not torch.allclose(grads[1], grads[2])


# -- the papers' property, at the optimal discriminator ----------------------------------------
@pytest.mark.parametrize(("key", "hyper"), [("maligan", {"normalize": "row"}),
                                            ("maligan", {"normalize": "row",
                                                         "baseline": "none"}),
                                            ("bgan", {})])
def test_at_the_optimal_d_the_update_tends_to_the_kl_gradient(key, hyper):
    """Self-normalised importance sampling: ``E ĝ_N → ∇_θ KL(p_d ‖ p_θ) = p_θ − p_d`` with
    an error that falls like ``1/N`` (MaliGAN, Sec. 3: the maximum-likelihood direction;
    BGAN, Sec. 2: the gradient of ``KL(p̃ ‖ g_θ)``, ``p̃ = p_d`` at the optimal D)."""
    target = THETA.softmax(-1) - P_DATA
    logit = optimal_logit()
    errors = {}
    for n in (8, 32, 128):
        est = estimators.create(key, **{**hyper, "samples": n})
        g = expected_by_counts(est, THETA, nonsaturating(logit), n, logit=logit)
        errors[n] = float((g - target).norm())
    assert errors[128] < 0.01 * float(target.norm())
    for small, large in ((8, 32), (32, 128)):  # O(1/N): 4x the draws, about 1/4 the error
        assert 3.5 < errors[small] / errors[large] < 4.6, errors


@pytest.mark.parametrize("key", ["maligan", "bgan"])
def test_when_d_cannot_tell_the_expected_update_is_zero(key):
    """``p_d = p_θ``: the optimal logit is 0 everywhere, every weight equal. MaliGAN's
    advantages are then all 0 (each estimate is 0); BGAN's estimate ``−(1/M) Σ ∇log p`` is
    not, but its expectation is."""
    est = estimators.create(key, samples=5) if key == "bgan" else \
        estimators.create(key, normalize="row", samples=5)
    logit = optimal_logit(THETA, THETA.softmax(-1))
    g = expected_by_counts(est, THETA, nonsaturating(logit), 5, logit=logit)
    torch.testing.assert_close(g, torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-12)


def test_the_bias_against_the_cost_gradient_is_reported():
    """MaliGAN and BGAN follow their own objectives, not ``∇ E f``: the gradient statistics
    measure them against the exact ``∇ E f`` (enumeration) and their bias intervals exclude
    0, while the unbiased RLOO's, in the same measurement, does not."""
    df = gradient_stats("categorical", ["maligan", ("bgan", {"samples": 8}),
                                        ("score_function", {"baseline": "mean", "samples": 4})],
                        replicates=1000, batch_size=64, timing=False, seed=0)
    total = df[df.layer == "total"].set_index("key")
    assert (total["reference"] == "enumeration").all()
    assert total.loc["maligan", "bias_lo"] > 0
    assert total.loc["bgan", "bias_lo"] > 0
    assert total.loc["score_function", "bias_lo"] == 0
    assert (total["f_evals"] == [1, 8, 4]).all()


# -- group baselines ---------------------------------------------------------------------------
def cost(x):
    return (x.squeeze(1) @ W) ** 2 + 1.0


def test_group_mean_is_rloo_scaled_by_k_minus_one_over_k():
    """``f_s − mean_all = ((K − 1)/K)(f_s − mean_{−s})``: the same draws give exactly
    ``(K − 1)/K`` times the RLOO gradient (any params, any cost)."""
    K = 4
    params = torch.randn(6, 2, 3, generator=torch.Generator().manual_seed(3),
                         dtype=torch.float64)
    grads = {}
    for baseline in ("mean", "group_mean"):
        est = estimators.create("score_function", baseline=baseline, samples=K)
        noise = est.noise(params, generator=torch.Generator().manual_seed(4))
        leaf = params.clone().requires_grad_(True)
        s = est.surrogate(leaf, lambda x: (x.flatten(1) @ W.repeat(2)) ** 2, noise=noise)
        s.mean().backward()
        grads[baseline] = leaf.grad
    torch.testing.assert_close(grads["group_mean"], (K - 1) / K * grads["mean"],
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_which_group_baselines_are_unbiased(k):
    """Exact expectations over all ``3^k`` draws of one row, against the exact ``∇ E f``:

    - ``none`` and RLOO (``mean``): equal to it;
    - ``group_mean`` (Dr. GRPO): exactly ``(k − 1)/k`` times it (unbiased up to that known
      factor; ``k/(k − 1)`` times the estimate is RLOO, unbiased);
    - ``group_norm`` (GRPO): biased, and not by a factor: its expectation is not parallel
      to ``∇ E f`` (more than 30% of its norm is orthogonal to it, for this cost)."""
    truth = exact_gradient(THETA, cost)
    expect = {b: expected_by_tuples(estimators.create("score_function", baseline=b,
                                                      samples=k), THETA, cost, k)
              for b in ("none", "mean", "group_mean", "group_norm")}
    torch.testing.assert_close(expect["none"], truth, rtol=0, atol=1e-10)
    torch.testing.assert_close(expect["mean"], truth, rtol=0, atol=1e-10)
    torch.testing.assert_close(expect["group_mean"], (k - 1) / k * truth, rtol=0, atol=1e-10)
    g = expect["group_norm"]
    orthogonal = g - (g @ truth) / (truth @ truth) * truth
    assert orthogonal.norm() > 0.3 * g.norm()


def test_group_baselines_keep_rows_independent():
    for baseline in ("group_mean", "group_norm"):
        est = estimators.create("score_function", baseline=baseline, samples=3)
        assert est.rows_independent and not est.stacks_seeds and not est.learns
        with pytest.raises(ValueError, match="needs samples >= 2"):
            est.replace(samples=1)
    assert estimators.create("bgan").rows_independent
    assert estimators.create("maligan", normalize="row", samples=2).rows_independent
    assert not estimators.create("maligan").rows_independent  # the batch's normaliser


# -- training ----------------------------------------------------------------------------------
class OldSignature(estimators.ScoreFunction):
    """A plug-in written before ``logit=`` existed: its ``surrogate`` does not accept it."""

    def surrogate(self, params, f, *, noise=None, space=None, generator=None):
        return super().surrogate(params, f, noise=noise, space=space, generator=generator)


def test_a_plugin_unaware_of_the_logit_still_trains_and_is_measured():
    est = OldSignature(baseline="mean", samples=2)
    history = train("categorical", est, steps=4, eval_every=2, eval_samples=100,
                    batch_size=16, device="cpu")
    assert history.attrs["status"] == "ok"
    df = gradient_stats("categorical", [est], replicates=8, batch_size=8, timing=True,
                        timing_repeats=1)
    assert len(df) and df["variance"].notna().all()


@pytest.mark.parametrize(("key", "hyper"), [("maligan", {}), ("bgan", {"samples": 3}),
                                            ("score_function", {"baseline": "group_norm",
                                                                "samples": 3})])
def test_each_seed_is_its_lone_run(key, hyper):
    """Stacked seeds (row-coupled MaliGAN per seed; BGAN and GRPO in one call, D's logit
    through the stacked D) give each seed its lone run, bit for bit."""
    kwargs = {"steps": 6, "eval_every": 3, "eval_samples": 200, "device": "cpu"}
    seeds = [0, 4]
    batched = train_seeds("categorical", estimators.create(key, **hyper), seeds, **kwargs)
    for seed, history in zip(seeds, batched, strict=True):
        alone = train("categorical", estimators.create(key, **hyper), seed=seed, **kwargs)
        assert history.attrs["status"] == alone.attrs["status"] == "ok"
        assert history.drop(columns="elapsed_s").equals(alone.drop(columns="elapsed_s"))


def test_maligan_trains_an_autoregressive_generator():
    """One draw per row (uniforms of the logits' shape): MaliGAN can drive SeqGAN's LSTM;
    BGAN's several draws per row cannot share the generator's path, and are refused."""
    from gangrad.tasks.oracle_seq import SeqGenerator

    task = tasks.create("oracle_seq", vocab=20, length=6, hidden=16, train_size=200,
                        test_size=10)
    torch.manual_seed(0)
    G = SeqGenerator(20, 6, embed=16, hidden=16)
    history, _ = train_autoregressive(task, "maligan", G, steps=4, batch_size=16,
                                      eval_every=2, eval_samples=40, device="cpu")
    assert history.attrs["status"] == "ok" and history["step"].tolist() == [0, 2, 4]
    with pytest.raises(ValueError, match="uniform per logit"):
        train_autoregressive(task, "bgan", G, steps=1, device="cpu")


# -- annealed Gumbel-softmax -------------------------------------------------------------------
def relgan_inverse_temperature(policy: str, beta_max: float, i: int, n: int) -> float:
    """RelGAN's ``get_fixed_temperature`` (weilinie/RelGAN), written from its definition."""
    if policy == "exp":
        return beta_max ** (i / n)
    if policy == "sigmoid":
        return (beta_max - 1) / (1 + math.exp((n / 2 - i) * 20 / n)) + 1
    h = {"lin": i / n, "quad": (i / n) ** 2, "sqrt": math.sqrt(i / n),
         "log": math.log(i + 1) / math.log(n + 1)}[policy]
    return 1 + (beta_max - 1) * h


@pytest.mark.parametrize(("policy", "kind"), [("exp", "geometric"), ("lin", "inverse_linear"),
                                              ("quad", "inverse_quad"),
                                              ("sqrt", "inverse_sqrt"), ("log", "inverse_log"),
                                              ("sigmoid", "inverse_sigmoid")])
def test_relgan_temperature_policies(policy, kind):
    """``Schedule(1, 1/β_max, N, kind)`` is ``1/β`` of RelGAN's policy at every step (with
    ``N`` where RelGAN's ``lin``, ``quad``, ``sqrt`` and ``log`` have ``N − 1``)."""
    n, beta_max = 400, 100.0
    sched = Schedule(1.0, 1 / beta_max, n, kind)
    for i in (0, 1, 57, 200, 399, 400):
        beta = relgan_inverse_temperature(policy, beta_max, i, n)
        assert sched(i) == pytest.approx(1 / beta, rel=1e-12)


def test_inverse_schedules_refuse_non_positive_ends():
    with pytest.raises(ValueError, match="end must be in"):
        Schedule(1.0, 0.0, 10, "inverse_linear")


SUITE = """
name = "annealed"
seeds = [0, 1]
[train]
steps = 6
eval_every = 3
eval_samples = 100
[grad_stats]
at_steps = [0, "end"]
replicates = 4
batch_size = 8
timing_repeats = 1
[[tasks]]
key = "categorical"
estimators = [
  "gumbel_softmax",
  { key = "gumbel_softmax", anneal = { temperature = { start = 1.0, end = 0.01 } } },
  { key = "gumbel_softmax", anneal = [
      { temperature = "1:0.01:inverse_linear" },
      { temperature = { start = 2.0, end = 0.5, steps = 3, kind = "linear" } },
  ] },
  "maligan",
]
"""


def test_a_suite_names_an_annealed_gumbel_softmax():
    suite = parse_suite(SUITE, "annealed")
    cells = {c.estimator_label: c for c in suite.cells if c.seed == 0}
    assert sorted(cells) == [
        "gumbel_softmax", "gumbel_softmax(temperature=1->0.01 geometric)",
        "gumbel_softmax(temperature=1->0.01 inverse_linear)",
        "gumbel_softmax(temperature=2->0.5 linear)", "maligan"]
    plain = cells["gumbel_softmax"]
    assert "anneal" not in plain.config()  # a cell without a schedule keeps its identity
    annealed = cells["gumbel_softmax(temperature=1->0.01 geometric)"]
    assert annealed.config()["anneal"] == {
        "temperature": {"start": 1.0, "end": 0.01, "steps": 6, "kind": "geometric"}}
    results = run_cells([c.config() for c in suite.cells
                         if c.estimator_label == annealed.estimator_label], device="cpu")
    assert [r["status"] for r in results] == ["ok", "ok"]
    assert {r["label"] for r in results} == {annealed.estimator_label}


def test_the_annealed_value_is_what_the_estimator_uses():
    seen = {}
    train("categorical", "gumbel_softmax", steps=8, eval_every=4, eval_samples=100,
          batch_size=16, device="cpu", schedules={"temperature": Schedule(1.0, 0.01, 8)},
          checkpoint_steps=[4], on_checkpoint=lambda step, state: seen.setdefault(
              step, state.estimator.temperature))
    assert seen[4] == pytest.approx(Schedule(1.0, 0.01, 8)(3))  # set before step 3's update


@pytest.mark.parametrize(("entry", "message"), [
    ('{ key = "gumbel_softmax", temperature = 0.3, anneal = { temperature = "1:0.1" } }',
     "'temperature' is both set and annealed"),
    ('{ key = "gumbel_softmax", anneal = { tau = "1:0.1" } }', "cannot anneal 'tau'"),
    ('{ key = "gumbel_softmax", anneal = { temperature = "1:0" } }', "end must be in"),
    ('{ key = "gumbel_softmax", anneal = { temperature = "1:0.1:cubic" } }', "kind must be"),
    ('{ key = "gumbel_softmax", anneal = { temperature = { start = 1.0 } } }', "missing end"),
    ('{ key = "gumbel_softmax", anneal = "1:0.1" }', "anneal must be a table"),
    ('{ key = "gumbel_softmax", anneal = { temperature = "1:-1:linear" } }',
     "temperature must be in"),
])
def test_bad_anneal_entries_are_named(entry, message):
    text = SUITE.replace('"maligan",', entry + ",")
    with pytest.raises(SuiteError, match=message):
        parse_suite(text, "annealed")
