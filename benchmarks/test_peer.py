"""Peer side-by-side: gangrad's estimators against storchastic's, on the ``categorical`` task.

Run with ``make bench-peer``: storchastic (with pyro-ppl and entmax) lives in its own virtual
environment, ``.venv-peer``, outside the project's dependencies; where ``storch`` cannot be
imported this module is skipped. Importing ``storch`` patches torch for the whole process
(``torch.is_tensor``, ``Tensor.to/le/gt`` wrapped, distribution argument validation off by
default), so run this module on its own, not together with the other benchmarks.

Problem: the setting of ``categorical`` with its defaults, ``B = 64`` rows (the task's batch
size) of one symbol out of ``K = 10`` classes. Logits ``θ (B, K)`` are fixed standard normals
(seed 1), one distinct categorical per row; the task's own generator starts from uniform
logits, identical for every row, which would exercise less. The cost is the task's
non-saturating generator loss through a fixed, untrained discriminator of the task
(``make_discriminator()`` after ``torch.manual_seed(0)``: an MLP ``K → 64 → 64 → 1`` with
LeakyReLU(0.2)), ``f(x) = softplus(−D(x))``, the same Python function for both libraries, applied
to the last axis of one-hot or relaxed vectors. One estimate is the gradient, with respect to
``θ``, of the batch-mean surrogate: an estimate of ``∇_θ (1/B) Σ_b E_{x ~ Cat(softmax θ_b)} f(x)``.

What is compared, estimator for estimator:

- ``score_function``: gangrad ``score_function(baseline="mean", samples=4)`` against
  storchastic ``ScoreFunction(n_samples=4, baseline_factory="batch_average")``. Both draw
  S = 4 one-hot samples per row and return ``(1/(B·S)) Σ_{b,s} (f(x_bs) − c_bs) ∇ log p(x_bs)``
  with the leave-one-out baseline ``c_bs = Σ_{t≠s} f(x_bt) / (S − 1)`` over the same row's
  other draws (storchastic's ``BatchAverageBaseline`` averages over the sample plate, not over
  the rows, because the rows are a separate plate, ``storch.denote_independent``). ``f`` gets
  no gradient in either. Sampling differs: gangrad takes the Gumbel-max of uniform noise,
  storchastic calls ``OneHotCategorical.sample`` (multinomial); both are exact draws.
- ``gumbel_softmax``: gangrad ``gumbel_softmax(temperature=1)`` against storchastic
  ``GumbelSoftmax(n_samples=1, initial_temperature=1, straight_through=False,
  annealing_rate=0)``; storchastic's default ``annealing_rate=1e-5`` would shrink τ after every
  backward pass, 0 keeps it at 1. One relaxed sample ``softmax((θ + g)/τ)`` per row,
  differentiated pathwise through ``f``. storchastic builds it from ``probs`` (torch's
  ``RelaxedOneHotCategorical``), gangrad from the logits: the same function up to rounding.

Checks, all asserted:

1. Same estimator on the same draws. ``score_function``: storchastic draws; gangrad is handed
   uniform noise whose Gumbel-max is exactly those one-hot samples (``u = 1 − ε`` on the drawn
   class, ``½`` elsewhere; checked by recording what ``f`` sees); both gradients then agree to
   float rounding. ``gumbel_softmax``: both read ``B·K`` uniforms from torch's global generator
   in the same order, so one seed gives both the same draw and the same gradient. The peer's
   configuration is checked too: S samples on its sample plate, exactly one baseline module, of
   class ``BatchAverageBaseline``; temperature still 1 after 2000 backward passes.
2. Same distribution of estimates, from ``N = 2000`` independent replicate estimates per library
   (different seeds, so the two sets are independent). Variance: ``V = Σ_{b,k} Var(ĝ_bk)``
   (per-element variance over replicates, summed) is the mean of ``d_r = ‖ĝ_r − ḡ‖²``
   (``N − 1`` denominator), so its standard error is ``sd(d)/√N``; the delta method gives a
   99.9 % interval ``log(V_peer / V_gangrad) ± z·√((se_p/V_p)² + (se_g/V_g)²)``, which must
   contain 0 (the ratio 1). Means, two ways: every element's difference within
   ``z_{1−α/(2BK)}·√(se_p² + se_g²)`` (Bonferroni at α = 0.1 %), and the whole vector:
   ``T = ‖ḡ_peer − ḡ_gangrad‖²`` has expectation ``tr Σ_d`` and, nearly, variance
   ``2 tr Σ_d²`` when the means agree, ``Σ_d = (Σ_peer + Σ_gangrad)/N``, where the
   covariances are block-diagonal over rows (rows draw independently) and estimated block by
   block; ``|T − tr Σ_d| / √(2 tr Σ_d²) < 3.5``. ``score_function`` is unbiased, so each
   library's mean must also match the exact gradient by enumeration over the ``K`` outcomes
   (:func:`gangrad.exact.discrete_gradient`) with the same statistic. Gumbel-softmax is biased
   for the discrete objective: its distance to the exact gradient is recorded, not asserted.
   The checks have power to spare: a peer with S = 3 draws gives a variance ratio of 1.53,
   with τ = 0.9 a ratio of 1.27 and means 17 standard deviations apart, and with its
   default annealing (τ drifting from 1 to 0.98 over the 2000 passes) a ratio of 1.027,
   six standard errors from 1.

Timing: one estimate, forward and backward, with ``benchmark.pedantic`` and warm-up rounds,
per library (``test_estimate_time``) and both libraries alternated round by round in one
test (``test_time_ratio``: medians and ``peer_ms / gangrad_ms`` in ``extra_info``). torch runs
on one thread here: the problem is tiny, so intra-op threads only add synchronisation, and on
a machine shared with other work they inflate both libraries' times several-fold.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import pytest
import torch
from torch import nn
from torch.distributions import OneHotCategorical

from gangrad import estimators, exact, tasks
from gangrad.spaces import Discrete

storch = pytest.importorskip("storch", reason="the peer, storchastic, is not installed "
                             "(make bench-peer installs it in .venv-peer)")
from storch.method import GumbelSoftmax, ScoreFunction  # noqa: E402
from storch.method.baseline import Baseline, BatchAverageBaseline  # noqa: E402

ESTIMATORS = ("score_function", "gumbel_softmax")
LIBRARIES = ("gangrad", "storchastic")
SAMPLES = 4  # score function: draws per row
TAU = 1.0  # Gumbel-softmax temperature
N = 2000  # replicate estimates per library for the cross-checks
SEEDS = {"gangrad": 11, "storchastic": 12}
ALPHA = 0.001  # two-sided level of the variance interval and of the per-element mean checks
Z_QUAD = 3.5  # bound on the standardized quadratic-form statistic
ROUNDS, WARMUP = 100, 10
PLATE, ROWS_PLATE = "z", "rows"


# -- the problem ------------------------------------------------------------------------------
@dataclass
class Problem:
    theta: torch.Tensor  # B x 1 x K, the task's parameter layout for Discrete(1, K)
    cost: Callable[[torch.Tensor], torch.Tensor]  # (..., K) -> (...)
    space: Discrete
    exact_grad: torch.Tensor  # B x K, float64

    @property
    def shape(self) -> tuple[int, int]:
        return self.theta.shape[0], self.theta.shape[2]

    def gangrad_cost(self, x: torch.Tensor) -> torch.Tensor:
        """``f`` in gangrad's contract: ``(N, 1, K) -> (N,)``."""
        return self.cost(x)[:, 0]


