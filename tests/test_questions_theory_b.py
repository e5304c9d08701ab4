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
from gangrad.questions import update_schedule as us
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


def test_mlp_discriminator_and_generator_options():
    task = tasks.create("gaussian1d", features="mlp", generator="mlp", hidden=8, depth=2,
                        latent_dim=3)
    D, G = task.make_discriminator(), task.make_generator((2, 1))
    x = torch.linspace(-2, 6, 9)[:, None]
    logits = D(x)
    assert logits.shape == (9,)
    second = logits[2:] - 2 * logits[1:-1] + logits[:-2]  # a ReLU net is not linear in x
    assert second.abs().max() > 1e-6
    z = task.sample_latent(5, generator=torch.Generator().manual_seed(0))
    assert z.shape == (5, 3) and G(z).shape == (5, 2, 1)
    assert sum(p.numel() for p in G.parameters()) == 3 * 8 + 8 + 8 * 8 + 8 + 8 * 2 + 2
    linear = tasks.create("gaussian1d", latent_dim=2).make_generator((1,))
    assert linear.head.linear.weight.shape == (1, 2)  # w·z + b with z in R²


@pytest.mark.parametrize("kwargs, name", [({"features": "cubic"}, "features"),
                                          ({"generator": "conv"}, "generator"),
                                          ({"hidden": 0}, "hidden"), ({"depth": 0}, "depth"),
                                          ({"latent_dim": 0}, "latent_dim")])
def test_gaussian1d_network_options_are_checked(kwargs, name):
    with pytest.raises(ValueError, match=name):
        tasks.create("gaussian1d", **kwargs)


def test_gaussian1d_exact_reference_needs_a_one_dimensional_z():
    task = tasks.create("gaussian1d", latent_dim=2)
    with pytest.raises(ValueError, match="latent_dim=2"):
        task.expected_loss(task.make_generator((1,)), lambda x: x[:, 0])


def test_batched_seeds_match_lone_runs_with_mlp_networks():
    task = tasks.create("gaussian1d", features="mlp", generator="mlp", hidden=8)
    kw = {"steps": 8, "eval_every": 4, "eval_samples": 64, "device": "cpu",
          "latent": "uniform"}
    for seed, h in zip([0, 1], train_seeds(task, "reparam", [0, 1], **kw), strict=True):
        alone = train(task, "reparam", seed=seed, **kw)
        pd.testing.assert_frame_equal(h[["w1", "g_loss", "d_loss"]],
                                      alone[["w1", "g_loss", "d_loss"]])


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


# -- update-schedule: budgets at equal compute and the verdict ----------------------------
def test_schedule_budgets_split_equal_compute_into_g_steps():
    plan = us.budgets(2400, [1, 2, 5], eval_every=50)
    assert plan["steps"] == {1: 1200, 2: 800, 5: 400}
    assert plan["equal_steps"] == 400 and plan["eval_every"] == 50
    assert us.budgets(2400, [1, 5])["eval_every"] == 200  # gcd of 600 and 200
    with pytest.raises(ValueError, match="even number of G steps"):
        us.budgets(2000, [1, 2])  # 2000 / 3 is not whole
    with pytest.raises(ValueError, match="must divide"):
        us.budgets(2400, [1, 5], eval_every=70)
    with pytest.raises(ValueError, match="including 1"):
        us.budgets(2400, [2, 5])


def _schedule_curves(k5_shift: float, k5_moving: float = 0.0, seeds: int = 10
                     ) -> pd.DataFrame:
    """W1 along training for updates = 240 (k=1: 120 G steps, k=5: 40), read every 20 G
    steps: every arm at 0.05 (seed noise 0.005) from step 20 on, k=5 shifted by
    ``k5_shift`` and, at its T/2, by ``k5_moving`` more."""
    rng = np.random.default_rng(1)
    rows = []
    for arm, k, last in (("alternating, k=1", 1, 120), ("alternating, k=5", 5, 40),
                         ("simultaneous, k=1", 1, 120)):
        for s in range(seeds):
            base = 0.05 + 0.005 * rng.standard_normal()
            for step in range(0, last + 1, 20):
                w1 = 0.8 if step == 0 else base + 0.001 * rng.standard_normal()
                if k == 5 and step:
                    w1 += k5_shift + (k5_moving if step == 20 else 0.0)
                rows.append({"arm": arm, "k": k, "seed": s, "step": step,
                             "updates": step * (k + 1), "lr_g": 0.01, "lr_d": 0.03,
                             "w1": w1, "ks": math.nan})
    return pd.DataFrame(rows)


def _tuning() -> pd.DataFrame:
    return pd.DataFrame([{"arm": f"{a} [lr_g=0.01, lr_d={lr}]", "seed": 20, "w1": 0.05,
                          "schedule": a, "chosen": lr == 0.03}
                         for a in ("alternating, k=1", "alternating, k=5",
                                   "simultaneous, k=1") for lr in (0.01, 0.03)])


