r"""Shared maths of the multi-sample binary estimators (double control variates, RODEO).

A binary space ``Discrete(n, 2)`` is ``n`` independent Bernoullis with logits
``α = θ[..., 1] − θ[..., 0]`` and ``p = σ(α)`` (see :mod:`gangrad.estimators._bernoulli`).
Each row draws ``K`` samples ``b_k = 1[u_k < p]`` from uniforms ``u (B, K, n)``; ``f`` is
evaluated once on the ``B·K`` samples, which also gives its *slopes*
``∇_b f(b_k) = ∂f/∂x_1 − ∂f/∂x_0`` at the one-hot ``x = (1 − b, b)`` by one
vector-Jacobian product (``torch.func.vjp``, so it composes with the ``torch.func``
transforms of the gradient-statistics engine). Values and slopes are returned detached:
they enter the estimates as coefficients, never as paths for the gradient.

Leave-one-out means ``\bar t_{−k} = (Σ_j t_j − t_k)/(K − 1)`` over the sample axis keep a
quantity built from the other samples independent of ``b_k``, which is what keeps these
estimators unbiased.

:class:`AbstractLearnedBinary` holds what both estimators share: the noise, the emitted
sample (the first draw), the surrogate ``mean_k f(b_k) + ĝ_α·(α − ⊥α)`` (its value the
mean cost, its gradient the estimate ``ĝ_α``, reaching ``θ`` as ``±ĝ_α``), and the
control variate's parameters ``control_`` learned during use: made by the first
:meth:`~AbstractLearnedBinary.learn` (one Adam step, learning rate ``cv_lr``, on
``mean_b ‖ĝ_b‖²``, which the estimate gives in closed form) on the params' device and
dtype, shared by :meth:`frozen` copies, forgotten by ``reset``. The initial values are
deterministic and, until the first ``learn``, the surrogate uses them without storing them,
so it may run inside ``torch.func`` transforms.
"""

from __future__ import annotations

import abc

import torch

from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import AbstractEstimator, Cost, _checked_cost
from gangrad.estimators._bernoulli import logit, one_hot_binary
from gangrad.spaces import Discrete, Space

__all__ = ["AbstractLearnedBinary", "Control", "bernoulli_draws", "leave_one_out",
           "values_and_slopes"]

Control = dict[str, torch.Tensor]


def bernoulli_draws(p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``b = 1[u < p]``, ``(B, K, n)`` for ``p (B, n)`` and ``u (B, K, n)``."""
    return (u < p.unsqueeze(1)).to(p.dtype)


def values_and_slopes(f: Cost, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``f`` at ``b (B, K, n)`` (vertices, or interior points such as ``p``): values
    ``(B, K)`` and slopes ``∇_b f`` ``(B, K, n)``, detached."""
    B, K, n = b.shape
    x = one_hot_binary(b).reshape(B * K, n, 2)
    fx, pullback = torch.func.vjp(f, x)
    (dx,) = pullback(torch.ones_like(fx))
    slope = (dx[..., 1] - dx[..., 0]).reshape(B, K, n)
    return fx.detach().reshape(B, K), slope.detach()


def leave_one_out(t: torch.Tensor) -> torch.Tensor:
    """Mean over the other samples (axis 1) for each sample: same shape as ``t``."""
    return (t.sum(1, keepdim=True) - t) / (t.shape[1] - 1)


class AbstractLearnedBinary(AbstractEstimator):
    """``K`` Bernoulli samples per row and a control variate learned during use."""

    space_types = (Discrete,)
    space_requirement = "binary Discrete(n, 2) spaces (one Bernoulli per position)"
    differentiable_f = True
    learns = True
    rows_independent = True
    samples: int
    cv_lr: float
    control_: Control | None = None  # learned during use
    _optimizer: torch.optim.Optimizer | None = None

    @abc.abstractmethod
    def _init_control(self, shape: tuple[int, ...]) -> Control:
        """Fresh float64 CPU tensors of the control variate for per-sample ``shape``."""

    @abc.abstractmethod
    def _estimate(self, params: torch.Tensor, f: Cost, noise: torch.Tensor,
                  control: Control) -> tuple[torch.Tensor, torch.Tensor]:
        """``f(b_k)`` ``(B, K)`` and ``ĝ_α`` ``(B, n)`` at detached ``params``;
        differentiable in ``control``."""

    def supports(self, space: Space) -> bool:
        return isinstance(space, Discrete) and space.classes == 2

    def _expected_shapes(self) -> str:
        return "(B, n, 2) for a binary Discrete(n, 2)"

    def reset(self) -> None:
        """Forget the learned control variate (a fresh one is made by the next learn())."""
        self.control_ = self._optimizer = None

    def _noise(self, params, space, generator):
        shape = (params.shape[0], self.samples, params.shape[1])  # B x K x n
        return cat.uniform_noise(shape, params, generator)

    def _sample(self, params, noise, space):
        return one_hot_binary(bernoulli_draws(torch.sigmoid(logit(params)), noise)[:, 0])

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        shape = tuple(params.shape[1:])
        current = self._init_control(shape) if self.control_ is None else self.control_
        like = {"device": params.device, "dtype": params.dtype}
        control = {k: v.detach().to(**like) for k, v in current.items()}
        alpha = logit(params)
        fx, g = self._estimate(params.detach(), f, noise, control)
        return fx.mean(1) + (g * (alpha - alpha.detach())).sum(-1)

    def learn(self, params: torch.Tensor, f: Cost, *, noise: torch.Tensor | None = None,
              space: Space | None = None, generator: torch.Generator | None = None) -> None:
        """One Adam step on the control variate minimising ``mean_b ‖ĝ_b‖²`` at
        ``params`` (detached). Does nothing on a :meth:`frozen` copy."""
        if self._frozen:
            return
        params = params.detach()
        space = self.space_of(params, space)
        if noise is None:
            noise = self._noise(params, space, generator)
        if self.control_ is None:
            self.control_ = {k: v.to(device=params.device, dtype=params.dtype).requires_grad_()
                             for k, v in self._init_control(tuple(params.shape[1:])).items()}
            self._optimizer = torch.optim.Adam(list(self.control_.values()), lr=self.cv_lr)
        like = {"device": params.device, "dtype": params.dtype}
        control = {k: v.to(**like) for k, v in self.control_.items()}
        g = self._estimate(params, _checked_cost(f), noise, control)[1]
        loss = g.pow(2).sum(-1).mean()
        grads = torch.autograd.grad(loss, list(self.control_.values()), allow_unused=True)
        for tensor, grad in zip(self.control_.values(), grads, strict=True):
            tensor.grad = torch.zeros_like(tensor) if grad is None else grad
        self._optimizer.step()
