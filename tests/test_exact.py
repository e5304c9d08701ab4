"""The enumeration and quadrature references of :mod:`gangrad.exact`."""

from __future__ import annotations

import pytest
import torch

from gangrad import exact
from gangrad.spaces import Discrete


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
