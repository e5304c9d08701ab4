"""smoothing-limit, differentiable-d and discrete-outputs: their pieces against theory,
and their analyses on constructed data whose answer is known.

Seeds: each test fixes torch's generator or its own; tolerances follow from the sample
size (5 standard errors, ``tests/_stats.py``), or are float round-off for exact identities.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from _stats import Z, mean_within
from conftest import linear_pair

from gangrad import tasks
from gangrad.losses import generator_loss
from gangrad.questions import differentiable_d as dd
from gangrad.questions import discrete_outputs as do
from gangrad.questions import smoothing_limit as sm


# -- smoothing-limit ---------------------------------------------------------------------
def test_variance_ratio_interval_on_the_log_scale():
    a = {"variance": 4.0, "variance_lo": 2.0, "variance_hi": 8.0}
    b = {"variance": 1.0, "variance_lo": 0.5, "variance_hi": 2.0}
    ratio, lo, hi = sm.variance_ratio(a, b)
    half = math.log(4.0) / math.sqrt(2)  # each log-se is ln 4 / (2·1.96); summed in quadrature
    assert ratio == pytest.approx(4.0)
    assert lo == pytest.approx(4.0 * math.exp(-half)) and hi == pytest.approx(4.0 * math.exp(half))


def _smoothing_data(bias_power: float = 2.0) -> pd.DataFrame:
    """The frame ``SmoothingLimit.experiment`` returns, built from exact power laws: bias
    ∝ σ^bias_power; with z fixed, variances ∝ σ⁻² (no baseline and batch leave-one-out),
    σ^0.001 (per-point leave-one-out) and σ² (smoothing); with z resampled, the smoothing
    variance is the pathwise one, 0.01, and the others add it to their z-fixed values."""
    sigmas = np.logspace(-4, 0, 9)
    law = {"smoothing": lambda s: 1e-3 * s**2,
           "score function, no baseline": lambda s: 0.1 / s**2,
           "score function, batch leave-one-out (other z rows)": lambda s: 1e-3 / s**2,
           "score function, per-point leave-one-out (2 draws per z)": lambda s: 0.05 * s**1e-3}
    rows = []
    for z in ("fixed", "resampled"):
        for arm, f in law.items():
            for s in sigmas:
                v = f(s) + (0.01 if z == "resampled" else 0.0)
                rows.append({"z": z, "arm": arm, "sigma": s, "variance": v,
                             "variance_lo": 0.99 * v, "variance_hi": 1.01 * v,
                             "f_evals": 2.0 if "2 draws" in arm else 1.0,
                             "exact_bias": (0.5 * s**bias_power if arm == "smoothing"
                                            and z == "fixed" else np.nan),
                             "bias": np.nan, "bias_lo": np.nan, "bias_hi": np.nan,
                             "reference_norm": 2.0})
    rows.append({"z": "resampled", "arm": sm.PATHWISE, "sigma": 0.0, "variance": 0.01,
                 "variance_lo": 0.0099, "variance_hi": 0.0101, "f_evals": 1.0,
                 "exact_bias": np.nan, "bias": np.nan, "bias_lo": np.nan, "bias_hi": np.nan,
                 "reference_norm": 2.0})
    return pd.DataFrame(rows)


def test_smoothing_analysis_reads_exponents_and_variance_ratios():
    q = sm.SmoothingLimit()
    v = q.analyse(_smoothing_data(), q.quick)
    assert v.outcome == "agrees" and v.answer.startswith("Yes:")
    assert v.convergence["rule"].startswith("not training-based")
    assert v.numbers["smoothing"]["exponent"][0] == pytest.approx(2.0, abs=1e-9)
    ratios = v.numbers["variance_ratio_over_smoothing_at_min_z_resampled"]
    # z resampled: (0.1/σ² + 0.01)/(1e-3σ² + 0.01) at σ = 1e-4
    expected = (0.1 / 1e-8 + 0.01) / (1e-3 * 1e-8 + 0.01)
    assert ratios["score function, no baseline"][0] == pytest.approx(expected, rel=1e-9)
    lo, hi = ratios["score function, no baseline"][1:]
    assert lo < expected < hi
    # z fixed: the ratio grows as σ⁻⁴ (0.1/σ² over 1e-3σ²), which the text says
    fixed = v.numbers["variance_ratio_no_baseline_over_smoothing_at_min_z_fixed"][0]
    assert fixed == pytest.approx(100 / 1e-16, rel=1e-9)
    assert "σ⁻⁴" in v.text and f"{fixed:.2g}" in v.text


def test_smoothing_analysis_says_when_the_bias_rate_disagrees():
    q = sm.SmoothingLimit()
    v = q.analyse(_smoothing_data(bias_power=1.0), q.quick)
    assert v.outcome == "disagrees"
    assert v.answer.startswith("Yes, though not at the rate theory gives")
    assert v.numbers["smoothing"]["outcome"] == "disagrees"


# -- differentiable-d --------------------------------------------------------------------
def test_parameter_space_gradient_is_unbiased_for_the_parameter_smoothed_objective():
    """Through a G whose output is rounded (backprop gradient exactly 0), the mean of the
    mirrored ES estimates equals the closed form over the rounding cells with the per-row
    scale σ√(z² + 1); each replicate is an independent estimate, so the check is the mean
    within 5 standard errors."""
    task, G, D = linear_pair()
    z = task.sample_latent(32, generator=torch.Generator().manual_seed(2))
    Gq = dd.Quantized(G, dd.STEP, before=False)
    f = generator_loss("nonsaturating", D)
    grads = torch.autograd.grad(f(Gq(z)).mean(), list(Gq.parameters()))
    assert all(bool((g == 0).all()) for g in grads)  # G is blind to backprop
    sigma = 0.2
    reps = dd.parameter_space_gradients(Gq, f, z, sigma, 2, 40_000,
                                        torch.Generator().manual_seed(3))
    exact = dd.exact_quantized_gradient(G, D, z, sigma, dd.STEP, parameter_space=True)
    mean_within(reps, exact)
    assert float(exact.abs().max()) > Z * float(reps.std(0).max()) / math.sqrt(len(reps))


def test_parameter_space_gradient_of_a_smooth_cost_tends_to_backprop():
    """For a differentiable G and D the estimate's mean is the σ-smoothed gradient, within
    O(σ²) of backprop: at σ = 1e-3 the difference is below the estimate's own noise."""
    task, G, D = linear_pair(1)
    z = task.sample_latent(64, generator=torch.Generator().manual_seed(4))
    f = generator_loss("nonsaturating", D)
    backprop = torch.cat([g.reshape(-1) for g in torch.autograd.grad(
        f(G(z)).mean(), list(G.parameters()))])
    reps = dd.parameter_space_gradients(G, f, z, 1e-3, 1, 20_000,
                                        torch.Generator().manual_seed(5))
    mean_within(reps.double(), backprop.detach().double())


