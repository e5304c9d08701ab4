"""The enumeration and quadrature helpers, the spaces and the schedules."""

from __future__ import annotations

import math

import pytest
import torch

from gangrad import exact
from gangrad.schedules import Schedule
from gangrad.spaces import Continuous, Discrete


def test_outcomes_enumerates_every_sequence_once():
    xs = exact.outcomes(Discrete(3, 2))
    assert xs.shape == (8, 3, 2)
    assert len({tuple(x.argmax(-1).tolist()) for x in xs}) == 8
    with pytest.raises(ValueError, match="max_outcomes"):
        exact.outcomes(Discrete(20, 4))


def test_discrete_expectation_matches_product_formula():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 3)
    table = torch.randn(3, 3)  # cost of symbol pair (a, b)

    def f(x):
        return torch.einsum("na,ab,nb->n", x[:, 0], table, x[:, 1])

    p = logits.softmax(-1)
    brute = torch.einsum("ra,ab,rb->r", p[:, 0], table, p[:, 1])  # independence of positions
    torch.testing.assert_close(exact.discrete_expectation(logits, f), brute)


def test_discrete_gradient_matches_finite_differences():
    torch.manual_seed(1)
    logits = torch.randn(1, 2, 3, dtype=torch.float64)

    def f(x):
        return (x * torch.arange(6.0, dtype=x.dtype).reshape(2, 3)).sum((1, 2)) ** 2

    g = exact.discrete_gradient(logits, f)
    eps = 1e-6
    for idx in [(0, 0, 0), (0, 1, 2), (0, 0, 1)]:
        up, down = logits.clone(), logits.clone()
        up[idx] += eps
        down[idx] -= eps
        fd = (exact.discrete_expectation(up, f) - exact.discrete_expectation(down, f)) / (2 * eps)
        assert float(g[idx]) == pytest.approx(float(fd), rel=1e-6)


def test_gauss_hermite_moments():
    nodes, weights = exact.gauss_hermite(20)
    for k, moment in [(0, 1), (2, 1), (4, 3), (6, 15), (8, 105), (3, 0)]:
        assert float((weights * nodes**k).sum()) == pytest.approx(moment, abs=1e-9)


def test_spaces_validate():
    assert Continuous(3).shape == (3,)
    assert Discrete(2, 5).shape == (2, 5) and Discrete(2, 5).outcomes == 25
    with pytest.raises(ValueError, match="dim must be an integer >= 1"):
        Continuous(0)
    with pytest.raises(ValueError, match="classes must be an integer >= 2"):
        Discrete(3, 1)
    with pytest.raises(TypeError, match="length must be an integer"):
        Discrete(2.5, 3)


@pytest.mark.parametrize(
    ("kind", "mid"), [("constant", 1.0), ("linear", 0.505), ("geometric", 0.1),
                      ("cosine", 0.505)]
)
def test_schedule(kind, mid):
    s = Schedule(1.0, 0.01, steps=100, kind=kind)
    assert s(0) == pytest.approx(1.0)
    assert s(50) == pytest.approx(mid)
    assert s(500) == pytest.approx(1.0 if kind == "constant" else 0.01)
    assert math.isfinite(s(10**9))


def test_schedule_rejects_bad_input():
    with pytest.raises(ValueError, match="kind"):
        Schedule(1.0, 0.1, 10, kind="exp")
    with pytest.raises(ValueError, match="end must be in"):
        Schedule(1.0, 0.0, 10, kind="geometric")
    with pytest.raises(ValueError, match="steps"):
        Schedule(1.0, 0.1, 0)


def test_demo_tables_agree_with_closed_forms():
    """The demo's measured variances bracket the closed forms (intervals widened to ±3 SE,
    seeded) and unbiased estimators' bias intervals reach 0."""
    from gangrad import demo

    cont = demo.continuous_table(replicates=20_000, seed=1)
    known = cont.dropna(subset=["variance_closed_form"])
    width = known["variance_hi"] - known["variance_lo"]
    assert ((known["variance_lo"] - width / 2 <= known["variance_closed_form"])
            & (known["variance_closed_form"] <= known["variance_hi"] + width / 2)).all()
    assert (cont["bias_lo"] == 0).all()
    disc = demo.discrete_table(replicates=20_000, seed=1).set_index("estimator")
    assert disc.loc["score_function", "bias_lo"] == 0
    assert disc.loc["pathwise", "bias_lo"] > 1 and disc.loc["straight_through", "bias_lo"] > 1
