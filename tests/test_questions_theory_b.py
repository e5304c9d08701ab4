"""Theory checks behind the linear-gan, z-prior, update-schedule and learned-variance
questions, and the training options they rest on (gaussian1d's ``features``,
TrainConfig's ``latent`` and ``update_order``).

Randomized checks use fixed seeds and tolerances of 5 standard errors of their sample
size; the rest are exact up to quadrature.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from gangrad import estimators, questions, tasks
from gangrad.exact import gauss_hermite
from gangrad.questions.linear_gan import LinearGAN, best_discriminator, generator_gradient
from gangrad.questions.update_schedule import dirac_gan, dirac_growth
from gangrad.questions.z_prior import point_mass_floor, uniform_floor
from gangrad.tasks.gaussian1d import wasserstein1_normal
from gangrad.train import TrainConfig, train, train_seeds
from gangrad.train.step import sample_latent

MU, S = 4.0, 1.25


def test_the_new_questions_are_registered():
    assert {"linear-gan", "z-prior", "update-schedule"} <= set(questions.available())
    for name in ("linear-gan", "z-prior", "update-schedule"):
        assert "Cross Validated" in questions.create(name).origin


# -- gaussian1d's features option ------------------------------------------------------------
def test_quadratic_discriminator_is_a_quadratic_logit():
    task = tasks.create("gaussian1d", features="quadratic")
    D = task.make_discriminator()
    with torch.no_grad():
        D.linear.weight.copy_(torch.tensor([[0.5, -0.25]]))
        D.linear.bias.fill_(1.0)
    x = torch.tensor([[-2.0], [0.0], [3.0]])
    expected = 0.5 * x[:, 0] - 0.25 * x[:, 0] ** 2 + 1.0
    torch.testing.assert_close(D(x), expected)


def test_default_discriminator_is_unchanged_and_bad_features_refused():
    torch.manual_seed(0)
    default = tasks.create("gaussian1d").make_discriminator()
    torch.manual_seed(0)
    linear = tasks.create("gaussian1d", features="linear").make_discriminator()
    assert default.linear.weight.shape == (1, 1)
    torch.testing.assert_close(default.linear.weight, linear.linear.weight)
    with pytest.raises(ValueError, match="features must be one of linear, quadratic"):
        tasks.create("gaussian1d", features="cubic")


# -- TrainConfig: latent and update_order -----------------------------------------------------
@pytest.mark.parametrize("name, value", [("latent", "cauchy"), ("update_order", "random")])
def test_bad_training_options_are_named(name, value):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**{name: value}).resolved(tasks.create("gaussian1d"))


def test_uniform_latent_has_the_normal_latents_moments_and_none_is_zero():
    task, n = tasks.create("ring8"), 200_000
    z = sample_latent(task, "uniform", n, generator=torch.Generator().manual_seed(0)).double()
    assert z.shape == (n, 2) and z.abs().max() <= math.sqrt(3)
    # E z = 0 (sd 1/√n), E z² = 1 (sd √(Var z²/n), Var z² = 9/5 − 1 for U[−√3, √3])
    assert (z.mean(0).abs() < 5 / math.sqrt(n)).all()
    assert ((z.pow(2).mean(0) - 1).abs() < 5 * math.sqrt(0.8 / n)).all()
    assert torch.equal(sample_latent(task, "none", 5), torch.zeros(5, 2))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(sample_latent(task, "normal", 7, generator=g1),
                       task.sample_latent(7, generator=g2))


def test_a_generator_without_z_emits_one_point():
    h = train("gaussian1d", "pathwise", steps=5, eval_every=5, eval_samples=50, latent="none",
              device="cpu")
    x = h.attrs["samples"]
    assert torch.all(x == x[0])


@pytest.mark.parametrize("options", [{"update_order": "simultaneous"},
                                     {"latent": "uniform", "d_steps": 2}])
def test_batched_seeds_match_lone_runs_with_the_new_options(options):
    task = tasks.create("gaussian1d", features="quadratic")
    kw = {"steps": 12, "eval_every": 4, "eval_samples": 64, "device": "cpu", **options}
    batched = train_seeds(task, "pathwise", [0, 1], **kw)
    for seed, h in zip([0, 1], batched, strict=True):
        alone = train(task, "pathwise", seed=seed, **kw)
        cols = ["w1", "ks", "g_loss", "d_loss"]
        pd.testing.assert_frame_equal(h[cols], alone[cols])


def test_simultaneous_and_alternating_differ_only_in_what_g_sees():
    """From one state: D's update is the same either way; G's follows the old D only
    when simultaneous."""
    task = tasks.create("gaussian1d")
    kw = {"steps": 1, "eval_every": 1, "eval_samples": 64, "device": "cpu"}
    params = {}
    for order in ("alternating", "simultaneous"):
        def keep(step, state, order=order):
            params[order] = (state.G.head.linear.bias.item(), state.D.linear.weight.item())
        train(task, "pathwise", update_order=order, checkpoint_steps=[1], on_checkpoint=keep,
              **kw)
    assert params["alternating"][1] == params["simultaneous"][1]
    assert params["alternating"][0] != params["simultaneous"][0]


# -- update-schedule: the Dirac-GAN ------------------------------------------------------------
def test_dirac_gan_simultaneous_spirals_out_at_the_predicted_rate():
    h, n = 0.1, 400
    path = dirac_gan("simultaneous", h, n)
    radius = np.hypot(path[:, 0], path[:, 1])
    # linearised modulus √(1 + h²/4) per step; the non-linear terms are O(θψ) ~ 1e-4
    assert radius[-1] / radius[0] == pytest.approx(dirac_growth(h, "simultaneous") ** n,
                                                   rel=2e-3)
    assert np.all(np.diff(radius) > 0)


def test_dirac_gan_alternating_stays_bounded():
    h, n = 0.1, 400
    path = dirac_gan("alternating", h, n)
    radius = np.hypot(path[:, 0], path[:, 1])
    assert dirac_growth(h, "alternating") == pytest.approx(1.0, abs=1e-12)
    # an ellipse, not a circle: the distance oscillates within O(h) of the start
    assert radius.max() / radius[0] < 1 + h and radius.min() / radius[0] > 1 - h


# -- linear-gan: the fixed point ------------------------------------------------------------
@pytest.mark.parametrize("w", [0.0, 0.3, 2.0])
def test_at_equal_means_the_best_linear_d_is_constant_and_g_gets_no_gradient(w):
    d = best_discriminator(MU, S, MU, w, "linear")
    assert abs(d["coef"][0]) < 1e-9 and abs(d["bias"]) < 1e-9
    assert d["seen"] == pytest.approx(0.0, abs=1e-12)
    gb, gw = generator_gradient(MU, S, MU, w, "linear")
    assert abs(gb) < 1e-12 and abs(gw) < 1e-12


def test_at_equal_scales_the_best_linear_d_is_the_log_density_ratio():
    d = best_discriminator(MU, S, 3.0, S, "linear")
    assert d["coef"][0] == pytest.approx((MU - 3.0) / S**2, rel=1e-6)


@pytest.mark.parametrize("b, w", [(4.0, 0.6), (3.5, 2.0), (4.5, 1.0)])
def test_the_best_quadratic_d_is_the_log_density_ratio(b, w):
    d = best_discriminator(MU, S, b, w, "quadratic")
    # log N(x; μ, s²) − log N(x; b, w²)
    x2 = 1 / (2 * w**2) - 1 / (2 * S**2)
    x1 = MU / S**2 - b / w**2
    c = b**2 / (2 * w**2) - MU**2 / (2 * S**2) + math.log(w / S)
    assert d["coef"] == pytest.approx([x1, x2], rel=1e-4, abs=1e-6)
    assert d["bias"] == pytest.approx(c, rel=1e-4, abs=1e-6)


def test_with_x_squared_the_scale_moves_towards_the_data_and_stops_there():
    assert generator_gradient(MU, S, MU, 0.5 * S, "quadratic")[1] < -0.1  # descent grows w
    assert generator_gradient(MU, S, MU, 2.0 * S, "quadratic")[1] > 0.1  # and shrinks it
    gb, gw = generator_gradient(MU, S, MU, S, "quadratic")
    assert abs(gb) < 1e-10 and abs(gw) < 1e-10
    assert best_discriminator(MU, S, MU, S, "quadratic")["seen"] == pytest.approx(0, abs=1e-12)


def _linear_gan_table(w_linear: float, w_quadratic: float, n: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for label, w in (("D on linear", w_linear), ("D on quadratic", w_quadratic)):
        for seed in range(n):
            b = MU + 0.01 * rng.standard_normal()
            ww = w * (1 + 0.01 * rng.standard_normal())
            rows.append({"arm": label, "seed": seed, "b": b, "w": ww, "d_x": 0.0,
                         "mean_error": b - MU,
                         "scale_ratio": ww / S,
                         "w1": 0.997 if w < 0.1 else 0.03 + 0.01 * rng.random(),
                         "seen_by_linear": 0.0, "seen_by_quadratic": 0.5})
    return pd.DataFrame(rows)


def test_linear_gan_verdict_follows_the_data():
    q, settings = LinearGAN(), dict(LinearGAN.quick)
    agree = q.analyse({"finals": _linear_gan_table(0.02, S)}, settings)
    assert agree.outcome == "agrees" and "agree with" in agree.text
    contra = q.analyse({"finals": _linear_gan_table(S, S)}, settings)  # linear D learns s
    assert contra.outcome == "disagrees"


# -- z-prior: what a prior's shape allows ------------------------------------------------------
def test_point_mass_floor_is_the_w1_of_the_best_point():
    assert wasserstein1_normal(np.full(10, MU), MU, S) == pytest.approx(point_mass_floor(S),
                                                                        rel=1e-9)
    assert wasserstein1_normal(np.full(10, MU + 0.3), MU, S) > point_mass_floor(S)


def test_uniform_floor_is_attained_by_the_best_uniform_and_beaten_by_none():
    floor, h = uniform_floor(S)
    u = (np.arange(20_000) + 0.5) / 20_000  # quantiles of U[μ − h, μ + h]
    assert wasserstein1_normal(MU + h * (2 * u - 1), MU, S) == pytest.approx(floor, rel=2e-3)
    for other in (0.8 * h, 1.2 * h, math.sqrt(3) * S):
        assert wasserstein1_normal(MU + other * (2 * u - 1), MU, S) > floor
    assert 0 < floor < point_mass_floor(S)


# -- learned-variance: why σ collapses under a logistic D on x ------------------------------
def test_reparam_pushes_sigma_down_through_a_fixed_logistic_d():
    """``∂/∂ log σ E f(μ + σε) = σ²·E f''(μ + σε) > 0`` for the convex cost
    ``f(x) = softplus(−(a·x + c))`` (Stein's lemma): descent shrinks σ."""
    a, c, mu, sigma, n = 1.5, -6.0, 4.0, 1.0, 200_000

    def f(x):
        return torch.nn.functional.softplus(-(a * x[:, 0] + c))

    z, u = gauss_hermite(80)
    s = torch.sigmoid(-(a * (mu + sigma * z) + c))
    exact = float(sigma**2 * (u * a**2 * s * (1 - s)).sum())
    torch.manual_seed(0)
    params = torch.tensor([[mu], [math.log(sigma)]]).expand(n, 2, 1).clone().requires_grad_()
    est = estimators.create("reparam")
    est.surrogate(params, f).sum().backward()
    g = params.grad[:, 1, 0].double()
    assert exact > 0
    assert abs(float(g.mean()) - exact) < 5 * float(g.std()) / math.sqrt(n)


# -- the questions end to end (quick sizes) ----------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name, outcomes", [
    ("linear-gan", {"agrees"}),
    ("update-schedule", {"better", "worse", "equivalent", "undetermined"}),
    ("z-prior", {"better", "worse", "equivalent", "undetermined"}),
    ("learned-variance", {"better", "worse", "equivalent", "undetermined"}),
])
def test_quick_answers(name, outcomes, tmp_path):
    answer = questions.ask(name)
    assert answer.outcome in outcomes
    assert questions.save(answer, tmp_path)["json"].exists()