def _dirac() -> pd.DataFrame:
    return pd.DataFrame([{"order": o, "step": t, "theta": 0.0, "psi": 0.0,
                          "radius": 0.01 * (g ** t)}
                         for o, g in (("alternating", 1.0), ("simultaneous", 1.001))
                         for t in range(11)])


SCHEDULE = {**us.UpdateSchedule.quick, "seeds": 10, "tuning_seeds": 2, "updates": 240,
            "d_steps": [1, 5], "eval_every": 20, "dirac_steps": 10}


def test_schedule_views_read_both_budgets_of_both_views():
    table = us.views(_schedule_curves(0.0), 240, 40)
    steps = table.groupby(["arm", "budget"])["step"].first()
    assert steps["equal compute: alternating, k=1", "T"] == 120
    assert steps["equal compute: alternating, k=5", "T/2"] == 20
    assert steps["equal G steps: alternating, k=1", "T"] == 40
    assert steps["equal G steps: alternating, k=1", "T/2"] == 20


def _schedule_data(k5_shift: float, k5_moving: float = 0.0) -> dict[str, pd.DataFrame]:
    return {"curves": _schedule_curves(k5_shift, k5_moving), "dirac": _dirac(),
            "tuning": _tuning()}


def test_schedule_verdict_follows_the_data():
    q = us.UpdateSchedule()
    v = q.analyse(_schedule_data(0.0), SCHEDULE)
    assert v.outcome == "equivalent" and v.answer.startswith("It makes no practical")
    assert "k=5 is equivalent to k=1 both at equal compute and at equal G steps" in v.answer
    assert "W1 after 20 G steps" in v.text and "after 120 updates" in v.text
    v = q.analyse(_schedule_data(0.2), SCHEDULE)
    assert v.numbers["equal_compute"]["alternating, k=5"]["outcome"] == "worse"
    v = q.analyse(_schedule_data(0.0, k5_moving=0.5), SCHEDULE)
    assert v.numbers["equal_compute"]["alternating, k=5"]["outcome"] == "budget-dependent"
    assert "not settled against k=1" in v.answer
    assert v.numbers["dirac_growth_per_step"]["simultaneous"] == pytest.approx(1.001)


def test_schedule_answers_end_to_end_at_a_tiny_size(tmp_path, monkeypatch):
    monkeypatch.setattr(us.UpdateSchedule, "quick",
                        {**SCHEDULE, "seeds": 3, "grid": {"lr_g": [0.01], "lr_d": [0.01, 0.1]},
                         "eval_samples": 200})
    answer = questions.ask("update-schedule")
    questions.save(answer, tmp_path)
    assert answer.answer and answer.convergence["arms"]
    assert set(answer.table.groupby("arm")["step"].max()) == {120, 40}


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


def _linear_gan_table(w_linear: float, w_quadratic: float, n: int = 8,
                      w_quadratic_half: float | None = None) -> pd.DataFrame:
    """Both arms at T/2 and T; ``w_quadratic_half`` sets the quadratic arm's scale at T/2
    (default: as at T, a converged run)."""
    rng = np.random.default_rng(0)
    rows = []
    for budget, step in (("T/2", 1500), ("T", 3000)):
        for label, w in (("D on x", w_linear), ("D on x, x²", w_quadratic)):
            if budget == "T/2" and label == "D on x, x²" and w_quadratic_half is not None:
                w = w_quadratic_half
            for seed in range(n):
                b = MU + 0.01 * rng.standard_normal()
                ww = w * (1 + 0.01 * rng.standard_normal())
                rows.append({"arm": label, "seed": seed, "budget": budget, "step": step,
                             "b": b, "w": ww, "d_x": 0.0, "mean_error": b - MU,
                             "scale_ratio": ww / S,
                             "w1": (0.997 + 0.002 * rng.random() if w < 0.1
                                    else 0.03 + abs(ww / S - 1) + 0.01 * rng.random()),
                             "seen_by_linear": 0.0, "seen_by_quadratic": 0.5})
    return pd.DataFrame(rows)


def test_linear_gan_verdict_follows_the_data():
    q, settings = LinearGAN(), dict(LinearGAN.quick)
    agree = q.analyse({"finals": _linear_gan_table(0.02, S)}, settings)
    assert agree.outcome == "agrees" and agree.answer.startswith("No, not with a logistic D")
    assert agree.convergence["all_converged"] and len(agree.convergence["arms"]) == 4
    assert agree.changes and "**D on x**" in agree.text
    contra = q.analyse({"finals": _linear_gan_table(S, S)}, settings)  # linear D learns s
    assert contra.outcome == "disagrees"


