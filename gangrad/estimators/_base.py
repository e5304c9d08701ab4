"""The estimator contract, stated once.

An estimator turns a generator head's ``params`` and a per-sample cost ``f`` into a
*surrogate* whose gradient is an estimate of ``∇_params E_x[f(x)]``::

    est = estimators.create("smoothing", sigma=0.1)
    est.supports(space) -> bool
    est.param_shape(space) -> tuple[int, ...]   # per-sample head shape
    s = est.surrogate(params, f)                # params (B, *param_shape) -> (B,)
    s.mean().backward()                         # params.grad estimates ∇ mean_b E[f(x_b)]
    x = est.sample(params)                      # (B, *space.shape), no gradient

The surrogate's *value* is the per-sample cost estimate (the "magic box" form of
Foerster et al., 2018, "DiCE"), so one tensor serves logging and gradients.

Randomness. Every estimator draws its noise in one place, :meth:`noise`. ``surrogate`` and
``sample`` accept that noise explicitly (``noise=``), so callers can hold it fixed (common
random numbers), vectorize over it (``torch.func.vmap``) or replay it; by default it is
drawn from torch's global generator or from ``generator=``.

State learned during use (an EMA baseline, a control variate) belongs to the estimator.
Estimators whose state is trained by an optimiser set ``learns = True`` and override
:meth:`learn`, which a training loop calls once per generator step (after it); it does
nothing on a :meth:`frozen` copy.

Subclasses set ``key``, ``space_types``, ``differentiable_f`` (does the gradient flow
through ``f``?) and ``f_evaluations`` (calls of ``f`` per row; where the count depends on
the space, e.g. one call per position and class, :meth:`evaluations` gives it for a space
and ``f_evaluations`` is its value on a one-position binary space), and implement ``_noise``,
``_sample`` and ``_surrogate``; ``_param_shape`` defaults to the space's own shape.
``space_requirement`` describes the supported spaces in error messages where
``space_types`` alone does not (e.g. ``"binary Discrete(n, 2) spaces"``).

Row independence. ``rows_independent`` is True when row ``b`` of the surrogate depends on
row ``b`` of ``params`` and of the noise only, and calling it changes no state: then the
rows of several independent problems can be concatenated into one call, which is how
:func:`gangrad.train.train_seeds` trains many seeds as one batched model. It is False by
default (a plug-in that, say, uses a batch-mean baseline stays correct), and the
built-in estimators that qualify set it.

The discriminator's logit. A few GAN estimators (MaliGAN, BGAN) weight their samples by
what D says of them, ``exp T(x)`` with ``T`` D's logit, not by ``f`` alone. They set
``needs_logit = True`` and their ``surrogate`` takes ``logit=``, a callable ``x -> Tensor[B]``
(D's logit at one-hot ``x``, evaluated without gradient); called without it they raise a
``ValueError`` naming the argument before any work. Callers (the GAN step, the
gradient-statistics engine) pass it only to such estimators, through
:func:`logit_kwargs`, so an estimator that predates it, or a plug-in that overrides
``surrogate`` itself, is never handed an argument it does not know. An estimator that
does not need it ignores a ``logit`` it is given. ``learn`` and ``noise`` take no logit:
no estimator that learns state needs one. A subclass with ``needs_logit`` receives it as
the keyword ``logit`` of ``_surrogate``, already checked like ``f`` (shape ``(N,)``).

Roll-outs. An estimator that scores every prefix of a sequence by completing it (SeqGAN's
Monte Carlo roll-outs) sets ``takes_rollout = True``; its ``surrogate`` takes ``rollout=``,
a callable ``rollout(symbols, uniforms) -> completions`` (:data:`Rollout`): for symbols
``(M, L)`` and uniforms ``(M, L-1, L)``, the ``L-1`` completions ``(M, L-1, L)`` whose
``t``-th keeps the first ``t`` symbols and draws the others from the roll-out policy given
that prefix, position ``s`` by inverse CDF from ``uniforms[:, t-1, s]``. A generator whose
positions are independent given ``z`` needs none (the estimator then completes prefixes
from ``params`` itself); an autoregressive generator's training step passes one
(:mod:`gangrad.train.autoregressive`). Callers pass it through :func:`rollout_kwargs`, as
``logit``; an estimator without ``takes_rollout`` never receives it and ignores one it is
given. A subclass with ``takes_rollout`` receives it (or ``None``) as the keyword
``rollout`` of ``_surrogate``.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import inspect
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch

from gangrad._registry import hyperparameters
from gangrad.spaces import Continuous, Discrete, Space

__all__ = ["AbstractEstimator", "Cost", "Rollout", "logit_kwargs", "rollout_kwargs"]

Cost = Callable[[torch.Tensor], torch.Tensor]
#: ``rollout(symbols (M, L), uniforms (M, L-1, L)) -> completions (M, L-1, L)`` (module doc)
Rollout = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class AbstractEstimator(abc.ABC):
    """Base of every estimator; constructor arguments are the hyper-parameters."""

    key: ClassVar[str]
    space_types: ClassVar[tuple[type, ...]]
    differentiable_f: ClassVar[bool]
    f_evaluations: ClassVar[int] = 1
    learns: ClassVar[bool] = False
    needs_logit: ClassVar[bool] = False
    takes_rollout: ClassVar[bool] = False
    rows_independent: bool = False
    space_requirement: ClassVar[str | None] = None
    _frozen: bool = False

    # -- contract ---------------------------------------------------------------------------
    def supports(self, space: Space) -> bool:
        return isinstance(space, self.space_types)

    def param_shape(self, space: Space) -> tuple[int, ...]:
        self._check_supported(space)
        return self._param_shape(space)

    def evaluations(self, space: Space) -> float:
        """Calls of ``f`` per row of params in ``space`` (the mean where it varies): the cost
        that variance × evaluations charges. Default: ``f_evaluations``."""
        self._check_supported(space)
        return float(self.f_evaluations)

    def noise(self, params: torch.Tensor, *, space: Space | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor | None:
        """The estimator's random input for ``params``; ``None`` for deterministic ones."""
        space = self.space_of(params, space)
        return self._noise(params, space, generator)

    def surrogate(self, params: torch.Tensor, f: Cost, *, noise: torch.Tensor | None = None,
                  space: Space | None = None, generator: torch.Generator | None = None,
                  logit: Cost | None = None, rollout: Rollout | None = None) -> torch.Tensor:
        """Per-sample surrogate, shape ``(B,)``; its gradient estimates ``∇ E[f(x)]`` (or,
        for an estimator with ``needs_logit``, the update its paper defines from D's
        ``logit``, required then; see the module doc). ``rollout`` completes prefixes for
        an estimator that ``takes_rollout`` (module doc)."""
        space = self.space_of(params, space)
        extra = self._logit_argument(logit)
        if self.takes_rollout:
            if rollout is not None and not callable(rollout):
                raise TypeError(f"{self.key}: rollout must be a callable (symbols, uniforms) "
                                f"-> completions, got {type(rollout).__name__}")
            extra["rollout"] = rollout
        if noise is None:
            return self._surrogate(params, _checked_cost(f),
                                   self._noise(params, space, generator), space, **extra)
        with self._given(params, noise, space, generator):
            return self._surrogate(params, _checked_cost(f), noise, space, **extra)

    def sample(self, params: torch.Tensor, *, noise: torch.Tensor | None = None,
               space: Space | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """What the generator emits, shape ``(B, *space.shape)``; carries no gradient."""
        space = self.space_of(params, space)
        with torch.no_grad():
            if noise is None:
                return self._sample(params.detach(), self._noise(params, space, generator),
                                    space)
            with self._given(params, noise, space, generator):
                return self._sample(params.detach(), noise, space)

    def learn(  # noqa: B027 (a no-op by default: most estimators learn nothing)
            self, params: torch.Tensor, f: Cost, *, noise: torch.Tensor | None = None,
            space: Space | None = None, generator: torch.Generator | None = None) -> None:
        """Update state learned during use, e.g. a control variate, from one batch; a no-op
        for estimators without such state (``learns`` is False)."""

    # -- helpers available to every estimator --------------------------------------------------
    def _logit_argument(self, logit: Cost | None) -> dict[str, Cost]:
        """``_surrogate``'s extra keyword: ``{"logit": checked logit}`` where needed."""
        if not self.needs_logit:
            return {}
        if logit is None:
            raise ValueError(
                f"{self.key} weights its samples by the discriminator's logit: pass "
                "logit=, a callable x -> Tensor[B] giving D's logit at x (gangrad's training "
                "and gradient statistics pass it; see gangrad.estimators.logit_kwargs)")
        if not callable(logit):
            raise TypeError(f"{self.key}: logit must be a callable x -> Tensor[B], got "
                            f"{type(logit).__name__}")
        return {"logit": _checked_cost(logit, "logit")}

    @contextlib.contextmanager
    def _given(self, params: torch.Tensor, noise: torch.Tensor, space: Space,
               generator: torch.Generator | None) -> Iterator[None]:
        """Checks on noise the caller passed: alone, one row per params row, and, if the
        estimator fails on it, the shape it draws itself (else the error is not the
        noise's and is raised as it is)."""
        if generator is not None:
            raise ValueError(f"{self.key}: pass noise= or generator=, not both")
        rows = noise.shape[0] if isinstance(noise, torch.Tensor) and noise.dim() else None
        if rows != params.shape[0]:
            shape = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise)
            raise ValueError(f"{self.key}: noise of shape {shape} does not fit params of "
                             f"shape {tuple(params.shape)}: one noise row per params row; "
                             "draw it with est.noise(params)")
        try:
            yield
        except RuntimeError as exc:
            own = self._noise(params.detach(), space,  # a throwaway generator
                              torch.Generator(params.device).manual_seed(0))
            if own is None or own.shape == noise.shape:
                raise
            raise ValueError(f"{self.key}: noise of shape {tuple(noise.shape)} does not fit "
                             f"params of shape {tuple(params.shape)}, which take noise of "
                             f"shape {tuple(own.shape)}; draw it with est.noise(params)"
                             ) from exc

    def space_of(self, params: torch.Tensor, space: Space | None = None) -> Space:
        """The space ``params`` belong to; checks the shape against ``param_shape``."""
        if not isinstance(params, torch.Tensor):
            raise TypeError(f"{self.key}: params must be a torch.Tensor, got {type(params)}")
        if not params.is_floating_point():
            raise TypeError(f"{self.key}: params must be a floating-point tensor (a "
                            f"generator's output), got dtype {params.dtype}")
        per_sample = tuple(params.shape[1:])
        if space is not None:
            self._check_supported(space)
            expected = self._param_shape(space)
            if params.dim() < 1 or per_sample != expected:
                raise ValueError(
                    f"{self.key}: params for {space} must have shape (B, "
                    f"{', '.join(map(str, expected))}), got {tuple(params.shape)}"
                )
            return space
        candidates: list[Space] = []
        if params.dim() >= 2:
            candidates.append(Continuous(params.shape[-1]))
        if params.dim() >= 3 and params.shape[-1] >= 2:
            candidates.append(Discrete(params.shape[-2], params.shape[-1]))
        for cand in candidates:
            if self.supports(cand) and self._param_shape(cand) == per_sample:
                return cand
        raise ValueError(
            f"{self.key}: params of shape {tuple(params.shape)} match no supported space; "
            f"expected {self._expected_shapes()}"
        )

    def replace(self, **changes: Any) -> AbstractEstimator:
        """A new estimator with some hyper-parameters changed (e.g. an annealed ``sigma``).

        State learned during use (an EMA baseline, a control variate) carries over, so a
        schedule does not reset it; :meth:`reset`-style methods clear it explicitly.
        """
        hyper = self.hyperparameters()
        unknown = sorted(set(changes) - set(hyper))
        if unknown:
            raise ValueError(
                f"{self.key} has no hyper-parameter {', '.join(map(repr, unknown))}; "
                f"accepted: {', '.join(hyper) or 'none'}"
            )
        new = type(self)(**{**hyper, **changes})
        learned = {k: v for k, v in vars(self).items() if k not in hyper}
        vars(new).update(learned)
        return new

    def frozen(self) -> AbstractEstimator:
        """A copy whose state learned during use (e.g. an EMA baseline) no longer changes.

        Needed where one call is traced for many replicates (``torch.func.vmap``) and for
        measurements that must not move the estimator they measure.
        """
        clone = copy.copy(self)
        clone._frozen = True
        return clone

    def measurable(self, params: torch.Tensor, f: Cost, *, space: Space | None = None,
                   generator: torch.Generator | None = None) -> AbstractEstimator:
        """A :meth:`frozen` copy to measure on ``params`` and ``f``: state that starts
        empty (an EMA baseline) first sees this batch, as in training it would have."""
        clone = copy.copy(self)
        clone._warm_up(params, f, self.space_of(params, space), generator)
        return clone.frozen()

    @property
    def label(self) -> str:
        """``key``, or ``key(name=value, ...)`` with the hyper-parameters that differ from
        their defaults (floats to 4 significant digits): the estimator's name in tables."""
        defaults = {h.name: h.default for h in hyperparameters(type(self))}
        changed = {k: v for k, v in self.hyperparameters().items()
                   if defaults.get(k, inspect.Parameter.empty) != v}
        if not changed:
            return self.key
        shown = {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in changed.items()}
        return self.key + "(" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")"

    def hyperparameters(self) -> dict[str, Any]:
        return {h.name: getattr(self, h.name) for h in hyperparameters(type(self))}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.hyperparameters() == other.hyperparameters()

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.hyperparameters().items()))))

    def _check_supported(self, space: Space) -> None:
        if not isinstance(space, Continuous | Discrete):
            raise TypeError(f"{self.key}: expected a Continuous or Discrete space, got {space!r}")
        if not self.supports(space):
            kinds = self.space_requirement or (
                " or ".join(t.__name__ for t in self.space_types) + " spaces")
            raise ValueError(f"{self.key} does not support {space}; it supports {kinds}")

    def _expected_shapes(self) -> str:
        shapes = []
        if Continuous in self.space_types:
            inner = self._param_shape(Continuous(7))
            shapes.append("(B, " + ", ".join("dim" if s == 7 else str(s) for s in inner)
                          + ") for Continuous(dim)")
        if Discrete in self.space_types:
            shapes.append("(B, length, classes) for Discrete(length, classes)")
        return " or ".join(shapes)

    # -- what a concrete estimator provides ------------------------------------------------------
    def _param_shape(self, space: Space) -> tuple[int, ...]:
        return space.shape

    def _warm_up(self, params: torch.Tensor, f: Cost, space: Space,  # noqa: B027
                 generator: torch.Generator | None) -> None:
        """Give state that starts empty one batch before a measurement (default: none)."""

    @abc.abstractmethod
    def _noise(self, params: torch.Tensor, space: Space,
               generator: torch.Generator | None) -> torch.Tensor | None: ...

    @abc.abstractmethod
    def _sample(self, params: torch.Tensor, noise: torch.Tensor | None,
                space: Space) -> torch.Tensor: ...

    @abc.abstractmethod
    def _surrogate(self, params: torch.Tensor, f: Cost, noise: torch.Tensor | None,
                   space: Space) -> torch.Tensor: ...


def rollout_kwargs(estimator: AbstractEstimator, rollout: Rollout) -> dict[str, Rollout]:
    """``{"rollout": rollout}`` for an estimator that ``takes_rollout``, else ``{}`` (as
    :func:`logit_kwargs`)."""
    return {"rollout": rollout} if getattr(estimator, "takes_rollout", False) else {}


def logit_kwargs(estimator: AbstractEstimator, logit: Cost) -> dict[str, Cost]:
    """``{"logit": logit}`` for an estimator that ``needs_logit``, else ``{}``: what a caller
    passes to ``surrogate`` (``est.surrogate(params, f, **logit_kwargs(est, D))``), so that
    an estimator unaware of the keyword never receives it."""
    return {"logit": logit} if getattr(estimator, "needs_logit", False) else {}


def _checked_cost(f: Cost, name: str = "f") -> Cost:
    """Wrap ``f`` so that a wrong output shape is reported where it happens."""

    def checked(x: torch.Tensor) -> torch.Tensor:
        out = f(x)
        if not isinstance(out, torch.Tensor) or out.shape != (x.shape[0],):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"{name} must map x of shape (N, ...) to a tensor of shape (N,); "
                f"got {shape} for N={x.shape[0]}"
            )
        return out

    return checked
