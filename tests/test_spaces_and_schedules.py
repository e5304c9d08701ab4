"""Spaces and σ / temperature schedules: values and refusals."""

from __future__ import annotations

import math

import pytest

from gangrad.schedules import Schedule
from gangrad.spaces import Continuous, Discrete


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