def test_linear_gan_is_budget_dependent_while_an_arm_still_moves():
    q, settings = LinearGAN(), dict(LinearGAN.quick)
    moving = q.analyse({"finals": _linear_gan_table(0.02, S, w_quadratic_half=0.5 * S)},
                       settings)
    assert moving.outcome == "budget-dependent"
    assert moving.answer.startswith("Not decided")
    assert not moving.convergence["all_converged"]
    status = {(a["arm"], a["metric"]): a["status"] for a in moving.convergence["arms"]}
    assert status[("D on x, x²", "scale_ratio")] == "moving"
    assert status[("D on x", "w1")] == "converged"


def test_linear_gan_refuses_checkpoints_that_miss_half_the_budget():
    settings = {**LinearGAN.quick, "checkpoints": 5}
    with pytest.raises(ValueError, match="checkpoints must be even"):
        LinearGAN().experiment(settings, 0)


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


def test_shared_scale_head_gives_one_sigma_for_every_z():
    from gangrad.questions.learned_variance import SharedScaleHead, shared_scale
    from gangrad.train.stacked import Stack

    torch.manual_seed(4)
    plain = tasks.create("gaussian1d").make_generator((2, 1))
    torch.manual_seed(4)
    G = shared_scale(tasks.create("gaussian1d")).make_generator((2, 1))
    assert isinstance(G.head, SharedScaleHead)
    z = torch.linspace(-3, 3, 7)[:, None]
    out, ref = G(z), plain(z)
    torch.testing.assert_close(out[:, 0], ref[:, 0])  # the location is the task's own
    assert torch.all(out[:, 1] == G.head.linear.bias[1])  # log σ: the bias, whatever z
    assert ref[:, 1].std() > 0.01  # where reparam's own head lets σ follow z
    torch.manual_seed(5)
    other = shared_scale(tasks.create("gaussian1d")).make_generator((2, 1))
    zs = torch.stack([z, 2 * z])
    stacked = Stack([G, other])(zs)
    assert Stack([G, other]).grouped
    torch.testing.assert_close(stacked, torch.stack([G(z), other(2 * z)]))
    with pytest.raises(ValueError, match="location-and-log-scale"):
        shared_scale(tasks.create("gaussian1d")).make_generator((1,))


def _lv_table(learned_blind: float, learned_half: float | None = None, n: int = 8):
    """learned-variance's finals at both budgets, W1 per arm: every arm at 0.04 but the
    learned σ(z) with a blind D (``learned_blind``); ``learned_half`` moves the learned σ(z)
    arm of the first setting at T/2."""
    from gangrad.questions.learned_variance import LearnedVariance

    rng = np.random.default_rng(1)
    tails = 4.0 * rng.random(n)  # a seed's kurtosis where σ follows z, the same at T/2 and T
    rows = []
    for p in LearnedVariance.quick["plan"]:
        arms = ["σ = 0", *[f"σ = {c:g}" for c in p["sigmas"]], "learned σ(z)",
                "learned σ, shared"]
        blind = "x²" in p["setting"]
        for budget in ("T/2", "T"):
            for arm in arms:
                w1 = learned_blind if blind and arm == "learned σ(z)" else 0.04
                if budget == "T/2" and not blind and arm == "learned σ(z)" and learned_half:
                    w1 = learned_half
                for seed in range(n):
                    kurt = tails[seed] if w1 > 0.1 else 0.02 * rng.standard_normal()
                    rows.append({"setting": p["setting"], "arm": f"{p['setting']}: {arm}",
                                 "seed": seed, "budget": budget,
                                 "step": p["steps"] // (2 if budget == "T/2" else 1),
                                 "w1": w1 + 0.01 * rng.standard_normal() + 0.03 * kurt,
                                 "kurtosis": kurt,
                                 "sigma": 0.8 if arm.startswith("learned") else math.nan,
                                 "log_sigma_spread": (0.5 if w1 > 0.1 else 0.0)
                                 if arm == "learned σ(z)" else 0.0,
                                 "corr_z_log_sigma": 1.0 if arm == "learned σ(z)" else math.nan})
    return pd.DataFrame(rows)


def test_learned_variance_verdict_follows_the_data():
    from gangrad.questions.learned_variance import LearnedVariance

    q, settings = LearnedVariance(), dict(LearnedVariance.quick)
    v = q.analyse({"finals": _lv_table(0.15)}, settings)
    assert v.outcome == "equivalent" and v.answer.startswith("Neither")
    assert v.convergence["all_converged"]
    blind = v.numbers["gaussian1d, D on x and x²"]
    assert blind["against_sigma_0"]["learned σ(z)"]["outcome"] == "worse"
    assert blind["spearman_kurtosis_vs_metric_learned"] > 0.7
    assert "worse" in v.answer and "heavy tails" in v.answer
    moving = q.analyse({"finals": _lv_table(0.15, learned_half=0.5)}, settings)
    assert moving.outcome == "budget-dependent" and moving.answer.startswith("Not decided")


