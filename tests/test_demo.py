"""The closed-form demo table (``gangrad demo``)."""

from __future__ import annotations

from gangrad import demo


def test_demo_tables_agree_with_closed_forms():
    """The demo's measured variances bracket the closed forms (intervals widened to ±3 SE,
    seeded) and unbiased estimators' bias intervals reach 0."""
    cont = demo.continuous_table(replicates=20_000, seed=1)
    known = cont.dropna(subset=["variance_closed_form"])
    width = known["variance_hi"] - known["variance_lo"]
    assert ((known["variance_lo"] - width / 2 <= known["variance_closed_form"])
            & (known["variance_closed_form"] <= known["variance_hi"] + width / 2)).all()
    assert (cont["bias_lo"] == 0).all()
    disc = demo.discrete_table(replicates=20_000, seed=1).set_index("estimator")
    assert disc.loc["score_function", "bias_lo"] == 0
    assert disc.loc["pathwise", "bias_lo"] > 1 and disc.loc["straight_through", "bias_lo"] > 1