def test_rounding_floor_is_the_expected_rounding_distance():
    gen = torch.Generator().manual_seed(6)
    x = 4.0 + 1.25 * torch.randn(400_000, generator=gen, dtype=torch.float64)
    d = (x - torch.round(x / dd.STEP) * dd.STEP).abs()
    mean_within(d[:, None], dd.rounding_floor(4.0, 1.25, dd.STEP))
    # a wide Gaussian is close to uniform over each cell: E|X − round X| → h/4
    assert dd.rounding_floor(0.3, 50.0, 0.5) == pytest.approx(0.125, rel=1e-6)


def test_parameter_space_seeds_step_moves_a_quantized_g_that_backprop_cannot():
    from gangrad import estimators
    from gangrad.train import TrainConfig, TrainState, gan_step
    from gangrad.train.seeds import StackedSeeds

    task = tasks.create("gaussian1d", features="quadratic")
    est = estimators.create("pathwise")
    cfg = TrainConfig(steps=1, lr_g=0.1, lr_d=0.1, device="cpu").resolved(task)

    def batch(wrap: bool):
        states = []
        for s in (0, 1):
            st = TrainState.fresh(task, est, s, torch.device("cpu"))
            st.G = dd.Quantized(st.G, dd.STEP, before=False)
            states.append(st)
        inner = StackedSeeds(states, task, cfg)
        return states, (dd.ParameterSpaceSeeds(inner, 0.1, 2) if wrap else inner)

    for wrap in (False, True):
        states, seeds = batch(wrap)
        before = [copy.deepcopy(st.G.state_dict()) for st in states]
        gan_step(seeds)
        moved = [any(not torch.equal(b[k], st.G.state_dict()[k]) for k in b)
                 for b, st in zip(before, states, strict=True)]
        assert moved == [wrap, wrap]


