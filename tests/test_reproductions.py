"""Reproductions: the ``agrees`` rule, the saved schema, the closed forms behind the
published numbers, the CLI, and the reproductions' own runs.

Seeding: every randomized test draws from a NumPy/torch generator with a fixed seed; a
Monte Carlo variance of ``n`` draws is compared with a closed form within 5 standard
errors, the standard error estimated from the draws' fourth moment,
``sqrt((m4 − s⁴)/n)``. Rows of a whole reproduction are checked family-wise: each measured
95% interval, widened to the Bonferroni level for the number of rows, must contain the
published value (at 95% each, one row in twenty misses by chance).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from gangrad import reproductions
from gangrad.cli import main
from gangrad.reproductions import Reproduction, Row, agrees
from gangrad.reproductions import bernoulli_toy as bt
from gangrad.reproductions import mc_gradients_gaussian as mg

ROW_FIELDS = ["quantity", "setting", "published", "published_error", "measured", "lo", "hi",
              "agrees", "note"]


# -- agrees -------------------------------------------------------------------------------
@pytest.mark.parametrize(("published", "error", "lo", "hi", "expected"), [
    (1.0, None, 0.9, 1.1, True),       # inside
    (1.0, None, 1.0, 1.0, True),       # on a degenerate interval
    (1.2, None, 0.9, 1.1, False),      # outside, no error given
    (1.2, 0.06, 0.9, 1.1, True),       # 1.2 − 1.96·0.06 = 1.082 ≤ 1.1: overlap
    (1.2, 0.04, 0.9, 1.1, False),      # 1.2 − 0.078 = 1.122 > 1.1: apart
    (0.75, 0.1, 0.9, 1.1, True),       # below, 0.75 + 0.196 ≥ 0.9
    (0.7, 0.1, 0.9, 1.1, False),       # below, 0.7 + 0.196 < 0.9
    (None, None, 0.9, 1.1, None),      # a comparison row
])
def test_agrees(published, error, lo, hi, expected):
    assert agrees(published, error, lo, hi) is expected


@pytest.mark.parametrize(("error", "lo", "hi"), [(None, 2.0, 1.0), (-0.1, 0.0, 1.0),
                                                 (math.inf, 0.0, 1.0)])
def test_agrees_rejects_bad_input(error, lo, hi):
    with pytest.raises(ValueError, match=r"published_error|lo="):
        agrees(1.0, error, lo, hi)


# -- saving -------------------------------------------------------------------------------
def _constructed() -> Reproduction:
    from gangrad.plotting import new_figure

    rows = [Row("modes", "GAN", 6.3, 0.5, 7.9, 7.7, 8.1, agrees(6.3, 0.5, 7.7, 8.1),
                "200 steps (full: 40,000)"),
            Row("modes", "default GAN", None, None, 7.0, 6.5, 7.5, None, "")]
    fig, _ = new_figure()
    return Reproduction("made-up", "A made-up table", "Nobody (2000), Table 0", "s.e.",
                        "1 of 1 agree", rows, pd.DataFrame({"seed": [0, 1]}), fig, "cap",
                        {"full": False, "seed": 0, "steps": 200, "wall_seconds": 1.0})


def test_save_writes_the_schema(tmp_path):
    rep = _constructed()
    paths = reproductions.save(rep, tmp_path)
    assert {p.name for p in paths.values()} == {"made-up.json", "made-up.md", "made-up.png",
                                               "made-up.csv"}
    record = json.loads(paths["json"].read_text())
    assert set(record) == {"name", "title", "source", "error_kind", "summary", "settings",
                           "commit", "rows"}
    assert [list(r) for r in record["rows"]] == [ROW_FIELDS] * 2
    assert record["rows"][0]["agrees"] is False  # 6.3 ± 1.96·0.5 = [5.32, 7.28]: apart
    md = paths["md"].read_text()
    assert "| modes | GAN | 6.3 ± 0.5 | 7.9 | [7.7, 8.1] |" in md
    assert "comparison" in md and "200 steps (full: 40,000)" in md
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_registry_lists_both_and_rejects_unknown():
    assert {"bernoulli-toy", "mc-gradients-gaussian"} <= set(reproductions.available())
    with pytest.raises(KeyError, match=r"available: .*bernoulli-toy"):
        reproductions.create("no-such-table")


# -- the Bernoulli toy's closed forms -----------------------------------------------------
def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _mc_draws(label: str, t: float, phi: float, n: int, rng) -> np.ndarray:
    """Estimates simulated from each estimator's definition (NumPy, not gangrad's code)."""
    p = _sigmoid(phi)

    def f(b):
        return (b - t) ** 2

    if label == "REINFORCE":
        b = (rng.random(n) < p).astype(float)
        return f(b) * (b - p)
    if label == "leave-one-out (2 samples)":
        b1, b2 = ((rng.random(n) < p).astype(float) for _ in range(2))
        return 0.5 * (f(b1) - f(b2)) * (b1 - b2)
    u = rng.random(n)
    b, bt_ = (u < p).astype(float), (u > 1 - p).astype(float)
    if label == "ARM":
        return (f(bt_) - f(b)) * (u - 0.5)
    return 0.5 * (f(b) - f(bt_)) * (1 - 2 * bt_) * (b != bt_) * _sigmoid(abs(phi))


def _within_5se(draws: np.ndarray, value: float) -> None:
    s2 = draws.var()
    se = math.sqrt(max(np.mean((draws - draws.mean()) ** 4) - s2**2, 0.0) / len(draws))
    assert abs(s2 - value) <= 5 * se + 1e-15, (s2, value, se)


@pytest.mark.parametrize(("t", "phi"), bt.SETTINGS)
@pytest.mark.parametrize("label", list(bt.CLOSED_FORMS))
def test_bernoulli_closed_forms_match_simulation(label, t, phi):
    rng = np.random.default_rng(0)
    _within_5se(_mc_draws(label, t, phi, 400_000, rng), bt.CLOSED_FORMS[label](t, phi))


@pytest.mark.parametrize(("t", "phi"), bt.SETTINGS)
def test_bernoulli_closed_forms_match_published(t, phi):
    for label, closed in bt.CLOSED_FORMS.items():
        pub = bt.published_variance(label, t, phi)
        if pub is not None:
            printed = 5e-8 if pub == bt.REINFORCE_PUBLISHED else 1e-15  # 7 digits printed
            assert closed(t, phi) == pytest.approx(pub, rel=1e-12, abs=printed), label
    assert bt.published_variance("REBAR", t, phi) is None
    h = 1e-6
    expected = sum(p * (b - t) ** 2 for b, p in ((1, _sigmoid(phi + h)), (0, 1 - _sigmoid(
        phi + h)))) - sum(p * (b - t) ** 2 for b, p in ((1, _sigmoid(phi - h)),
                                                          (0, 1 - _sigmoid(phi - h))))
    assert bt.exact_gradient(t, phi) == pytest.approx(expected / (2 * h), rel=1e-6)
    if phi == 0:
        assert bt.exact_gradient(t, phi) == pytest.approx(bt.published_gradient(t, phi))


def test_reinforce_published_value_is_the_exact_one_rounded():
    assert round(bt.reinforce_variance(0.45, 0.0), 7) == bt.REINFORCE_PUBLISHED


def test_loo_reduces_to_reinforce_pairs():
    # with 2 draws, the LOO estimate is ½(f(b1) − f(b2))(b1 − b2): check its enumeration
    t, phi = 0.3, 0.7
    p = _sigmoid(phi)
    values = [(p if b1 else 1 - p) * (p if b2 else 1 - p) for b1 in (0, 1) for b2 in (0, 1)]
    g = [0.5 * ((b1 - t) ** 2 - (b2 - t) ** 2) * (b1 - b2) for b1 in (0, 1) for b2 in (0, 1)]
    mean = sum(w * v for w, v in zip(values, g, strict=True))
    var = sum(w * v * v for w, v in zip(values, g, strict=True)) - mean**2
    assert bt.loo_variance(t, phi) == pytest.approx(var)
    assert mean == pytest.approx(bt.exact_gradient(t, phi))


# -- the Gaussian closed forms ------------------------------------------------------------
@pytest.mark.parametrize("k", [1.0, 0.0, -3.0, 2.5])
def test_gaussian_quadrature_matches_polynomials(k):
    a = mg.MU - k
    assert mg.score_function_variance(k) == pytest.approx(15 + 14 * a**2 + a**4, rel=1e-7)
    assert mg.pathwise_variance(k) == pytest.approx(4.0, rel=1e-7)
    assert mg.measure_valued_variance(k) == pytest.approx((16 / math.pi - 4) * a**2,
                                                          rel=1e-7, abs=1e-10)
    if k in mg.KS:
        assert mg.published_variance("score function", k) == pytest.approx(
            mg.score_function_variance(k), rel=1e-7)


def test_gaussian_quadrature_other_sigma_matches_simulation():
    rng = np.random.default_rng(1)
    mu, sigma, k, n = 0.5, 2.0, -1.0, 400_000
    x = rng.normal(mu, sigma, n)
    _within_5se((x - k) ** 2 * (x - mu) / sigma**2, mg.score_function_variance(k, mu, sigma))
    w = rng.rayleigh(1.0, n)
    g = ((mu + sigma * w - k) ** 2 - (mu - sigma * w - k) ** 2) / (sigma * math.sqrt(2 * math.pi))
    _within_5se(g, mg.measure_valued_variance(k, mu, sigma))


# -- runs ---------------------------------------------------------------------------------
def _family_agrees(rows: list[Row]) -> None:
    published = [r for r in rows if r.published is not None]
    widen = scipy.stats.norm.ppf(1 - 0.025 / len(published)) / scipy.stats.norm.ppf(0.975)
    for r in published:
        half_lo, half_hi = (r.measured - r.lo) * widen, (r.hi - r.measured) * widen
        assert r.measured - half_lo <= r.published <= r.measured + half_hi, r


def test_bernoulli_toy_small_run():
    rep = bt.BernoulliToy()
    settings = {"samples": 20_000, "learn_steps": 20, "learn_batch": 16, "checkpoints": 2,
                "checkpoint_samples": 2_000}
    rows, data = rep.measure(settings, seed=0, progress=lambda m: None)
    assert len(rows) == 4 * 6 + 2 * 6
    assert {"kind", "step", "variance_lo", "closed_form_variance"} <= set(data.columns)
    _family_agrees(rows)
    assert "published numbers agree" in rep.summary(rows, settings)


def test_cli_lists_and_rejects_unknown(capsys):
    assert main(["reproduce", "--list"]) == 0
    assert "bernoulli-toy" in capsys.readouterr().out
    assert main(["reproduce", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown reproduction(s) nope" in err and "mc-gradients-gaussian" in err


class _Fails(reproductions.AbstractReproduction):
    name, title, source, error_kind = "test-fails", "fails", "none", "none"
    quick = full = {}

    def measure(self, settings, seed, progress):
        raise RuntimeError("deliberate failure")

    def summary(self, rows, settings):
        return ""

    def figure(self, rows, data, settings):
        return None, ""


class _Works(_Fails):
    name = "test-works"

    def measure(self, settings, seed, progress):
        progress("measuring")
        return [Row("q", "s", 1.0, None, 1.0, 0.9, 1.1, True)], pd.DataFrame({"a": [1]})

    def summary(self, rows, settings):
        return "fine"

    def figure(self, rows, data, settings):
        return _constructed().figure, "cap"


def test_cli_all_keeps_going_after_a_failure(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reproductions, "available", lambda: ["test-fails", "test-works"])
    monkeypatch.setitem(reproductions.REGISTRY._registered, "test-fails", _Fails)
    monkeypatch.setitem(reproductions.REGISTRY._registered, "test-works", _Works)
    assert main(["reproduce", "--all", "--out", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "test-fails failed: deliberate failure" in err and "measuring" in err
    assert "test-works: fine" in out
    record = json.loads((tmp_path / "test-works.json").read_text())
    assert record["rows"] == [dataclasses.asdict(Row("q", "s", 1.0, None, 1.0, 0.9, 1.1,
                                                     True))]
    assert not (tmp_path / "test-fails.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bernoulli-toy", "mc-gradients-gaussian"])
def test_quick_reproduction_runs_and_agrees(name, tmp_path):
    rep = reproductions.reproduce(name)
    assert rep.settings["wall_seconds"] < 300
    _family_agrees(rep.rows)
    reproductions.save(rep, tmp_path)
    assert (tmp_path / f"{name}.json").exists()


def test_saved_reproductions_are_included_in_the_report(tiny_run):
    from gangrad.report import build_report

    tmp, store = tiny_run
    out = tmp / "with-reproductions"
    reproductions.save(_constructed(), out / "reproductions")
    report = build_report("tiny", store, out)
    md, html = report.markdown.read_text(), report.html.read_text()
    assert "## Reproductions" in md and "../reproductions/made-up.png" in md
    assert "| modes | GAN | 6.3 ± 0.5 | 7.9 | [7.7, 8.1] | no |" in md
    assert "<h2>Reproductions</h2>" in html and "A made-up table" in html