@pytest.fixture(scope="module")
def problem() -> Problem:
    task = tasks.create("categorical")
    B = task.training_defaults["batch_size"]
    torch.manual_seed(0)
    D = task.make_discriminator().requires_grad_(False)

    def cost(x: torch.Tensor) -> torch.Tensor:
        # D's MLP on the last axis: the task's D(x) = D.net(x.flatten(1)) for x (N, 1, K),
        # written so that storchastic's sample-plate dimensions pass through unchanged.
        return nn.functional.softplus(-D.net(x)).squeeze(-1)

    theta = torch.randn(B, 1, task.classes, generator=torch.Generator().manual_seed(1))
    prob = Problem(theta, cost, task.space, torch.empty(0))
    grad = exact.discrete_gradient(theta.double(), lambda x: prob.gangrad_cost(x.float()))
    prob.exact_grad = grad[:, 0].double()
    return prob


@pytest.fixture(autouse=True)
def _one_thread_and_clean_storch():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        storch.reset()


# -- one estimate per library -------------------------------------------------------------------
def gangrad_estimator(kind: str):
    if kind == "score_function":
        return estimators.create("score_function", baseline="mean", samples=SAMPLES)
    return estimators.create("gumbel_softmax", temperature=TAU)


def peer_method(kind: str):
    if kind == "score_function":
        return ScoreFunction(PLATE, n_samples=SAMPLES, baseline_factory="batch_average")
    return GumbelSoftmax(PLATE, n_samples=1, straight_through=False, initial_temperature=TAU,
                         annealing_rate=0.0)


