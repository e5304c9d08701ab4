"""Reproductions: the verdict rule, the saved schema, the closed forms behind the
reference numbers, the CLI, and the reproductions' own runs.

Seeding: every randomized test draws from a NumPy/torch generator with a fixed seed; a
Monte Carlo variance of ``n`` draws is compared with a closed form within 5 standard
errors, the standard error estimated from the draws' fourth moment,
``sqrt((m4 − s⁴)/n)``. The verdict rule's error rates are checked on ``N`` simulated
tables: a rate ``p`` is bounded by its binomial standard error, ``p ≤ α + 4·sqrt(α(1−α)/N)``.
Rows of a whole reproduction are checked family-wise: no verdict row may *differ*, since
the references are exact and gangrad's estimators unbiased (a differing row at the
Holm-adjusted 5% level is a bug, not chance, with probability above 95%).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from gangrad import reproductions
from gangrad.cli import main
from gangrad.reproductions import Margin, Reproduction, Row, settle, verdict_counts
from gangrad.reproductions import bernoulli_toy as bt
from gangrad.reproductions import mc_gradients_gaussian as mg
from gangrad.reproductions._base import SAVED_FIELDS, p_values

ROW_FIELDS = ["quantity", "setting", "published", "published_error", "measured", "lo", "hi",
              "agrees", "verdict", "margin", "note", "kind"]
MARGINS = {"q": Margin(1.0)}


def _row(measured, se, published=0.0, error=None, dof=math.inf, quantity="q", **kw) -> Row:
    return Row(quantity, "s", published, error, measured, measured - 2 * se,
               measured + 2 * se, se=se, dof=dof, **kw)


# -- the verdict rule ---------------------------------------------------------------------
@pytest.mark.parametrize(("measured", "se", "error", "expected"), [
    (0.2, 0.1, None, "agrees"),        # [0.2 ± 1.645·0.1] inside (−1, 1)
    (0.9, 0.1, None, "inconclusive"),  # too close to the margin to tell
    (1.5, 0.1, None, "differs"),       # 95% interval [1.30, 1.70] beyond 1
    (-1.5, 0.1, None, "differs"),
    (0.2, 0.1, 0.8, "inconclusive"),   # the published value's own error widens it
    (1.5, 0.1, 0.4, "inconclusive"),
    (3.0, 0.1, 0.4, "differs"),
    (0.5, 0.0, None, "agrees"),        # exact on both sides: |0.5| <= 1
    (1.0, 0.0, None, "agrees"),        # on the margin itself
    (1.01, 0.0, None, "differs"),
])
def test_verdict_of_one_row(measured, se, error, expected):
    [row] = settle([_row(measured, se, error=error)], MARGINS)
    assert row.verdict == expected and row.agrees is (expected == "agrees")
    assert row.margin == 1.0


def test_verdict_uses_the_degrees_of_freedom():
    # 0.5 ± 0.15: normal z = (1 − 0.5)/0.15 = 3.3 agrees; with 2 dof, t₂ = 3.3 has
    # one-sided p = 0.04 < 0.05 still; with 1 dof p = 0.09: inconclusive
    assert settle([_row(0.5, 0.15)], MARGINS)[0].verdict == "agrees"
    assert settle([_row(0.5, 0.15, dof=1)], MARGINS)[0].verdict == "inconclusive"
    # the published error's degrees of freedom count too (Welch–Satterthwaite)
    row = _row(0.5, 0.0, error=0.15)
    assert p_values(row, 1.0, published_dof=1)[0] > p_values(row, 1.0)[0]


def test_holm_across_the_rows_of_a_table():
    # alone, p = P(Z > (1 − 0.6)/0.2) = 0.023 agrees; with a second row of the same table
    # Holm doubles the smaller p: 0.046 < 0.05 still; with three rows, 0.068: inconclusive
    one = _row(0.6, 0.2)
    assert settle([one], MARGINS)[0].verdict == "agrees"
    assert [r.verdict for r in settle([one, one], MARGINS)] == ["agrees"] * 2
    assert [r.verdict for r in settle([one] * 3, MARGINS)] == ["inconclusive"] * 3
    # exact rows and scaled rows do not dilute a table
    mixed = settle([one, _row(0.0, 0.0), _row(5.0, 1.0, verdict="scaled")], MARGINS)
    assert [r.verdict for r in mixed] == ["agrees", "agrees", "scaled"]


def test_scaled_and_comparison_rows():
    scaled, comparison = settle([_row(0.0, 0.01, verdict="scaled"),
                                 Row("q", "s", None, None, 1.0, 0.9, 1.1)], MARGINS)
    assert scaled.verdict == "scaled" and scaled.agrees is False and scaled.margin == 1.0
    assert comparison.verdict is None and comparison.agrees is None
    assert comparison.kind == "comparison" and comparison.margin is None


def test_margins_absolute_relative_floor_and_lookup():
    rel = {"variance": Margin(0.02, relative=True)}
    [row] = settle([_row(101.0, 0.1, published=100.0, quantity="variance (k=1)")], rel)
    assert row.margin == pytest.approx(2.0) and row.verdict == "agrees"
    assert Margin(0.02, relative=True, floor=1e-12).of(0.0) == 1e-12
    assert str(Margin(0.02, relative=True)) == "±2%" and str(Margin(0.1)) == "±0.1"
    with pytest.raises(ValueError, match="no margin declared for quantity 'other'"):
        settle([_row(0.0, 0.1, quantity="other")], MARGINS)


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, True])
def test_margin_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="value"):
        Margin(bad)


def test_rows_reject_bad_input():
    with pytest.raises(ValueError, match="se must be"):
        settle([Row("q", "s", 0.0, None, 0.0, -1, 1)], MARGINS)
    assert settle([_row(0.0, math.inf)], MARGINS)[0].verdict == "inconclusive"
    with pytest.raises(ValueError, match="published_error"):
        settle([_row(0.0, 0.1, error=-1.0)], MARGINS)
    with pytest.raises(ValueError, match="kind"):
        _row(0.0, 0.1, kind="printed")
    with pytest.raises(ValueError, match="verdict"):
        _row(0.0, 0.1, verdict="yes")


def test_verdict_error_rates_by_simulation():
    """On the margin (|Δ| = δ) a row agrees at most 5% of the time and differs at most
    2.5%; at Δ = 0 it agrees more often than not and differs at most 2.5%."""
    rng, n, alpha = np.random.default_rng(0), 4000, 0.05
    bound = alpha + 4 * math.sqrt(alpha * (1 - alpha) / n)
    se, e, seeds = 0.3, 0.2, 10  # a mean over 10 seeds against a published s.e. over 10

    def verdicts(true_diff: float) -> list[str]:
        out = []
        for _ in range(n):
            x = rng.normal(true_diff, se * math.sqrt(seeds), seeds)
            p = rng.normal(0.0, e * math.sqrt(seeds), seeds)
            row = Row("q", "s", p.mean(), p.std(ddof=1) / math.sqrt(seeds), x.mean(), 0, 0,
                      se=x.std(ddof=1) / math.sqrt(seeds), dof=seeds - 1)
            out.append(settle([row], MARGINS, published_dof=seeds - 1)[0].verdict)
        return out

    on_margin = verdicts(1.0)
    assert on_margin.count("agrees") / n <= bound
    assert on_margin.count("differs") / n <= bound / 2
    inside = verdicts(0.0)
    assert inside.count("agrees") / n > 0.5 and inside.count("differs") / n <= bound / 2


def test_verdict_counts():
    rows = settle([_row(0.2, 0.1), _row(1.5, 0.1), _row(0.9, 0.1), _row(0, 1, verdict="scaled"),
                   Row("q", "s", None, None, 1.0, 0.9, 1.1)], MARGINS)
    assert verdict_counts(rows) == "1 agrees, 1 differs, 1 inconclusive, 1 scaled"


# -- saving -------------------------------------------------------------------------------
def _constructed() -> Reproduction:
    from gangrad.plotting import new_figure

    rows = settle([Row("modes", "GAN", 6.3, 0.5, 7.9, 7.7, 8.1, se=0.1, dof=9,
                       note="200 steps (full: 40,000)", verdict="scaled"),
                   Row("modes", "PacGAN2", 7.9, 0.1, 7.8, 7.6, 8.0, se=0.1, dof=9),
                   Row("modes", "default GAN", None, None, 7.0, 6.5, 7.5)],
                  {"modes": Margin(1.0)}, published_dof=9)
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
                           "commit", "counts", "rows", "provenance"}
    assert list(SAVED_FIELDS) == ROW_FIELDS
    assert [list(r) for r in record["rows"]] == [ROW_FIELDS] * 3
    assert [r["verdict"] for r in record["rows"]] == ["scaled", "agrees", None]
    assert [r["agrees"] for r in record["rows"]] == [False, True, None]
    assert record["counts"] == "1 agrees, 1 scaled"
    md = paths["md"].read_text()
    assert ("| modes | GAN | 6.3 ± 0.5 | published | 7.9 | [7.7, 8.1] | ±1 | scaled (trend) |"
            in md)
    assert "| modes | PacGAN2 | 7.9 ± 0.1 | published | 7.8 | [7.6, 8] | ±1 | agrees |" in md
    assert "| comparison | 7 | [6.5, 7.5] | — | comparison |" in md
    assert "200 steps (full: 40,000)" in md and "*Verdicts:* 1 agrees, 1 scaled" in md
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_registry_lists_both_and_rejects_unknown():
    assert {"bernoulli-toy", "mc-gradients-gaussian"} <= set(reproductions.available())
    with pytest.raises(KeyError, match=r"available: .*bernoulli-toy"):
        reproductions.create("no-such-table")


def test_budgets_are_checked_before_work():
    rep = reproductions.create("mc-gradients-gaussian")
    with pytest.raises(ValueError, match=r"unknown budget 'huge'.*quick, full"):
        rep.reproduce(budget="huge")
    with pytest.raises(ValueError, match="not both"):
        rep.reproduce(full=True, budget="quick")


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
def test_bernoulli_references_are_the_closed_forms(t, phi):
    for label, closed in bt.CLOSED_FORMS.items():  # the simple forms equal the general ones
        assert closed(t, phi) == pytest.approx(bt.reference_variance(label, t, phi),
                                               rel=1e-12, abs=1e-15), label
    assert bt.reference_variance("REBAR", t, phi) is None
    h = 1e-6
    expected = sum(p * (b - t) ** 2 for b, p in ((1, _sigmoid(phi + h)), (0, 1 - _sigmoid(
        phi + h)))) - sum(p * (b - t) ** 2 for b, p in ((1, _sigmoid(phi - h)),
                                                          (0, 1 - _sigmoid(phi - h))))
    assert bt.exact_gradient(t, phi) == pytest.approx(expected / (2 * h), rel=1e-6)
    if phi == 0:
        assert bt.exact_gradient(t, phi) == pytest.approx(bt.reference_gradient(t, phi))


def test_reinforce_quoted_value_is_the_exact_one_rounded():
    assert round(bt.reinforce_variance(0.45, 0.0), 7) == bt.REINFORCE_QUOTED


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
def _none_differ(rows: list[Row]) -> None:
    assert not [r for r in rows if r.verdict == "differs"]


def test_bernoulli_toy_small_run():
    rep = bt.BernoulliToy()
    settings = {"samples": 20_000, "learn_steps": 20, "learn_batch": 16, "checkpoints": 2,
                "checkpoint_samples": 2_000}
    rows, data = rep.measure(settings, seed=0, progress=lambda m: None)
    assert len(rows) == 4 * 6 + 2 * 6
    assert {"kind", "step", "variance_lo", "variance_se", "closed_form_variance"} <= set(
        data.columns)
    rows = settle(rows, rep.margins)
    _none_differ(rows)
    assert {r.kind for r in rows} == {"derived", "comparison"}
    assert sum(r.kind == "comparison" for r in rows) == 8  # REBAR, RELAX variances
    assert "closed forms derived here" in rep.summary(rows, settings)


def test_mc_gradients_small_run_settles_the_pathwise_rows():
    """Pathwise's variance is 4·s² of its normal draws: a 2% margin is 15 standard errors
    at 10⁵ draws, so every seed settles it as agreeing."""
    rep = mg.MCGradientsGaussian()
    for seed in (0, 1):
        rows = settle(rep.measure({"samples": 100_000}, seed, lambda m: None)[0], rep.margins)
        _none_differ(rows)
        assert all(r.verdict == "agrees" for r in rows if r.setting.startswith("pathwise"))
        assert {r.kind for r in rows} == {"published", "derived"}


def test_cli_lists_and_rejects_unknown(capsys):
    assert main(["reproduce", "--list"]) == 0
    assert "bernoulli-toy" in capsys.readouterr().out
    assert main(["reproduce", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown reproduction(s) nope" in err and "mc-gradients-gaussian" in err


class _Fails(reproductions.AbstractReproduction):
    name, title, source, error_kind = "test-fails", "fails", "none", "none"
    margins = {"q": Margin(0.5)}
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
        return [Row("q", "s", 1.0, None, 1.0, 0.9, 1.1, se=0.01)], pd.DataFrame({"a": [1]})

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
    [saved] = settle([Row("q", "s", 1.0, None, 1.0, 0.9, 1.1, se=0.01)], _Works.margins)
    assert record["rows"] == [{k: v for k, v in dataclasses.asdict(saved).items()
                               if k in SAVED_FIELDS}]
    assert record["rows"][0]["verdict"] == "agrees"
    assert not (tmp_path / "test-fails.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bernoulli-toy", "mc-gradients-gaussian"])
def test_quick_reproduction_runs_and_none_differ(name, tmp_path):
    rep = reproductions.reproduce(name)
    assert rep.settings["wall_seconds"] < 300
    _none_differ(rep.rows)
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
    assert "| modes | GAN | 6.3 ± 0.5 | 7.9 | [7.7, 8.1] | ±1 | scaled (trend) |" in md
    assert "<h2>Reproductions</h2>" in html and "A made-up table" in html
