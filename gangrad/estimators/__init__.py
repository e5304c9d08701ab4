"""Gradient estimators for a generator's head.

Contract (public; see :mod:`gangrad.estimators._base` for the full statement)::

    from gangrad import estimators
    est = estimators.create("smoothing", sigma=0.1)
    estimators.available()                  # sorted registry keys
    est.supports(space); est.param_shape(space)
    s = est.surrogate(params, f)            # (B,)
    s.mean().backward()                     # params.grad estimates ∇ mean_b E[f(x_b)]
    x = est.sample(params)                  # (B, *space.shape), no gradient
    est.surrogate(params, f, **logit_kwargs(est, D))  # D's logit for est.needs_logit

Outside packages add estimators through the entry-point group ``gangrad.estimators``
(``[project.entry-points."gangrad.estimators"] my_key = "my_pkg.module:MyEstimator"``) or,
in a session, with :func:`register`.
"""

from __future__ import annotations

from typing import Any

from gangrad._registry import Registry
from gangrad.estimators._base import (
    AbstractEstimator,
    Cost,
    Rollout,
    logit_kwargs,
    rollout_kwargs,
)
from gangrad.estimators.arm import ARM
from gangrad.estimators.arms import ARMS
from gangrad.estimators.arsm import ARSM
from gangrad.estimators.bgan import BGAN
from gangrad.estimators.decoupled_st import DecoupledST
from gangrad.estimators.disarm import DisARM
from gangrad.estimators.double_cv import DoubleCV
from gangrad.estimators.gst import GST
from gangrad.estimators.gumbel_softmax import GumbelSoftmax
from gangrad.estimators.indecater import IndeCateR
from gangrad.estimators.maligan import MaliGAN
from gangrad.estimators.measure_valued import MeasureValued
from gangrad.estimators.pathwise import Pathwise
from gangrad.estimators.rao_blackwell_st import RaoBlackwellST
from gangrad.estimators.rebar import REBAR
from gangrad.estimators.reinmax import ReinMax
from gangrad.estimators.relax import RELAX
from gangrad.estimators.reparam import Reparam
from gangrad.estimators.rodeo import RODEO
from gangrad.estimators.score_function import ScoreFunction
from gangrad.estimators.seqgan_rollout import SeqGANRollout
from gangrad.estimators.smoothing import Smoothing
from gangrad.estimators.st_gumbel import STGumbel
from gangrad.estimators.straight_through import StraightThrough
from gangrad.estimators.zgr import ZGR
from gangrad.spaces import Space

_BUILTINS: dict[str, type[AbstractEstimator]] = {
    "pathwise": Pathwise,
    "smoothing": Smoothing,
    "reparam": Reparam,
    "score_function": ScoreFunction,
    "straight_through": StraightThrough,
    "gumbel_softmax": GumbelSoftmax,
    "st_gumbel": STGumbel,
    "rao_blackwell_st": RaoBlackwellST,
    "reinmax": ReinMax,
    "rebar": REBAR,
    "relax": RELAX,
    "arm": ARM,
    "disarm": DisARM,
    "gst": GST,
    "zgr": ZGR,
    "decoupled_st": DecoupledST,
    "arms": ARMS,
    "measure_valued": MeasureValued,
    "indecater": IndeCateR,
    "double_cv": DoubleCV,
    "rodeo": RODEO,
    "arsm": ARSM,
    "maligan": MaliGAN,
    "bgan": BGAN,
    "seqgan_rollout": SeqGANRollout,
}

REGISTRY: Registry[AbstractEstimator] = Registry("estimator", _BUILTINS, "gangrad.estimators")


def available() -> list[str]:
    """Sorted registry keys of every estimator (built-in and plug-in)."""
    return REGISTRY.available()


def create(name: str, **hyper: Any) -> AbstractEstimator:
    """The estimator registered under ``name``, built with hyper-parameters ``hyper``.

    Raises ``KeyError`` listing the available keys for an unknown ``name`` and
    ``ValueError`` naming the parameter and its allowed range for a bad hyper-parameter.
    """
    return REGISTRY.create(name, **hyper)


register = REGISTRY.register


def supporting(space: Space) -> list[str]:
    """Sorted keys of the estimators (with default hyper-parameters) that support ``space``."""
    keys = []
    for key, cls in sorted(REGISTRY.classes().items()):
        try:
            if cls().supports(space):
                keys.append(key)
        except Exception:  # a plug-in without defaults: judge by its declared space types
            if isinstance(space, cls.space_types):
                keys.append(key)
    return keys

__all__ = [
    "ARM",
    "ARMS",
    "ARSM",
    "BGAN",
    "GST",
    "REBAR",
    "REGISTRY",
    "RELAX",
    "RODEO",
    "ZGR",
    "AbstractEstimator",
    "Cost",
    "DecoupledST",
    "DisARM",
    "DoubleCV",
    "GumbelSoftmax",
    "IndeCateR",
    "MaliGAN",
    "MeasureValued",
    "Pathwise",
    "RaoBlackwellST",
    "ReinMax",
    "Reparam",
    "Rollout",
    "STGumbel",
    "ScoreFunction",
    "SeqGANRollout",
    "Smoothing",
    "StraightThrough",
    "available",
    "create",
    "logit_kwargs",
    "register",
    "rollout_kwargs",
    "supporting",
]
