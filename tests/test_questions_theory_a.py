"""Questions against theory on constructed cases: smoothing slopes (+2 bias, −2 and 0
variance), an exactly zero pathwise gradient through a quantized D (and the exact smoothed
gradient the score function estimates instead), the (1 − D)/D gradient ratio of the
saturating loss, identical separate and mixed D gradients without batch norm, and a
converged fresh D's held-out accuracy.

Seeds: each test fixes torch's generator or its own; tolerances follow from the sample
size (5 standard errors, ``tests/_stats.py``), or are float round-off for exact identities.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from conftest import linear_pair

from gangrad import tasks
from gangrad.losses import generator_loss
from gangrad.questions import differentiable_d as dd
from gangrad.questions import discrete_outputs as do
from gangrad.questions import saturating_loss as sl
from gangrad.questions import separate_batches as sb
from gangrad.questions import smoothing_limit as sm

Z = 5.0


# -- smoothing-limit ---------------------------------------------------------------------
def test_local_slopes_and_asymptotic_range_find_the_bend():
    sigma = np.logspace(-4, 0, 17)
    value = 1e-2 / sigma**2 + 1.0  # slope −2 as σ → 0, bending to 0 above σ ≈ 0.1
    slopes = sm.local_slopes(sigma, value)
    assert slopes["slope"].iloc[0] == pytest.approx(-2.0, abs=1e-3)
    assert slopes["slope"].iloc[-1] == pytest.approx(0.0, abs=0.05)
    n = sm.asymptotic_range(slopes)
    assert 0.003 < slopes["sigma_hi"].iloc[n - 1] < 0.03  # stops well before the bend
    q = sm.fit_exponent(sigma[:n + 1], value[:n + 1])
    assert q[0] == pytest.approx(-2.0, abs=0.01)


def test_fit_exponent_is_exact_on_a_power_law_and_judge_reads_the_interval():
    sigma = np.logspace(-3, -1, 5)
    q, lo, hi = sm.fit_exponent(sigma, 3.0 * sigma**2)
    assert q == pytest.approx(2.0) and lo == pytest.approx(2.0) and hi == pytest.approx(2.0)
    assert sm.judge((2.0, 1.95, 2.05), 2.0) == "agrees"
    assert sm.judge((1.5, 1.4, 1.6), 2.0) == "disagrees"
    assert sm.judge((2.0, 1.5, 2.5), 2.0) == "undetermined"


def test_smoothing_slopes_match_theory_on_gaussian1d():
    """Bias +2 (exact, quadrature), score-function variance −2 without a baseline and 0
    with a per-point leave-one-out baseline, at small σ on a fixed G, D and z."""
    from gangrad.measure import gradient_stats

    task = tasks.create("gaussian1d")
    torch.manual_seed(3)
    G, D = task.make_generator((1,)), task.make_discriminator()
    sigmas = np.logspace(-3, -2, 3)
    z = task.sample_latent(64, generator=torch.Generator().manual_seed(4))
    bias = sm.exact_smoothing_bias(task, G, D, z, sigmas)
    assert sm.judge(sm.fit_exponent(sigmas, bias), 2.0) == "agrees"
    for hyper, theory in (({"baseline": "none"}, -2.0),
                          ({"baseline": "mean", "samples": 2}, 0.0)):
        rows = []
        for s in sigmas:
            df = gradient_stats(task, [("score_function", {**hyper, "sigma": float(s)})],
                                G=copy.deepcopy(G), D=copy.deepcopy(D), replicates=2000,
                                batch_size=64, seed=3, timing=False)
            rows.append(df[df["layer"] == "total"].iloc[0])
        v = pd.DataFrame(rows)
        exponent = sm.fit_exponent(sigmas, v["variance"], v["variance_lo"], v["variance_hi"])
        assert sm.judge(exponent, theory) == "agrees", (hyper, exponent)


# -- differentiable-d --------------------------------------------------------------------
def test_pathwise_gradient_through_a_quantized_d_is_exactly_zero():
    task, G, D = linear_pair()
    z = task.sample_latent(256, generator=torch.Generator().manual_seed(1))
    f = generator_loss("nonsaturating", dd.Quantized(D))
    grads = torch.autograd.grad(f(G(z)).mean(), list(G.parameters()))
    assert all(bool((g == 0).all()) for g in grads)
    smooth = generator_loss("nonsaturating", D)  # the same D unquantized has a slope
    grads = torch.autograd.grad(smooth(G(z)).mean(), list(G.parameters()))
    assert any(bool((g != 0).any()) for g in grads)


def test_exact_quantized_gradient_matches_a_monte_carlo_score_function():
    """The closed form over rounding cells against REINFORCE with many draws: for the
    bias b of a linear G, ∂/∂b E f(⌊(μ_i + σε)/h⌉h) = E[f(·)·ε]/σ."""
    task, G, D = linear_pair()
    sigma, h = 0.3, dd.STEP
    z = task.sample_latent(16, generator=torch.Generator().manual_seed(2))
    exact = dd.exact_quantized_gradient(G, D, z, sigma, h)  # (weight, bias)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        mu = G(z)[:, 0].double()
        eps = torch.randn(200_000, len(mu), generator=gen, dtype=torch.float64)
        x = torch.round((mu + sigma * eps) / h) * h
        fx = torch.nn.functional.softplus(-D.double()(x.reshape(-1, 1))).reshape(x.shape)
        per_draw = (fx * eps / sigma).mean(1)  # the bias's REINFORCE estimate, per draw
    mean, se = float(per_draw.mean()), float(per_draw.std() / math.sqrt(len(per_draw)))
    assert abs(mean - float(exact[-1])) < Z * se
    assert abs(float(exact[-1])) > Z * se  # the signal is resolved, not zero


# -- saturating-loss ---------------------------------------------------------------------
def test_saturating_gradient_ratio_is_one_minus_d_over_d():
    torch.manual_seed(0)
    D = tasks.create("ring8").make_discriminator()
    with torch.no_grad():  # shift D's logits so that it rejects everything confidently
        list(D.parameters())[-1].sub_(8.0)
    x = torch.randn(256, 2)
    out = sl.per_sample_ratio(D, x)
    assert out["max_ratio_deviation"] < sl.ROUND_OFF
    assert out["min_cosine"] > 1 - 1e-6
    assert out["mean_theory_ratio"] > 1e3  # D ≈ 0: the minimax gradient nearly vanishes


def test_gradient_norms_follow_the_loss_ratio_without_touching_grad():
    """Through a D whose output barely varies over the fakes, G's parameter gradients under
    the two losses differ by the per-sample factor (1 − D)/D (here e⁶ up to 0.5%)."""
    torch.manual_seed(0)
    task = tasks.create("gaussian1d")
    G, D = task.make_generator((1,)), task.make_discriminator()
    with torch.no_grad():
        D.linear.weight.fill_(1e-3)
        D.linear.bias.fill_(-6.0)
    z = task.sample_latent(256, generator=torch.Generator().manual_seed(1))
    out = sl.gradient_norms(G, D, z)
    d = out["D(G(z))"]
    assert out["nonsaturating"] / out["minimax"] == pytest.approx((1 - d) / d, rel=5e-3)
    assert all(p.grad is None for p in [*G.parameters(), *D.parameters()])


def _saturating_data(ns_half: float = 0.04, n: int = 8) -> dict[str, pd.DataFrame]:
    """saturating-loss's data, constructed: the early measurement at D = 1e-3 (ratio
    (1 − D)/D), both losses at W1 0.04 at T (and the non-saturating arm at ``ns_half`` at
    T/2), and one checkpoint along the runs."""
    rng = np.random.default_rng(0)
    d = 1e-3 * (1 + 0.1 * rng.random(n))
    early = pd.DataFrame({"seed": range(n), "minimax": d, "nonsaturating": 1 - d,
                          "D(G(z))": d, "max_ratio_deviation": 1e-6, "min_cosine": 1.0,
                          "mean_theory_ratio": (1 - d) / d})
    early["log_ratio"] = np.log(early["nonsaturating"] / early["minimax"])
    p = sl.SaturatingLoss.quick["plan"][0]
    finals, curves = [], []
    for arm in (sl.NS, sl.MM):
        label = f"{p['setting']}: {arm}"
        for budget, step in (("T/2", p["steps"] // 2), ("T", p["steps"])):
            w1 = ns_half if (arm == sl.NS and budget == "T/2") else 0.04
            finals += [{"setting": p["setting"], "arm": label, "seed": s, "budget": budget,
                        "step": step, "w1": w1 + 0.01 * rng.standard_normal()}
                       for s in range(n)]
        curves += [{"arm": label, "seed": s, "step": 100, "nonsaturating": 1.0,
                    "minimax": 1e-3, "D(G(z))": 1e-3, "w1": 2.0} for s in range(n)]
    return {"early": early, "finals": pd.DataFrame(finals), "curves": pd.DataFrame(curves)}


def test_saturating_verdict_follows_the_data():
    q, settings = sl.SaturatingLoss(), dict(sl.SaturatingLoss.quick)
    v = q.analyse(_saturating_data(), settings)
    assert v.outcome == "equivalent" and v.numbers["theory"] == "agrees"
    assert v.answer.startswith("G's gradient under log(1 − D(G(z))) is about")
    assert "both losses end equivalent once converged" in v.answer
    assert "mean D(G(z)) = 0.001" in v.answer
    assert v.convergence["all_converged"]
    assert v.numbers["grad_ratio_ns_over_minimax"][0] == pytest.approx(
        float(np.exp(np.log(_saturating_data()["early"]["mean_theory_ratio"]).mean())),
        rel=1e-9)
    moving = q.analyse(_saturating_data(ns_half=0.5), settings)
    assert moving.outcome == "budget-dependent"
    assert "not decided at this budget" in moving.answer


# -- separate-batches --------------------------------------------------------------------
def _batches(seed: int = 0, n: int = 64):
    gen = torch.Generator().manual_seed(seed)
    task = tasks.create("ring8")
    return task.sample_real(n, generator=gen), 0.3 * torch.randn(n, 2, generator=gen)


def test_separate_and_mixed_gradients_are_identical_without_batch_norm():
    real, fake = _batches()
    torch.manual_seed(0)
    g_mix, g_sep = sb.gradients(sb.discriminator(False), real, fake)
    assert float((g_mix - g_sep).norm() / g_mix.norm()) < 1e-5
    torch.manual_seed(0)
    g_mix, g_sep = sb.gradients(sb.discriminator(True), real, fake)
    assert float((g_mix - g_sep).norm() / g_mix.norm()) > 0.1  # batch statistics differ


def test_sgd_real_then_fake_agrees_with_one_mixed_step_to_first_order(monkeypatch):
    real, fake = (t.double() for t in _batches(1))
    torch.manual_seed(1)
    D = sb.discriminator(False).double()  # float64: an O(lr²) term is below float32 ulps
    departures = []
    for lr in (1e-3, 1e-4):
        monkeypatch.setitem(sb.LR, "sgd", lr)
        one = sb._update(D, "sgd", "one mixed", real, fake)
        departures.append(float((sb._update(D, "sgd", "alternating", real, fake) - one).norm()
                                / one.norm()))
    assert departures[1] < 1e-2
    # O(lr), up to LeakyReLU kinks that a step crosses
    assert departures[0] / departures[1] == pytest.approx(10.0, rel=0.3)


def test_auc_is_the_mann_whitney_statistic():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, generator=gen) + 0.5, torch.randn(200, generator=gen)
    u = scipy.stats.mannwhitneyu(a.numpy(), b.numpy()).statistic
    assert sb.auc(a, b) == pytest.approx(u / (300 * 200))


def test_plan_rejects_an_unknown_arm():
    real, fake = _batches()
    with pytest.raises(ValueError, match="arm must be one of"):
        sb.plan("mixed twice", real, fake)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_separate_passes_then_one_step_is_the_mixed_step(optimizer):
    """Exact in float64 without batch norm (whatever the optimizer: it sees one summed
    gradient); with batch norm each pass has its own batch statistics."""
    real, fake = (t.double() for t in _batches(2))
    for batch_norm, close in ((False, True), (True, False)):
        torch.manual_seed(2)
        D = sb.discriminator(batch_norm).double()
        one = sb._update(D, optimizer, "one mixed", real, fake)
        rel = float((sb._update(D, optimizer, "separate passes", real, fake) - one).norm()
                    / one.norm())
        assert (rel < 1e-9) if close else (rel > 0.1), (batch_norm, rel)


def _learning_rows(alt_shift: dict[str, tuple[float, float]], seeds: int = 8) -> pd.DataFrame:
    """Held-out AUCs at T/2 = 50 and T = 100 per optimizer: mixed near 0.999, alternating
    shifted by ``alt_shift[opt] = (at T/2, at T)``; seed noise 1e-4."""
    rng = np.random.default_rng(0)
    rows = []
    for opt in ("adam", "sgd"):
        for s in range(seeds):
            for step, i in ((0, None), (50, 0), (100, 1)):
                base = 0.5 if i is None else 0.999 + 1e-4 * rng.standard_normal()
                for arm in ("mixed", "alternating"):
                    shift = 0.0 if arm == "mixed" or i is None else alt_shift[opt][i]
                    rows.append({"optimizer": opt, "arm": arm, "seed": s, "step": step,
                                 "auc": base + shift, "accuracy": 0.9, "bce": 0.1})
    return pd.DataFrame(rows)


def _update_rows(seeds: int = 8) -> pd.DataFrame:
    rows = []
    for bn in (False, True):
        for s in range(seeds):
            tiny = 1e-7 * (1 + s)
            big = 0.9 + 0.01 * s
            rows.append({"batch_norm": bn, "seed": s,
                         "grad_rel_diff": big if bn else tiny,
                         "grad_rel_diff_f64": big if bn else tiny * 1e-9,
                         **{f"{o}_separate_passes": big if bn else tiny for o in ("adam", "sgd")},
                         **{f"{o}_separate_passes_f64": big if bn else tiny * 1e-9
                            for o in ("adam", "sgd")},
                         **{f"{o}_{a}": 0.5 + 0.01 * s + (0.1 if a == "alternating" else 0)
                            for o in ("adam", "sgd") for a in ("alternating", "two_mixed")}})
    return pd.DataFrame(rows)


def test_separate_batches_verdict_opens_with_the_exact_result_and_reads_convergence():
    settings = {**sb.SeparateBatches.quick, "seeds": 8, "learning_steps": 100,
                "eval_every": 50}
    data = {"update": _update_rows(),
            "learning": _learning_rows({"adam": (0.0, 0.0), "sgd": (-0.3, -0.1)})}
    v = sb.SeparateBatches().analyse(data, settings)
    assert v.answer.startswith("Yes, exactly, when both passes' gradients go into one "
                               "optimizer step")
    assert "except with batch norm" in v.answer
    assert v.outcome == "equivalent"  # Adam: the same AUC at both budgets, both converged
    assert v.numbers["learning sgd"]["outcome"] == "budget-dependent"  # SGD still moving
    assert ("less well than with mixed batches at both budgets, though alternating training "
            "has not converged") in v.answer
    data["learning"] = _learning_rows({"adam": (0.0, 0.0), "sgd": (-0.05, 0.0)})
    v = sb.SeparateBatches().analyse(data, settings)  # SGD: worse at T/2, equal at T
    assert "it has not settled against mixed batches" in v.answer
    data["learning"] = _learning_rows({"adam": (-0.2, -0.2), "sgd": (0.0, 0.0)})
    v = sb.SeparateBatches().analyse(data, settings)
    assert v.outcome == "worse" and "less well than with mixed batches" in v.answer


def test_separate_batches_learning_refuses_odd_budgets():
    with pytest.raises(ValueError, match="must be even"):
        sb.learning([0], "adam", steps=101, eval_every=10)


def test_separate_batches_answers_end_to_end_at_a_tiny_size(tmp_path, monkeypatch):
    from gangrad import questions

    monkeypatch.setattr(sb.SeparateBatches, "quick",
                        {"seeds": 3, "learning_steps": 40, "eval_every": 10, "hidden": 16})
    answer = questions.ask("separate-batches")
    paths = questions.save(answer, tmp_path)
    assert answer.answer and len(answer.convergence["arms"]) == 4
    assert set(answer.table["step"]) == {0, 10, 20, 30, 40}
    assert "## Convergence" in paths["md"].read_text()


# -- discrete-outputs --------------------------------------------------------------------
def test_fresh_discriminator_separates_soft_vectors_and_not_real_samples():
    task = do.LatentCategorical()
    n = 600
    same = task.sample_real(n, generator=torch.Generator().manual_seed(9))
    soft = torch.softmax(torch.randn(n, 1, task.classes,
                                     generator=torch.Generator().manual_seed(8)), -1)
    same_out, soft_out = do.fresh_discriminator_accuracy(task, [same, soft], seed=0)
    assert soft_out["d_accuracy"] == 1.0 and soft_out["d_accuracy_lo"] > 0.99
    m = n  # held-out judgements: n/2 real and n/2 fake
    assert abs(same_out["d_accuracy"] - 0.5) < Z * 0.5 / math.sqrt(m)
    assert 0.0 <= same_out["d_accuracy_lo"] <= same_out["d_accuracy"] <= same_out[
        "d_accuracy_hi"] <= 1.0


def test_latent_categorical_generator_reads_z():
    task = do.LatentCategorical(latent_dim=4)
    torch.manual_seed(0)
    G = task.make_generator((1, task.classes))
    z = task.sample_latent(8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = G(z)
    assert out.shape == (8, 1, task.classes)
    assert float((out - out[:1]).abs().max()) > 0  # different z, different logits
