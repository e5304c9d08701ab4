"""Outside estimators plug in through the ``gangrad.estimators`` entry-point group."""

from __future__ import annotations

import textwrap

import pytest
import torch

from gangrad import estimators
from gangrad.spaces import Continuous

PLUGIN = '''
import torch
from gangrad.estimators import AbstractEstimator
from gangrad.spaces import Continuous


class Antithetic(AbstractEstimator):
    """Gaussian smoothing with antithetic pairs: f(μ + σε) and f(μ − σε)."""

    key = "antithetic"
    space_types = (Continuous,)
    differentiable_f = True
    f_evaluations = 2

    def __init__(self, sigma: float = 0.1):
        if sigma <= 0:
            raise ValueError(f"antithetic: sigma must be in (0, inf), got {sigma}")
        self.sigma = sigma

    def _noise(self, params, space, generator):
        return torch.randn(params.shape, generator=generator)

    def _sample(self, params, noise, space):
        return params + self.sigma * noise

    def _surrogate(self, params, f, noise, space):
        return 0.5 * (f(params + self.sigma * noise) + f(params - self.sigma * noise))
'''


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    (tmp_path / "gangrad_antithetic.py").write_text(PLUGIN)
    dist = tmp_path / "gangrad_antithetic-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: gangrad-antithetic\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [gangrad.estimators]
        antithetic = gangrad_antithetic:Antithetic
        broken = gangrad_antithetic:DoesNotExist
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    estimators.REGISTRY.refresh()
    yield
    monkeypatch.undo()
    estimators.REGISTRY.refresh()


def test_entry_point_estimator_is_registered(installed_plugin):
    with pytest.warns(UserWarning, match="could not load estimator plug-in 'broken'"):
        keys = estimators.available()
    assert "antithetic" in keys and "broken" not in keys
    est = estimators.create("antithetic", sigma=0.5)
    params = torch.zeros(4, 2, requires_grad=True)
    est.surrogate(params, lambda x: (x**2).sum(-1)).mean().backward()
    # antithetic pairs cancel the odd term exactly: ∇ = 2μ = 0
    torch.testing.assert_close(params.grad, torch.zeros(4, 2))
    assert est.param_shape(Continuous(2)) == (2,)
    with pytest.raises(ValueError, match="sigma"):
        estimators.create("antithetic", sigma=-1.0)


def test_register_in_session():
    class Twice(estimators.Pathwise):
        key = "twice"

    estimators.register("twice", Twice)
    try:
        assert "twice" in estimators.available()
        with pytest.raises(ValueError, match="built-in"):
            estimators.register("pathwise", Twice)
    finally:
        estimators.REGISTRY._registered.pop("twice")
