"""The closed-form demo table (``gangrad demo``)."""

from __future__ import annotations

from gangrad import demo


def test_demo_tables_agree_with_closed_forms():
    """The demo's measured variances bracket the closed forms (intervals widened to ±3 SE,
    seeded); unbiased estimators' mean gradients are within 5 standard errors of the exact
    one (the seed policy of ``tests/_stats.py``), biased ones' bias intervals exclude 0."""
    n = 20_000
    cont = demo.continuous_table(replicates=20_000, seed=1)
    known = cont.dropna(subset=["variance_closed_form"])
    width = known["variance_hi"] - known["variance_lo"]
    assert ((known["variance_lo"] - width / 2 <= known["variance_closed_form"])
            & (known["variance_closed_form"] <= known["variance_hi"] + width / 2)).all()
    replicates = n // cont["estimator"].str.extract(r"samples=(\d+)")[0].fillna("1").astype(int)
    se = (cont["variance"] / replicates) ** 0.5
    assert ((cont["mean"] - cont["exact_gradient"]).abs() <= 5 * se + 1e-12).all()
    disc = demo.discrete_table(replicates=n, seed=1).set_index("estimator")
    sf = disc.loc["score_function"]
    assert sf["bias"] <= 5 * (sf["variance"] / n) ** 0.5
    assert disc.loc["pathwise", "bias_lo"] > 1 and disc.loc["straight_through", "bias_lo"] > 1
