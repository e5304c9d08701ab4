"""gan-discrete: the exact metrics by enumeration, the arms at equal f-evaluations, the
identity behind "Dr. GRPO trains RLOO's run under Adam", and the verdict computed from
constructed data.

Constructed runs use fixed seeds; their per-seed noise (sd 1e-4) is far inside the margins
(0.01 nats), so every outcome below is decided by construction, not by chance.
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch

from gangrad import estimators, questions
from gangrad.questions import gan_discrete as gd
from gangrad.stats import BUDGET_DEPENDENT
from gangrad.tasks.categorical import ConstantGenerator

SETTINGS = {"seeds": 8, "tuning_seeds": 2, "budget": 64, "group": 4, "rollouts": 1,
            "checkpoints": 2, "device": "cpu", "sequence": None,
            "categorical": {"classes": 10, "steps": 200, "tuning_steps": 100, "lr_g": [1e-2]}}


def test_registered_with_its_papers():
    q = questions.create("gan-discrete")
    assert isinstance(q, gd.GANDiscrete) and "?" in q.question
    assert {"SeqGAN", "MaliGAN", "BGAN", "GRPO"} <= set(q.origin.replace(",", " ").split())
    assert q.quick["sequence"] is None and q.full["sequence"]  # roll-outs in the full run
    for size in (q.quick, q.full):  # every batch whole at the declared budget
        for setting in ("categorical", "sequence"):
            spec = size[setting]
            if spec:
                params = ({"classes": spec["classes"]} if setting == "categorical" else
                          {"vocab": spec["vocab"], "length": spec["length"]})
                assert spec["steps"] % 2 == 0 and spec["tuning_steps"] <= spec["steps"]
                gd.arms_for(setting, params, size["budget"], size["group"], size["rollouts"],
                            spec["steps"])


def test_exact_metrics_against_scipy():
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    q = torch.tensor([0.2, 0.2, 0.6], dtype=torch.float64)
    m = gd.exact_metrics(q.log(), p.log())
    assert m["kl_exact"] == pytest.approx(scipy.stats.entropy(q, p), rel=1e-12)
    assert m["kl_forward"] == pytest.approx(scipy.stats.entropy(p, q), rel=1e-12)
    assert m["tv_exact"] == pytest.approx(0.4, rel=1e-12)
    same = gd.exact_metrics(p.log(), p.log())
    assert same == {"kl_exact": 0.0, "kl_forward": 0.0, "tv_exact": 0.0}


def test_log_marginal_is_the_latent_average_of_the_product():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 3, 4, generator=g)  # Z x L x V
    symbols = torch.tensor(list(itertools.product(range(4), repeat=3)))  # every sequence
    got = gd.log_marginal(logits, chunk=2)
    probs = logits.double().softmax(-1)
    want = torch.stack([probs[:, range(3), x].prod(-1).mean() for x in symbols]).log()
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    assert float(got.exp().sum()) == pytest.approx(1.0, abs=1e-12)


def test_exact_categorical_reads_softmax_theta():
    task = gd.ExactCategorical(classes=6)
    G = ConstantGenerator((1, 6))
    with torch.no_grad():
        G.theta.copy_(task.probs.log().reshape(1, 6))
    assert task.evaluate_generator(G, "logits")["kl_exact"] == pytest.approx(0, abs=1e-7)
    with torch.no_grad():
        G.theta.zero_()  # uniform
    m = task.evaluate_generator(G, "logits")
    uniform = np.full(6, 1 / 6)
    assert m["kl_exact"] == pytest.approx(scipy.stats.entropy(uniform, task.probs), rel=1e-6)
    assert m["kl_forward"] == pytest.approx(scipy.stats.entropy(task.probs, uniform), rel=1e-6)


def test_exact_oracle_seq_enumerates_a_normalised_oracle():
    task = gd.ExactOracleSeq(vocab=3, length=3)
    assert task.support.tolist() == [list(x) for x in itertools.product(range(3), repeat=3)]
    assert float(torch.logsumexp(task.log_p_oracle, 0)) == pytest.approx(0, abs=1e-5)
    torch.manual_seed(0)
    G = task.make_generator((3, 3))
    m = task.evaluate_generator(G, "logits")
    assert m["kl_exact"] >= 0 and m["kl_forward"] >= 0 and 0 <= m["tv_exact"] <= 1
    assert "nll_test" in m  # the task's own generator metric is kept
    with pytest.raises(ValueError, match="at most"):
        gd.ExactOracleSeq(vocab=100, length=20)


@pytest.mark.parametrize("setting,params", [("categorical", {"classes": 10}),
                                            ("sequence", {"vocab": 2, "length": 4})])
def test_every_arm_spends_the_budget(setting, params):
    arms = gd.arms_for(setting, params, budget=64, group=4, rollouts=1, steps=100)
    labels = [a.label.split(": ", 1)[1] for a in arms]
    assert ("SeqGAN" in labels) == (setting == "sequence")
    assert len(labels) == len(gd.ARMS) - (setting == "categorical")
    task = arms[0].make_task()
    for arm in arms:
        calls = estimators.create(arm.estimator, **arm.hyper).evaluations(task.space)
        assert arm.train["batch_size"] * calls == 64, arm.label
    gumbel = next(a for a in arms if a.estimator == "gumbel_softmax")
    schedule = gumbel.train["schedules"]["temperature"]
    assert (schedule(0), schedule(100)) == pytest.approx((1.0, 0.01))
    with pytest.raises(ValueError, match="whole batch"):
        gd.arms_for(setting, params, budget=60, group=8, rollouts=1, steps=100)


def test_dr_grpo_is_rloo_scaled_and_adam_removes_the_scale():
    """Dr. GRPO's advantage is RLOO's times (S − 1)/S, so from one state and noise their
    gradients are proportional, and Adam's first step is the same wherever the gradient is
    well above Adam's ε (a component that is rounding noise for one and exactly 0 for the
    other is where the runs first part)."""
    f = lambda x: (x * torch.arange(10.0)).sum((-2, -1))  # noqa: E731
    grads = {}
    for baseline in ("mean", "group_mean"):
        est = estimators.create("score_function", baseline=baseline, samples=4)
        theta = torch.zeros(1, 1, 10, requires_grad=True)  # the categorical's one logit row
        params = theta.expand(16, 1, 10)
        noise = est.noise(params, generator=torch.Generator().manual_seed(3))
        est.surrogate(params, f, noise=noise).mean().backward()
        grads[baseline] = theta.grad
    assert torch.allclose(grads["group_mean"], 0.75 * grads["mean"], rtol=1e-6, atol=1e-7)
    steps = {}
    for baseline, g in grads.items():
        p = torch.nn.Parameter(torch.zeros_like(g))
        opt = torch.optim.Adam([p], lr=1e-2)
        p.grad = g.clone()
        opt.step()
        steps[baseline] = p.detach()
    above = grads["mean"].abs() > 1e-4
    assert above.sum() >= 5
    assert torch.allclose(steps["group_mean"][above], steps["mean"][above], rtol=0, atol=1e-8)


def _constructed(arms: dict[str, tuple[float, float]], seeds: int = 8,
                 setting: str = "categorical") -> dict[str, pd.DataFrame]:
    """Runs whose kl_exact at T/2 and T is each arm's given pair plus small seeded noise."""
    rng = np.random.default_rng(0)
    rows, spec = [], []
    for label, (half, end) in arms.items():
        for seed in range(seeds):
            for budget, step, value in (("T/2", 100, half), ("T", 200, end)):
                v = value + rng.normal(0, 1e-4)
                rows.append({"arm": f"{setting}: {label}", "task": "categorical",
                             "seed": seed, "steps": 200, "budget": budget, "step": step,
                             "status": "ok", "elapsed_s": 1.0, "kl_exact": v,
                             "kl_forward": v, "setting": setting})
        spec.append({"setting": setting, "arm": f"{setting}: {label}",
                     "estimator": label, "batch_size": 16, "calls_per_row": 4,
                     "lr_g": 1e-2})
    runs = pd.DataFrame(rows)
    curves = runs[["setting", "arm", "seed", "step", "kl_exact"]]
    return {"runs": runs, "arms": pd.DataFrame(spec), "curves": curves,
            "tuning": pd.DataFrame()}


