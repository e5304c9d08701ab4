"""The gradient-statistics engine (fixed seeds; tolerances from the replicate count)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from gangrad import cli, estimators, tasks
from gangrad.measure import (
    GradientProbe,
    GradStatsConfig,
    draw_noise,
    gradient_stats,
    group_stats,
    loop_gradients,
    replicate_gradients,
    sigma_sweep,
)
from gangrad.train import generator_loss, train

FAST = {"timing": False}


def _total(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["layer"] == "total"].set_index("estimator")


def test_categorical_at_init_bias_and_baselines():
    df = _total(gradient_stats(
        "categorical", ["score_function", ("score_function", {"baseline": "mean"}), "pathwise"],
        replicates=2000, seed=0, **FAST))
    assert set(df["reference"]) == {"enumeration"}
    sf, loo, pw = (df.loc[k] for k in
                   ("score_function", "score_function(baseline=mean)", "pathwise"))
    assert sf["bias_lo"] == 0.0 and loo["bias_lo"] == 0.0, "REINFORCE is unbiased"
    assert pw["bias_lo"] > 0 and pw["variance"] == 0, "softmax pass-through is biased"
    assert loo["variance_hi"] < sf["variance_lo"], "the leave-one-out baseline lowers variance"


@pytest.mark.parametrize(
    ("task", "key", "hyper"),
    [("ring8", "smoothing", {"sigma": 0.1}), ("ring8", "reparam", {}),
     ("categorical", "score_function", {"baseline": "mean", "samples": 3}),
     ("binary_digits", "st_gumbel", {}), ("binary_digits", "straight_through", {}),
     ("oracle_seq", "gumbel_softmax", {"temperature": 0.7}),
     ("binary_digits", "rebar", {}), ("categorical", "relax", {"hidden": 8}),
     ("binary_digits", "relax", {}), ("binary_digits", "arm", {}),
     ("binary_digits", "disarm", {}), ("categorical", "rao_blackwell_st", {"samples": 3}),
     ("binary_digits", "reinmax", {}), ("categorical", "gst", {}), ("categorical", "zgr", {}),
     ("categorical", "decoupled_st", {}), ("binary_digits", "arms", {}),
     ("gaussian1d", "measure_valued", {}), ("binary_digits", "indecater", {}),
     ("categorical", "arsm", {})],
)
def test_batched_replicates_match_the_loop(task, key, hyper):
    t = tasks.create(task)
    est = estimators.create(key, **hyper)
    torch.manual_seed(0)
    G = t.make_generator(est.param_shape(t.space))
    f = generator_loss("nonsaturating", t.make_discriminator().requires_grad_(False))
    z = t.sample_latent(8, generator=torch.Generator().manual_seed(1))
    noise = draw_noise(est, G(z), 5, t.space, torch.Generator().manual_seed(2))
    batched = replicate_gradients(est, G, f, z, noise, t.space, chunk_size=2)
    looped = loop_gradients(est, G, f, z, noise, t.space)
    for name in looped:
        torch.testing.assert_close(batched[name], looped[name], rtol=1e-4, atol=1e-6)
    # fresh z per replicate goes through the same path
    zs = t.sample_latent(40, generator=torch.Generator().manual_seed(3)).reshape(5, 8, -1)
    batched = replicate_gradients(est, G, f, zs, noise, t.space)
    looped = loop_gradients(est, G, f, zs, noise, t.space)
    for name in looped:
        torch.testing.assert_close(batched[name], looped[name], rtol=1e-4, atol=1e-6)


def test_gaussian1d_pathwise_matches_quadrature():
    """With a new z batch per replicate, pathwise averages to the exact E_z gradient."""
    df = _total(gradient_stats("gaussian1d", ["pathwise"], replicates=400, batch_size=64,
                               fresh_z=True, **FAST))
    row = df.loc["pathwise"]
    assert row["reference"] == "quadrature"
    assert row["bias_lo"] == 0.0, row
    assert row["cosine"] > 0.9


def test_sigma_sweep_bias_vanishes_and_score_variance_grows():
    df = sigma_sweep("gaussian1d", [0.01, 0.1, 1.0], replicates=2000, batch_size=64, **FAST)
    tot = df[df["layer"] == "total"]
    sm = tot[tot["key"] == "smoothing"].set_index("sigma")
    sf = tot[tot["key"] == "score_function"].set_index("sigma")
    assert sm.loc[1.0, "bias_lo"] > sm.loc[0.1, "bias_hi"] > 0, "bias grows with sigma"
    assert sm.loc[0.01, "bias"] < 0.02 * sm.loc[1.0, "bias"], "and vanishes as sigma -> 0"
    assert sf.loc[0.01, "variance_lo"] > sf.loc[0.1, "variance_hi"]
    assert sf.loc[0.1, "variance_lo"] > sf.loc[1.0, "variance_hi"], "score variance grows"
    # both estimate the same smoothed gradient: their bias agrees within the intervals
    assert sf.loc[1.0, "bias_lo"] <= sm.loc[1.0, "bias_hi"]
    assert sm.loc[1.0, "bias_lo"] <= sf.loc[1.0, "bias_hi"]


def test_checkpoints_along_training():
    probe = GradientProbe(tasks.create("ring8"), [("smoothing", {"sigma": 0.05}), "pathwise"],
                          replicates=20, batch_size=16, **FAST)
    train("ring8", "pathwise", steps=3, eval_every=3, eval_samples=200, device="cpu",
          checkpoint_steps=[0, 3], on_checkpoint=probe)
    df = probe.frame()
    assert sorted(df["step"].unique()) == [0, 3]
    layers = set(df["layer"])
    assert "total" in layers and len(layers) > 2
    pw = df[(df["estimator"] == "pathwise") & (df["layer"] == "total")]
    assert (pw["bias"] < 1e-6).all() and (pw["cosine"] > 0.999).all()


def test_columns_and_cost():
    df = gradient_stats("categorical", ["straight_through"], replicates=50, timing_repeats=3)
    for col in ("estimator", "layer", "bias", "variance", "mse", "snr", "cosine", "reference",
                "time_ms", "peak_mem_mb", "f_evals", "var_x_time", "var_x_evals",
                "sign_agreement"):
        assert col in df.columns
    assert (df["time_ms"] > 0).all()
    assert (df["f_evals"] == 1).all()
    assert np.allclose(df["var_x_evals"], df["variance"] * df["f_evals"])
    arm = gradient_stats("binary_digits", ["arm"], replicates=20, timing=False)
    assert (arm["f_evals"] == 2).all() and arm["time_ms"].isna().all()
    assert np.allclose(arm["var_x_evals"], 2 * arm["variance"])


def test_group_stats_on_known_distribution():
    """g = ref + b + N(0, I): bias ‖b‖, variance P, cosine and MSE as expected."""
    torch.manual_seed(0)
    R, P = 4000, 10
    ref = torch.ones(P)
    b = torch.zeros(P)
    b[0] = 0.5
    g = ref + b + torch.randn(R, P)
    s = group_stats(g, ref, n_resamples=200)
    assert s["bias_lo"] <= 0.5 <= s["bias_hi"]
    assert s["variance_lo"] <= P <= s["variance_hi"]
    assert s["mse_lo"] <= P + 0.25 <= s["mse_hi"]
    s0 = group_stats(ref + torch.randn(R, P), ref, n_resamples=200)
    assert s0["bias_lo"] == 0.0
    # half-width of the variance interval ~ 1.96·sqrt(2P/R)
    assert s["variance_hi"] - s["variance_lo"] == pytest.approx(
        2 * 1.96 * math.sqrt(2 * P / R), rel=0.15)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"estimators": ["smoothing"]}, "not supported by smoothing.*straight_through"),
     ({"estimators": ["nope"]}, "available"),
     ({"estimators": ["pathwise"], "replicates": 1}, "replicates"),
     ({"estimators": []}, "no estimators")],
)
def test_bad_input(kwargs, message):
    with pytest.raises((ValueError, KeyError), match=message):
        gradient_stats("categorical", **kwargs)


def test_cli_grad_stats(tmp_path, capsys):
    out = tmp_path / "gs.csv"
    code = cli.main(["grad-stats", "--task", "categorical", "--estimators",
                     "score_function(baseline=mean,samples=2),gumbel_softmax(temperature=0.7)",
                     "--replicates", "50", "--no-timing", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "reference: enumeration" in text and "gumbel_softmax(temperature=0.7)" in text
    assert len(pd.read_csv(out)) > 2


def test_cli_sigma_sweep(tmp_path, capsys):
    code = cli.main(["grad-stats", "--task", "gaussian1d", "--sigma-sweep", "1e-2:1:3",
                     "--replicates", "50", "--no-timing", "--out", str(tmp_path / "s.csv")])
    assert code == 0
    df = pd.read_csv(tmp_path / "s.csv")
    assert sorted(df["sigma"].unique()) == pytest.approx([0.01, 0.1, 1.0])
    assert cli.main(["grad-stats", "--task", "gaussian1d", "--sigma-sweep", "1:0.1:3"]) == 2


def test_group_stats_is_public_with_its_keys():
    """``gangrad.measure.group_stats(g, ref, ref_se2)``: the public entry, as declared."""
    from gangrad.measure import STATISTICS, stored_names

    g = torch.randn(64, 5, generator=torch.Generator().manual_seed(0))
    out = group_stats(g, torch.zeros(5), 0.0)
    expected = {n for s in STATISTICS if s.interval
                for n in (s.name, s.name + "_lo", s.name + "_hi")}
    assert set(out) == expected
    assert {"bias", "bias_lo", "bias_hi", "snr", "snr_lo", "snr_hi", "variance", "mse",
            "cosine", "sign_agreement"} <= expected
    assert set(stored_names()) >= expected


def test_grad_stats_config_has_one_set_of_defaults_and_checks():
    from gangrad.cli.parser import GRAD

    cfg = GradStatsConfig()
    assert GRAD == cfg  # the CLI's defaults are the function's
    assert cfg.validated() is cfg
    bad = GradStatsConfig(replicates=1, batch_size=0, loss="bogus", timing="yes", fresh_z=3,
                          chunk_size=0)
    names = [name for name, _ in bad.problems()]
    assert names == ["replicates", "batch_size", "fresh_z", "timing", "loss", "chunk_size"]
    with pytest.raises(ValueError, match=r"replicates.*batch_size.*fresh_z"):
        bad.validated()
    with pytest.raises(ValueError, match=r"unknown setting.*replicatez"):
        cfg.updated(replicatez=3)
    with pytest.raises(ValueError, match="replicates must be an integer >= 2"):
        gradient_stats("categorical", ["straight_through"], replicates=1)