def make_step(library: str, kind: str, prob: Problem, *, seen: list | None = None,
              noise: Callable[[], torch.Tensor | None] | None = None):
    """A closure computing one gradient estimate (forward and backward): ``(B, K)``.

    ``seen`` collects the peer's samples (as ``(B, S, 1, K)``); ``noise`` supplies gangrad's
    noise.
    """
    if library == "gangrad":
        est = gangrad_estimator(kind)
        leaf = prob.theta.clone().requires_grad_(True)

        def step() -> torch.Tensor:
            leaf.grad = None
            u = None if noise is None else noise()
            est.surrogate(leaf, prob.gangrad_cost, noise=u, space=prob.space).mean().backward()
            return leaf.grad[:, 0]

        step.estimator = est
        return step

    method = peer_method(kind)
    leaf = prob.theta[:, 0].clone().requires_grad_(True)

    def step() -> torch.Tensor:
        leaf.grad = None
        logits = storch.denote_independent(leaf, 0, ROWS_PLATE)
        x = method(OneHotCategorical(logits=logits))
        if seen is not None:
            seen.append((x.n, x._tensor.detach().reshape(-1, *prob.shape).transpose(0, 1)))
        storch.add_cost(prob.cost(x), "f")
        storch.backward()
        return leaf.grad

    step.method = method
    return step


def replicates(step: Callable[[], torch.Tensor], seed: int) -> torch.Tensor:
    """``N`` independent estimates, ``(N, B, K)`` float64."""
    torch.manual_seed(seed)
    return torch.stack([step().detach().double() for _ in range(N)])


# -- statistics ---------------------------------------------------------------------------------
@dataclass
class Summary:
    mean: torch.Tensor  # B x K
    se: torch.Tensor  # B x K, standard error of each mean
    cov: torch.Tensor  # B x K x K, per-row covariance of one estimate
    total_var: float  # Σ_{b,k} Var(ĝ_bk)
    total_var_se: float

    @classmethod
    def of(cls, g: torch.Tensor) -> Summary:
        n = g.shape[0]
        mean = g.mean(0)
        centred = g - mean
        d = centred.pow(2).sum((1, 2)) / (n - 1) * n  # mean(d) = total variance
        cov = torch.einsum("nbi,nbj->bij", centred, centred) / (n - 1)
        return cls(mean, g.std(0) / math.sqrt(n), cov, float(d.mean()),
                   float(d.std() / math.sqrt(n)))


def quadratic_z(diff: torch.Tensor, cov_of_diff: torch.Tensor) -> float:
    """``(‖diff‖² − tr Σ) / √(2 tr Σ²)`` for ``diff ~ N(0, Σ)``, ``Σ`` block-diagonal by row."""
    trace = float(cov_of_diff.diagonal(dim1=-2, dim2=-1).sum())
    trace_sq = float((cov_of_diff @ cov_of_diff).diagonal(dim1=-2, dim2=-1).sum())
    return (float(diff.pow(2).sum()) - trace) / math.sqrt(2 * trace_sq)


def variance_ratio_ci(peer: Summary, ours: Summary) -> tuple[float, float, float]:
    """``V_peer / V_gangrad`` and its delta-method ``1 − ALPHA`` interval."""
    ratio = peer.total_var / ours.total_var
    z = NormalDist().inv_cdf(1 - ALPHA / 2)
    half = z * math.hypot(peer.total_var_se / peer.total_var, ours.total_var_se / ours.total_var)
    return ratio, ratio * math.exp(-half), ratio * math.exp(half)