def test_parameter_space_seeds_gradient_is_backprop_for_a_smooth_g():
    """On a differentiable G the wrapped step's gradient, from N mirrored pairs at a small
    σ, is ``mean_n (g·ε_n)ε_n`` (covariance ``(‖g‖²I + ggᵀ)/N``): within 5·√2‖g‖/√N of
    backprop per coordinate; θ itself is restored bit for bit."""
    from gangrad import estimators
    from gangrad.train import TrainConfig, TrainState
    from gangrad.train.seeds import StackedSeeds

    task = tasks.create("gaussian1d", features="quadratic")
    est = estimators.create("pathwise")
    cfg = TrainConfig(steps=1, device="cpu").resolved(task)
    states = [TrainState.fresh(task, est, s, torch.device("cpu")) for s in (0, 1)]
    inner = StackedSeeds(states, task, cfg)
    pairs = 4000
    seeds = dd.ParameterSpaceSeeds(inner, 1e-3, pairs)
    z = seeds.latents()
    params = seeds.generate(z)
    theta = {k: p.detach().clone() for k, p in inner.G.params.items()}
    with seeds.frozen_discriminator():
        exact = torch.autograd.grad(inner.generator_loss(params).sum(),
                                    list(inner.G.params.values()))
        estimate = torch.autograd.grad(seeds.generator_loss(params).sum(),
                                       list(inner.G.params.values()))
    for k, p in inner.G.params.items():
        assert torch.equal(p.detach(), theta[k])
    g = torch.cat([e.reshape(2, -1) for e in exact], 1)  # seeds x P
    e = torch.cat([e.reshape(2, -1) for e in estimate], 1)
    tolerance = Z * math.sqrt(2) * g.norm(dim=1, keepdim=True) / math.sqrt(pairs)
    assert torch.all((e - g).abs() <= tolerance), (e, g, tolerance)