def test_verdict_names_the_best_the_equivalent_and_the_worse():
    data = _constructed({"straight-through": (0.002, 0.002), "RLOO": (0.002, 0.002),
                         "MaliGAN": (0.004, 0.004), "GRPO": (0.06, 0.06),
                         "BGAN": (0.04, 0.04)})
    v = gd.GANDiscrete().analyse(data, SETTINGS)
    c = v.numbers["categorical"]
    assert c["best"] in ("categorical: RLOO", "categorical: straight-through")
    outcomes = {a: n["outcome"] for a, n in c["comparisons"].items()}
    other = ({"categorical: RLOO", "categorical: straight-through"} - {c["best"]}).pop()
    assert outcomes[other] == "equivalent"
    assert outcomes["categorical: MaliGAN"] == "worse"  # clear, but inside the margin
    assert outcomes["categorical: GRPO"] == outcomes["categorical: BGAN"] == "worse"
    assert v.outcome == "better"
    assert "gives the best samples" in v.answer
    assert "MaliGAN is worse by less than 0.01 nats" in v.answer
    assert re.search(r"GRPO and BGAN are worse by 0\.0\d+ and 0\.0\d+ nats", v.answer)
    assert "SeqGAN" in v.answer  # said to be compared only where sequences run
    assert v.convergence["all_converged"] and len(v.convergence["arms"]) == 5
    assert re.search(r"\d\.\d", v.text)