# -- 1. same estimator on the same draws -----------------------------------------------------------
def test_score_function_same_draws_same_gradient(problem):
    seen: list = []
    peer = make_step("storchastic", "score_function", problem, seen=seen)
    torch.manual_seed(3)
    g_peer = peer().clone()
    n, x = seen[-1]  # x: B x S x K one-hot, drawn by storchastic
    assert n == SAMPLES and x.shape == (*problem.shape[:1], SAMPLES, problem.shape[1])
    assert torch.equal(x.sum(-1), torch.ones(x.shape[:-1])), "storchastic's draws are one-hot"
    baselines = [m for m in peer.method.modules() if isinstance(m, Baseline)]
    assert len(baselines) == 1 and type(baselines[0]) is BatchAverageBaseline
    assert peer.method.sampling_method.n_samples == SAMPLES

    # Gumbel-max of u = 1 − ε on the drawn class and ½ elsewhere is that class whenever the
    # logits of a row span less than g(1 − ε) − g(½) ≈ 15.5 (float32).
    eps = torch.finfo(torch.float32).eps
    span = problem.theta.amax(-1) - problem.theta.amin(-1)
    assert float(span.max()) < 15.0
    u = torch.where(x.bool(), 1 - eps, 0.5)[:, :, None, :]  # B x S x 1 x K
    recorded: list[torch.Tensor] = []

    def recording_cost(xs: torch.Tensor) -> torch.Tensor:
        recorded.append(xs.detach())
        return problem.gangrad_cost(xs)

    est = gangrad_estimator("score_function")
    assert est.samples == SAMPLES and est.baseline == "mean"
    leaf = problem.theta.clone().requires_grad_(True)
    est.surrogate(leaf, recording_cost, noise=u, space=problem.space).mean().backward()
    B, K = problem.shape
    assert torch.equal(recorded[0].reshape(B, SAMPLES, K), x), "gangrad saw other samples"
    torch.testing.assert_close(leaf.grad[:, 0], g_peer, rtol=1e-4, atol=1e-7)
    assert float(g_peer.abs().max()) > 1e-5  # not vacuous


def test_gumbel_softmax_same_seed_same_gradient(problem):
    ours = make_step("gangrad", "gumbel_softmax", problem)
    peer = make_step("storchastic", "gumbel_softmax", problem)
    for seed in (3, 4, 5):
        torch.manual_seed(seed)
        g_ours = ours().clone()
        torch.manual_seed(seed)
        g_peer = peer().clone()
        torch.testing.assert_close(g_ours, g_peer, rtol=1e-4, atol=1e-7)
        assert float(g_peer.abs().max()) > 1e-5
    assert ours.estimator.temperature == TAU
    assert not peer.method.straight_through and float(peer.method.temperature) == TAU


# -- 2. same distribution of estimates ------------------------------------------------------------
@pytest.mark.parametrize("kind", ESTIMATORS)
def test_variance_and_mean_agree(benchmark, problem, kind):
    steps = {lib: make_step(lib, kind, problem) for lib in LIBRARIES}

    def run() -> dict[str, torch.Tensor]:
        return {lib: replicates(steps[lib], SEEDS[lib]) for lib in LIBRARIES}

    benchmark.group = f"peer side-by-side, categorical, {N} replicates of both libraries"
    grads = benchmark.pedantic(run, rounds=1, iterations=1)
    ours, peer = Summary.of(grads["gangrad"]), Summary.of(grads["storchastic"])
    B, K = problem.shape

    ratio, low, high = variance_ratio_ci(peer, ours)
    diff = peer.mean - ours.mean
    z_elem = (diff / peer.se.hypot(ours.se)).nan_to_num(0.0)  # constant elements: 0/0
    z_bonf = NormalDist().inv_cdf(1 - ALPHA / (2 * B * K))
    z_quad = quadratic_z(diff, (peer.cov + ours.cov) / N)
    exact_grad = problem.exact_grad
    z_exact = {lib: quadratic_z(s.mean - exact_grad, s.cov / N)
               for lib, s in (("gangrad", ours), ("storchastic", peer))}
    rel_bias = {lib: float((s.mean - exact_grad).norm() / exact_grad.norm())
                for lib, s in (("gangrad", ours), ("storchastic", peer))}
    info = {
        "estimator": kind, "B": B, "K": K, "N": N, "samples": SAMPLES if kind ==
        "score_function" else 1, "temperature": TAU if kind == "gumbel_softmax" else None,
        "total_var_gangrad": ours.total_var, "total_var_gangrad_se": ours.total_var_se,
        "total_var_storchastic": peer.total_var, "total_var_storchastic_se": peer.total_var_se,
        "var_ratio_peer_over_gangrad": ratio, "var_ratio_ci": [low, high],
        "ci_level": 1 - ALPHA, "max_abs_z_elementwise": float(z_elem.abs().max()),
        "z_elementwise_bound": z_bonf, "z_means": z_quad,
        "z_exact_gangrad": z_exact["gangrad"], "z_exact_storchastic": z_exact["storchastic"],
        "rel_dist_to_exact_gangrad": rel_bias["gangrad"],
        "rel_dist_to_exact_storchastic": rel_bias["storchastic"],
        "exact_grad_norm": float(exact_grad.norm()),
    }
    benchmark.extra_info.update(info)
    print(f"\n{kind}: " + ", ".join(f"{k}={v}" for k, v in info.items()))

    assert low <= 1.0 <= high, f"variance ratio {ratio:.4f}, CI [{low:.4f}, {high:.4f}]"
    assert float(z_elem.abs().max()) < z_bonf, "some mean element differs beyond its SE"
    assert abs(z_quad) < Z_QUAD, f"means differ: z = {z_quad:.2f}"
    if kind == "score_function":  # unbiased: both means match the exact gradient
        for lib, z in z_exact.items():
            assert abs(z) < Z_QUAD, f"{lib}'s mean is off the exact gradient: z = {z:.2f}"
    else:  # the peer must not have annealed its temperature over N backward passes
        assert float(steps["storchastic"].method.temperature) == TAU


