"""The training loop: determinism, refusals, divergence, outputs, the CLI."""

from __future__ import annotations

import pandas as pd
import pytest

from gangrad import cli, estimators, tasks
from gangrad.schedules import Schedule
from gangrad.train import TrainConfig, train

SHORT = {"steps": 6, "eval_every": 3, "eval_samples": 200, "batch_size": 32}


def test_same_seed_same_history_on_cpu():
    a = train("ring8", "smoothing", estimator_hyper={"sigma": 0.05}, seed=3, device="cpu",
              **SHORT)
    b = train("ring8", "smoothing", estimator_hyper={"sigma": 0.05}, seed=3, device="cpu",
              **SHORT)
    cols = [c for c in a.columns if c != "elapsed_s"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    c = train("ring8", "smoothing", estimator_hyper={"sigma": 0.05}, seed=4, device="cpu",
              **SHORT)
    assert not a[cols].equals(c[cols])


def test_history_has_losses_metrics_and_status(tmp_path):
    h = train("categorical", "score_function", estimator_hyper={"baseline": "mean"},
              out_dir=tmp_path, device="cpu", **SHORT)
    assert list(h["step"]) == [0, 3, 6]
    task = tasks.create("categorical")
    assert set(task.metrics) <= set(h.columns)
    assert {"g_loss", "d_loss", "elapsed_s"} <= set(h.columns)
    assert h.attrs["status"] == "ok"
    assert (tmp_path / "history.csv").exists() and (tmp_path / "samples.png").stat().st_size
    assert pd.read_csv(tmp_path / "history.csv").shape == h.shape


def test_unsupported_estimator_is_refused_naming_the_ones_that_do():
    with pytest.raises(ValueError, match=r"does not support task 'categorical'.*st_gumbel"):
        train("categorical", "smoothing", **SHORT)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"steps": 0}, "steps"), ({"lr_g": -1.0}, "lr_g"), ({"loss": "wasserstein"}, "loss"),
     ({"batch_size": 1}, "batch_size"), ({"stepz": 3}, "unknown option")],
)
def test_bad_config_rejected_before_work(overrides, message):
    with pytest.raises(ValueError, match=message):
        train("gaussian1d", "pathwise", **{**SHORT, **overrides})


def test_schedule_must_name_a_hyperparameter():
    with pytest.raises(ValueError, match="cannot anneal 'temperature'"):
        train("gaussian1d", "smoothing",
              config=TrainConfig(schedules={"temperature": Schedule(1, 0.1, 5)}), **SHORT)


def test_annealed_sigma_trains():
    cfg = TrainConfig(schedules={"sigma": Schedule(1.0, 0.01, 6)})
    h = train("gaussian1d", "smoothing", config=cfg, device="cpu", **SHORT)
    assert h.attrs["status"] == "ok" and h.attrs["config"]["schedules"]["sigma"]["end"] == 0.01


class _Exploding(estimators.Pathwise):
    """Returns NaN: a stand-in for a run whose loss blows up."""

    key = "exploding"

    def _surrogate(self, params, f, noise, space):
        return f(params) * float("nan")


def test_divergence_is_recorded_not_raised(tmp_path):
    h = train("gaussian1d", _Exploding(), out_dir=tmp_path, device="cpu", **SHORT)
    assert h.attrs["status"] == "diverged"
    assert h.attrs["diverged_at"] == 1
    assert (tmp_path / "history.csv").exists()


def test_cli_train_writes_outputs(tmp_path, capsys):
    code = cli.main(["train", "--task", "gaussian1d", "--estimator", "smoothing", "-p",
                     "sigma=0.2", "--steps", "4", "--eval-every", "2", "--eval-samples", "100",
                     "--out", str(tmp_path / "run"), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "step      4" in out and "w1" in out
    assert (tmp_path / "run" / "history.csv").exists()


def test_cli_train_reports_bad_input(capsys):
    assert cli.main(["train", "--task", "ring9", "--estimator", "pathwise"]) == 2
    assert "available" in capsys.readouterr().err
    assert cli.main(["train", "--task", "ring8", "--estimator", "pathwise", "-p", "sigma"]) == 2
    assert cli.main(["train", "--task", "ring8", "--estimator", "smoothing",
                     "-p", "sigma=-1"]) == 2
    assert "sigma must be in (0, inf)" in capsys.readouterr().err


@pytest.mark.slow
def test_pathwise_covers_ring_modes():
    """Plain backprop through G and D (the original GAN) finds ≥ 7 of the 8 ring modes."""
    h = train("ring8", "pathwise", seed=0, device="cpu")
    assert h["modes"].iloc[-1] >= 7, h.tail()


SMOKE = {"gaussian1d": "smoothing", "ring8": "reparam", "grid25": "pathwise",
         "categorical": "st_gumbel", "digits": "pathwise", "binary_digits": "straight_through",
         "oracle_seq": "gumbel_softmax"}


@pytest.mark.parametrize("task", sorted(SMOKE))
def test_every_task_trains_briefly(task, tmp_path):
    assert set(SMOKE) == set(tasks.available())
    h = train(task, SMOKE[task], steps=3, eval_every=3, eval_samples=64, batch_size=16,
              device="cpu", out_dir=tmp_path)
    assert h.attrs["status"] == "ok"
    t = tasks.create(task)
    expected = set(t.metrics) | set(getattr(t, "generator_metrics", {}))
    assert expected <= set(h.columns)
    assert (tmp_path / "samples.png").stat().st_size > 0