def test_an_arm_still_moving_makes_the_verdict_budget_dependent():
    data = _constructed({"RLOO": (0.002, 0.002), "MaliGAN": (0.2, 0.003),
                         "GRPO": (0.06, 0.06)})
    v = gd.GANDiscrete().analyse(data, SETTINGS)
    c = v.numbers["categorical"]
    assert c["comparisons"]["categorical: MaliGAN"]["outcome"] == BUDGET_DEPENDENT
    assert c["arms"]["categorical: MaliGAN"]["converged"] == "moving"
    assert v.outcome == BUDGET_DEPENDENT and "RLOO gives the lowest KL:" in v.answer
    assert "MaliGAN is not compared, as not every arm converged" in v.answer
    assert "GRPO is worse by 0.058 nats" in v.answer  # 0.06 − 0.002


def test_the_best_is_chosen_among_converged_arms():
    """An arm lowest at T but still moving is not the reference the others are read by."""
    data = _constructed({"RLOO": (0.002, 0.002), "BGAN": (0.3, 0.001)})
    part = gd.summarise(data["runs"], "categorical", 0.01)
    assert part["best"] == "categorical: RLOO"


def test_figure_draws_from_constructed_data():
    data = _constructed({"RLOO": (0.002, 0.002), "GRPO": (0.06, 0.05)})
    fig, caption = gd.GANDiscrete().figure(data, SETTINGS)
    assert len(fig.axes) == 2 and "T/2" in caption
    assert math.isfinite(fig.axes[1].get_ylim()[1])



def test_a_flip_inside_the_margin_is_named_as_such():
    """Equivalent at T/2 and clearly but slightly worse at T is budget-dependent under the
    rule; the answer says that the difference at T lies inside the margin."""
    data = _constructed({"RLOO": (0.002, 0.002), "MaliGAN": (0.002, 0.005)})
    v = gd.GANDiscrete().analyse(data, SETTINGS)
    c = v.numbers["categorical"]["comparisons"]["categorical: MaliGAN"]
    assert c["outcome"] == BUDGET_DEPENDENT
    assert (c["at_half_T"]["outcome"], c["at_T"]["outcome"]) == ("equivalent", "worse")
    assert ("MaliGAN is budget-dependent against it (equivalent at T/2 and worse by less "
            "than 0.01 nats at T)") in v.answer