def test_train_arm_reads_windows_at_both_budgets_and_the_blind_g_never_moves():
    """Rows at T/2 and T per seed; the output-space score function on a quantized G gets
    exactly zero gradients, so its W1 is the same at both budgets, while the
    differentiable G trained by backprop moves; odd budgets are refused."""
    task = tasks.create("gaussian1d", features="quadratic")
    steps = 2 * dd.EVALUATIONS
    blind = dd.train_arm(task, dd.BLIND_ARM, [0, 1], steps, 0.03)
    assert list(blind["budget"]) == ["T/2", "T", "T/2", "T"]
    assert list(blind["step"]) == [steps // 2, steps] * 2
    assert blind["w1"].notna().all()
    by = blind.pivot(index="seed", columns="budget", values="w1")
    assert (by["T/2"] == by["T"]).all()
    moved = dd.train_arm(task, dd.REFERENCE, [0, 1], steps, 0.03)
    by = moved.pivot(index="seed", columns="budget", values="w1")
    assert (by["T/2"] != by["T"]).all()
    with pytest.raises(ValueError, match="multiple"):
        dd.train_arm(task, dd.REFERENCE, [0], steps + 2, 0.03)


def _training_rows(values: dict[str, tuple[list[float], list[float]]]) -> pd.DataFrame:
    rows = []
    for arm, (half, end) in values.items():
        for budget, vals in (("T/2", half), ("T", end)):
            for s, v in enumerate(vals):
                rows.append({"arm": arm, "task": "gaussian1d", "seed": s, "steps": 40,
                             "budget": budget, "step": 20 if budget == "T/2" else 40,
                             "status": "ok", "elapsed_s": 1.0, "w1": v, "ks": 0.1,
                             "lr": 0.03})
    return pd.DataFrame(rows)


def test_differentiable_d_analysis_decides_the_training_run():
    q = dd.DifferentiableD()
    settings = {**q.quick, "replicates": 300, "steps": 40}
    gradients = q._gradients(settings, 0)
    rng = np.random.default_rng(0)

    def settled(level: float, spread: float) -> tuple[list[float], list[float]]:
        half = level + rng.normal(0, spread, 8)
        return list(half), list(half + rng.normal(0, 0.005, 8))

    blind = list(4.0 + rng.normal(0, 0.05, 8))  # G never moves: the same W1 at both
    trained = {dd.REFERENCE: settled(0.05, 0.01), dd.ES_ARM: settled(0.2, 0.01),
               dd.BLIND_ARM: (blind, blind)}
    v = q.analyse({"gradients": gradients, "training": _training_rows(trained)}, settings)
    assert v.outcome == "better"  # ES trains the quantized G that the others leave alone
    assert "still gets a signal" in v.answer and "exactly zero" in v.answer
    assert v.numbers["theory"] == "agrees"
    assert v.convergence["all_converged"]
    # a parameter-space estimator that does not train it: the answer says so
    stuck = {**trained, dd.ES_ARM: trained[dd.BLIND_ARM]}
    v = q.analyse({"gradients": gradients, "training": _training_rows(stuck)}, settings)
    assert v.outcome != "better" and "did not train the quantized G" in v.answer


# -- discrete-outputs --------------------------------------------------------------------
def test_softness_and_hardened_vectors():
    x = torch.tensor([[[0.7, 0.2, 0.1]], [[0.0, 1.0, 0.0]]])
    assert do.softness(x) == pytest.approx(0.15)
    assert torch.equal(do.hardened(x), torch.tensor([[[1.0, 0, 0]], [[0, 1.0, 0]]]))
    assert do.softness(torch.full((4, 1, 5), 0.2)) == pytest.approx(0.8)


def test_latent_arm_trains_the_z_reading_generator_at_both_budgets():
    from gangrad.questions._arms import train_budgets

    arm = do.LatentArm("pt", "categorical", {}, "pathwise", {}, {"device": "cpu"})
    assert isinstance(arm.make_task(), do.LatentCategorical)
    table = train_budgets([arm], [0, 1], steps=4, eval_samples=50)
    assert sorted(set(table["budget"])) == ["T", "T/2"] and len(table) == 4
    assert table["kl"].notna().all()


def _discrete_data(pass_through_kl: float) -> dict[str, pd.DataFrame]:
    """What ``DiscreteOutputs.experiment`` returns, constructed: 6 seeds, every arm's KL
    settled (from T/2 to T it changes by 0.001 ± 0.001), the pass-through at
    ``pass_through_kl``,
    the sampling arms near 0.01; its vectors 1e-3 from one-hot and no more separable than
    their argmax symbols."""
    rng = np.random.default_rng(1)
    level = {do.PASS_THROUGH: pass_through_kl, "Gumbel-softmax (τ = 0.5)": 0.3,
             "straight-through": 0.012, "score function (2 draws per z)": 0.01}
    runs = []
    for arm, kl in level.items():
        for s in range(6):
            jitter = rng.normal(0, 0.001)
            for budget, step in (("T/2", 1000), ("T", 2000)):
                runs.append({"arm": arm, "task": "categorical", "seed": s, "steps": 2000,
                             "budget": budget, "step": step, "status": "ok",
                             "elapsed_s": 5.0 * step / 2000,
                             "kl": kl + jitter + (rng.normal(0.001, 0.001) if budget == "T"
                                                  else 0.0),
                             "tv": 0.1, "softness": 1e-3 if arm in do.SOFT else 0.0})
    sep = []
    for arm in do.SOFT:
        for s in range(6):
            acc = 0.7 + rng.normal(0, 0.01)
            sep.append({"arm": arm, "seed": s, "d_accuracy_emitted": acc,
                        "d_accuracy_symbols": acc + rng.normal(0, 0.002), "d_steps_emitted": 300})
    grads = pd.DataFrame([{"arm": a, "probe_seed": 0, "bias": b, "bias_lo": 0.5 * b,
                           "bias_hi": 1.5 * b, "reference_norm": 1.0, "cosine": 0.9,
                           "variance": 1e-3, "time_ms": 1.0, "var_x_evals": 1e-3}
                          for a, b in zip(do.ARMS, (0.3, 0.2, 0.1, 0.0), strict=True)])
    tuning = pd.DataFrame([{"arm": f"{a} [lr_g=0.01, lr_d=0.03]", "tuned_for": a, "kl": 0.1}
                           for a in do.ARMS])
    return {"runs": pd.DataFrame(runs), "separability": pd.DataFrame(sep),
            "gradients": grads, "tuning": tuning}


def test_discrete_outputs_analysis_on_constructed_data():
    q = do.DiscreteOutputs()
    settings = {**q.quick, "seeds": 6}
    v = q.analyse(_discrete_data(0.4), settings)
    assert v.outcome == "worse"
    assert v.answer.startswith("Only approximately")
    assert "worse than the best generator that samples symbols" in v.answer
    assert "the same 64 f-evaluations per step" in v.answer
    assert "no gradient bias resolved for score function" in v.answer
    assert "no better than it tells their own argmax symbols" in v.answer
    assert v.numbers["best"] == "score function (2 draws per z)"
    assert v.numbers["tuned"][do.PASS_THROUGH] == {"lr_g": 0.01, "lr_d": 0.03}
    assert v.numbers["cost"]["score function (2 draws per z)"]["f_evaluations_per_step"] == 64
    assert not v.numbers["cost"]["score function (2 draws per z)"]["backward_through_d"]
    assert v.convergence["all_converged"]
    v = q.analyse(_discrete_data(0.01), settings)  # the pass-through matches p as well
    assert v.outcome == "equivalent" and "as well as" in v.answer

