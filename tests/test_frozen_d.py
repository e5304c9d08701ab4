"""frozen-d: the explicit GAN loops against gangrad's own step, which mistakes change the
update (bit for bit), and the verdict computed from constructed data.

Exact checks compare bits; nothing here is randomized beyond fixed seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from gangrad import questions, tasks
from gangrad.questions import frozen_d as fd
from gangrad.train import train_seeds

SETTINGS = {"steps": 8, "lr_g": 0.01, "lr_d": 0.03, "eval_samples": 200}


@pytest.fixture(scope="module")
def task():
    return tasks.create("gaussian1d", features="quadratic", loc=4.0)


def test_frozen_d_is_registered_with_its_public_origin():
    assert "frozen-d" in questions.available()
    q = questions.create("frozen-d")
    assert "Cross Validated 237944" in q.origin and "?" in q.question


def test_the_correct_loop_is_gangrads_own_step(task):
    cfg = fd._config(task, SETTINGS)
    mine = fd.train_loop(task, cfg, [0, 3], fd.CORRECT, every=4)
    ref = train_seeds(task, "pathwise", [0, 3], steps=8, lr_g=0.01, lr_d=0.03, eval_every=4,
                      eval_samples=200, device="cpu")
    for a, b in zip(mine, ref, strict=True):
        cols = ["step", "w1", "ks", "d_loss", "g_loss"]
        assert np.array_equal(a[cols].to_numpy(), b[cols].to_numpy(), equal_nan=True)


def test_only_the_mistakes_that_leave_stray_gradients_unread_keep_the_update(task):
    cfg = fd._config(task, SETTINGS)
    exact = fd.exact_check(task, cfg, [0, 1], iterations=5)
    worst = exact.groupby("loop")[["G_max_abs_diff", "D_max_abs_diff"]].max().max(axis=1)
    assert worst["correct"] == 0
    assert worst["D not frozen"] == 0 and worst["fakes not detached"] == 0
    for label in ("G's optimizer steps D", "D's gradients never cleared",
                  "G's loss left in D's gradients"):
        row = exact[exact["loop"] == label]
        assert (row["D_max_abs_diff"] > 1e-4).all(), label  # D's update is another
    row = exact[exact["loop"] == "D's loss left in G's gradients"]
    assert (row["G_max_abs_diff"] > 1e-4).all()  # G's update carries D's loss


def test_a_loop_that_steps_d_through_gs_optimizer_moves_d_towards_the_fakes(task):
    """One iteration from the same state: the extra D step (down G's loss) raises D's
    logits on fakes compared with the correct loop."""
    cfg = fd._config(task, SETTINGS)
    logits = {}
    for loop in (fd.CORRECT, fd._loop("g-optimizer-steps-d")):
        _, stacked, opt_g = fd._start(task, cfg, [0, 1, 2], loop)
        fd.iteration(stacked, loop, opt_g)
        with torch.no_grad():
            z = torch.randn(3, 500, 1, generator=torch.Generator().manual_seed(5))
            logits[loop.key] = stacked.D(stacked.G(z)).mean(1)
    assert (logits["g-optimizer-steps-d"] > logits["correct"]).all()


def test_a_loop_with_an_unknown_clearing_rule_is_refused():
    with pytest.raises(ValueError, match="clear_d must be one of"):
        fd.Loop("x", "x", clear_d="sometimes")
    with pytest.raises(ValueError, match="clear_g must be one of"):
        fd.Loop("x", "x", clear_g="never")
    with pytest.raises(ValueError, match="no loop"):
        fd._loop("no-such-loop")


def _constructed(worse_by: float, moving: float = 0.0) -> dict[str, pd.DataFrame]:
    """Curves where every changed loop ends ``worse_by`` above the correct one (W1), and
    is ``moving`` higher at T/2 than at T; exact differences as measured."""
    rng = np.random.default_rng(0)
    labels = [lp.label for lp in fd.LOOPS]
    exact = pd.DataFrame([{"loop": lab, "seed": s, "iterations": 5,
                           "G_max_abs_diff": 0.0 if lab in ("correct", "D not frozen",
                                                            "fakes not detached") else 0.1,
                           "D_max_abs_diff": 0.0 if lab in ("correct", "D not frozen",
                                                            "fakes not detached") else 0.2,
                           "G_rel_diff": 0.0, "D_rel_diff": 0.0}
                          for lab in labels for s in range(10)])
    rows = []
    for lab in labels:
        if lab in ("D not frozen", "fakes not detached"):
            continue
        for s in range(10):
            base = 0.07 + 0.01 * rng.standard_normal()
            extra = 0.0 if lab == "correct" else worse_by
            for step, w1 in ((50, base + extra + (moving if lab != "correct" else 0)),
                             (100, base + extra)):
                rows.append({"arm": lab, "seed": s, "step": step, "status": "ok",
                             "w1": w1 + 0.002 * rng.standard_normal(), "ks": math.nan,
                             "d_loss": 1.38, "g_loss": 0.69})
    return {"curves": pd.DataFrame(rows), "exact": exact}


SMALL = {**fd.FrozenD.quick, "seeds": 10, "steps": 100, "eval_every": 50,
         "exact_iterations": 5}


def test_the_verdict_names_the_harmless_and_the_harmful_mistakes():
    v = fd.FrozenD().analyse(_constructed(worse_by=0.3), SMALL)
    assert v.outcome == "worse"
    assert v.answer.startswith("Yes:")
    assert "'D not frozen' and 'fakes not detached' leave the update bit for bit" in v.answer
    assert "make training end worse" in v.answer
    assert set(v.numbers["same_update"]) == {"D not frozen", "fakes not detached"}
    assert v.convergence["all_converged"]


def test_the_verdict_calls_equal_ends_equivalent_and_moving_arms_budget_dependent():
    v = fd.FrozenD().analyse(_constructed(worse_by=0.0), SMALL)
    assert v.outcome == "equivalent" and "end equivalent once converged" in v.answer
    v = fd.FrozenD().analyse(_constructed(worse_by=0.0, moving=0.3), SMALL)
    assert v.outcome == "budget-dependent" and "not settled" in v.answer
    assert not v.convergence["all_converged"]
    v = fd.FrozenD().analyse(_constructed(worse_by=0.5, moving=-0.3), SMALL)
    assert v.outcome == "budget-dependent"  # worse at both budgets, still getting worse
    assert "'G's optimizer steps D' is worse at both budgets and has not converged" in v.answer


def test_the_experiment_refuses_budgets_it_cannot_read_at_half(task):
    with pytest.raises(ValueError, match="must be even"):
        fd.FrozenD().experiment({**SMALL, "steps": 90}, 0)


def test_a_tiny_run_answers_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr(fd.FrozenD, "quick", {**SMALL, "seeds": 3, "steps": 40,
                                              "eval_every": 20, "eval_samples": 200})
    answer = questions.ask("frozen-d")
    paths = questions.save(answer, tmp_path)
    assert answer.answer and answer.convergence["arms"]
    assert set(answer.table["arm"]) == {"correct", "G's optimizer steps D",
                                        "D's gradients never cleared",
                                        "G's loss left in D's gradients",
                                        "D's loss left in G's gradients"}
    assert "## Convergence" in paths["md"].read_text()