def _zp_table(uniform_mlp: float, n: int = 8) -> pd.DataFrame:
    """z-prior's finals: W1 per arm at both budgets (converged), the uniform arm of the MLP
    G at ``uniform_mlp``."""
    from gangrad.questions.z_prior import ZPrior

    rng = np.random.default_rng(2)
    value = {"z normal": 0.04, "z uniform": 0.19, "z none": 1.0}
    rows = []
    for p in ZPrior.quick["plan"]:
        mlp = p["params"].get("generator") == "mlp"
        arms = [f"z {lat}" for lat in p["latents"]] + [f"z normal, dim {d}" for d in p["dims"]]
        for budget in ("T/2", "T"):
            for arm in arms:
                w1 = uniform_mlp if mlp and arm == "z uniform" else value.get(arm, 0.04)
                for seed in range(n):
                    # a point mass driven around by D: unsettled, but never below its floor
                    drift = 2 * rng.random() if arm == "z none" and budget == "T" else 0.0
                    rows.append({"setting": p["setting"], "arm": f"{p['setting']}: {arm}",
                                 "seed": seed, "budget": budget,
                                 "step": p["steps"] // (2 if budget == "T/2" else 1),
                                 "w1": w1 + drift + 0.01 * rng.standard_normal()})
    return pd.DataFrame(rows)


def test_z_prior_verdict_follows_the_data():
    from gangrad.questions.z_prior import ZPrior

    q, settings = ZPrior(), dict(ZPrior.quick)
    same = q.analyse(_zp_table(0.04), settings)
    assert same.outcome == "equivalent"
    status = {a["arm"]: a["status"] for a in same.convergence["arms"]}
    assert status["gaussian1d, linear G: z none"] != "converged"
    assert all(v == "converged" for k, v in status.items() if not k.endswith("z none"))
    assert same.answer.startswith("G needs z because without it G emits one point")
    assert "N(0, 1) ends better than uniform" in same.answer  # linear G: forced
    assert "does not matter there" in same.answer  # latent dimensions all equivalent
    linear = same.numbers["gaussian1d, linear G"]
    assert linear["runs_below_floor"] == {"z none": 0, "z uniform": 0}
    assert linear["worse_at_any_budget_by_floor"] == {"z none": True, "z uniform": True}
    assert "worse at any budget" in same.answer
    worse = q.analyse(_zp_table(0.3), settings)  # uniform worse even with an MLP G
    assert worse.outcome == "better"


def test_a_budget_dependent_comparison_does_not_promise_seeds():
    """An arm still moving between T/2 and T is not decided by more seeds: its sentence
    gives both budgets and no seed count; a settled undetermined comparison keeps it."""
    from gangrad.questions._arms import decide

    rng = np.random.default_rng(3)
    rows = []
    for budget, step, moved in (("T/2", 500, 0.5), ("T", 1000, 0.0)):
        for seed in range(8):
            rows.append({"arm": "ref", "seed": seed, "budget": budget, "step": step,
                         "w1": 0.1 + 0.001 * rng.standard_normal()})
            rows.append({"arm": "a", "seed": seed, "budget": budget, "step": step,
                         "w1": 0.1 + moved + 0.08 * rng.standard_normal()})
    dec = decide(pd.DataFrame(rows), ["a"], "ref", "w1", False, 0.05)
    assert dec.outcomes["a"] == "budget-dependent" and dec.end["a"].outcome == "undetermined"
    assert dec.convergence["a"].status == "moving"
    assert "more seeds" not in dec.sentence("a") and "at T/2" in dec.sentence("a")
    settled = pd.DataFrame([r for r in rows if r["budget"] == "T"])
    settled = pd.concat([settled, settled.assign(budget="T/2", step=500)])
    kept = decide(settled, ["a"], "ref", "w1", False, 0.05)
    assert kept.outcomes["a"] == "undetermined" and "more seeds" in kept.sentence("a")


# -- the questions end to end (quick sizes) ----------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name, outcomes", [
    ("linear-gan", {"agrees"}),
    ("update-schedule", {"better", "worse", "equivalent", "undetermined", "budget-dependent"}),
    ("z-prior", {"better", "worse", "equivalent", "undetermined", "budget-dependent"}),
    ("learned-variance", {"better", "worse", "equivalent", "undetermined",
                          "budget-dependent"}),
])
def test_quick_answers(name, outcomes, tmp_path):
    answer = questions.ask(name)
    assert answer.outcome in outcomes
    assert questions.save(answer, tmp_path)["json"].exists()