def _machine() -> str:
    import platform
    from importlib.metadata import version

    return (f"{platform.processor() or platform.machine()}, 1 thread, torch "
            f"{torch.__version__}, storchastic {version('storchastic')}")


# -- timing ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("kind", ESTIMATORS)
def test_estimate_time(benchmark, problem, kind, library):
    step = make_step(library, kind, problem)
    benchmark.group = f"peer side-by-side, categorical, {kind}, one estimate"
    benchmark.extra_info.update({"library": library, "estimator": kind, "threads": 1,
                                 "B": problem.shape[0], "K": problem.shape[1]})
    torch.manual_seed(0)
    benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=WARMUP)


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_time_ratio(benchmark, problem, kind):
    """Both libraries alternated round by round (order flipped every round); per-library
    medians after the warm-up rounds and ``peer_ms / gangrad_ms`` go to ``extra_info``."""
    steps = {lib: make_step(lib, kind, problem) for lib in LIBRARIES}
    times: dict[str, list[float]] = {lib: [] for lib in LIBRARIES}
    calls = 0

    def one_round() -> None:
        nonlocal calls
        order = LIBRARIES if calls % 2 == 0 else LIBRARIES[::-1]
        calls += 1
        for lib in order:
            t0 = time.perf_counter()
            steps[lib]()
            times[lib].append((time.perf_counter() - t0) * 1e3)

    benchmark.group = f"peer side-by-side, categorical, {kind}, both libraries per round"
    torch.manual_seed(0)
    benchmark.pedantic(one_round, rounds=ROUNDS, warmup_rounds=WARMUP)
    skip = max(0, calls - ROUNDS)  # the warm-up rounds (none when benchmarks are disabled)
    med = {lib: statistics.median(t[skip:]) for lib, t in times.items()}
    iqr = {lib: _iqr(t[skip:]) for lib, t in times.items()}
    benchmark.extra_info.update({
        "estimator": kind, "threads": 1, "rounds": calls - skip,
        "machine": _machine(),
        "gangrad_ms": med["gangrad"], "storchastic_ms": med["storchastic"],
        "gangrad_iqr_ms": iqr["gangrad"], "storchastic_iqr_ms": iqr["storchastic"],
        "ratio_peer_over_gangrad": med["storchastic"] / med["gangrad"],
    })
    print(f"\n{kind}: gangrad {med['gangrad']:.3f} ms, storchastic {med['storchastic']:.3f} ms,"
          f" ratio {med['storchastic'] / med['gangrad']:.2f}")
    assert all(math.isfinite(v) and v > 0 for v in med.values())


def _iqr(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]
