r"""The estimate shared by REBAR and RELAX, and the control variate they learn during use.

For ``b = H(z)``, ``z ~ p(z | θ)`` (Gumbel-perturbed logits), ``z̃ ~ p(z | b, θ)`` (see
:mod:`gangrad.estimators._conditional`) and any differentiable ``c(z)``,

.. math::
    \hat g = \big[f(b) − c(z̃)\big]\, ∇_θ \log p(b \mid θ) + ∇_θ c(z) − ∇_θ c(z̃)

is unbiased for ``∇_θ E[f(b)]`` (Grathwohl et al., 2018): ``E[∇_θ c(z)] =
∇_θ E[c(z)]`` and the score and ``z̃`` terms together give ``−∇_θ E[c(z)]``. The choice of
``c`` only moves the variance, so its parameters ``φ`` are trained to minimise
``E‖ĝ‖² = Var ĝ + ‖∇_θ E f‖²`` by gradient descent on the single-sample
``∂‖ĝ‖²/∂φ`` (ibid.; this is :meth:`~AbstractLearnedControlVariate.learn`).

Surrogate (magic box): ``f(b) + A·(log p(b) − ⊥log p(b)) + (c(z) − c(z̃)) − ⊥(c(z) − c(z̃))``
with ``A = f(b) − c(z̃)``; its value is ``f(b)``, evaluated without gradient (so ``f`` is
differentiated only inside ``c``). ``A`` is deliberately not detached: it
multiplies a zero, so it adds nothing to the gradient w.r.t. ``θ``, while in :meth:`learn`
(``create_graph=True``) it carries the dependence of ``ĝ`` on ``φ``.

The control variate's tensors ``control_`` and their Adam optimiser (learning rate
``cv_lr``) are state learned during use, made by the first :meth:`learn` from the
per-sample shape of ``params``, on their device and dtype, shared by :meth:`frozen` copies
and forgotten by :meth:`reset`. The initial values are deterministic (no torch RNG), and
until the first :meth:`learn` the surrogate uses those same values without storing them:
the surrogate never creates state, so it may run inside ``torch.func`` transforms
(``vmap``, ``grad``), where new leaf tensors cannot be made. The surrogate uses the tensors
detached, so ``params`` (and ``f``'s own parameters) are its only leaves.

Noise: two uniforms per logit, ``(B, 2, L, C)``: ``[:, 0]`` draws ``b`` (Gumbel-max, the
same sample the other discrete estimators draw from the same uniforms), ``[:, 1]`` draws
``z̃``.
"""

from __future__ import annotations

import abc

import torch

from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import AbstractEstimator, Cost, _checked_cost
from gangrad.estimators._conditional import conditional_gumbel, perturbed
from gangrad.spaces import Discrete, Space

__all__ = ["AbstractLearnedControlVariate"]

Control = dict[str, torch.Tensor]


class AbstractLearnedControlVariate(AbstractEstimator):
    """Unbiased estimator with a control variate ``c_φ(z)`` learned to minimise variance."""

    space_types = (Discrete,)
    differentiable_f = True
    learns = True
    cv_lr: float
    control_: Control | None = None  # learned during use
    _optimizer: torch.optim.Optimizer | None = None
    _control_shape: tuple[int, ...] | None = None

    @abc.abstractmethod
    def _init_control(self, shape: tuple[int, ...]) -> Control:
        """Fresh float64 CPU tensors of ``c_φ`` for per-sample params of ``shape``."""

    @abc.abstractmethod
    def _control(self, control: Control, z: torch.Tensor, f: Cost) -> torch.Tensor:
        """``c_φ(z)`` for perturbed logits ``z (N, L, C)``: shape ``(N,)``."""

    def reset(self) -> None:
        """Forget the learned control variate (a fresh one is made by the next learn())."""
        self.control_ = self._optimizer = self._control_shape = None

    def _check_shape(self, params: torch.Tensor) -> tuple[int, ...]:
        shape = tuple(params.shape[1:])
        if self.control_ is not None and shape != self._control_shape:
            raise ValueError(
                f"{self.key}: the control variate was learned for params of per-sample shape "
                f"{self._control_shape}, got {shape}; call reset() to start a new one"
            )
        return shape

    def _state(self, params: torch.Tensor) -> Control:
        """The learned tensors, made at the first call."""
        shape = self._check_shape(params)
        if self.control_ is None:
            self.control_ = {k: v.to(device=params.device, dtype=params.dtype).requires_grad_()
                             for k, v in self._init_control(shape).items()}
            self._optimizer = torch.optim.Adam(list(self.control_.values()), lr=self.cv_lr)
            self._control_shape = shape
        return self.control_

    def _noise(self, params, space, generator):
        return cat.uniform_noise((params.shape[0], 2, *params.shape[1:]), params, generator)

    def _sample(self, params, noise, space):
        return perturbed(params, noise[:, 0])[1]

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        shape = self._check_shape(params)
        current = self._init_control(shape) if self.control_ is None else self.control_
        like = {"device": params.device, "dtype": params.dtype}
        control = {k: v.detach().to(**like) for k, v in current.items()}
        return self._estimate(params, f, noise, control)

    def learn(self, params: torch.Tensor, f: Cost, *, noise: torch.Tensor | None = None,
              space: Space | None = None, generator: torch.Generator | None = None) -> None:
        """One Adam step on ``φ`` minimising ``mean_b ‖ĝ_b‖²`` at ``params`` (detached).

        Does nothing on a :meth:`frozen` copy.
        """
        if self._frozen:
            return
        params = params.detach().requires_grad_(True)
        space = self.space_of(params, space)
        if noise is None:
            noise = self._noise(params, space, generator)
        control = self._state(params)
        like = {"device": params.device, "dtype": params.dtype}
        s = self._estimate(params, _checked_cost(f), noise,
                           {k: v.to(**like) for k, v in control.items()})
        (g,) = torch.autograd.grad(s.sum(), params, create_graph=True)  # B x L x C, per row
        loss = g.pow(2).flatten(1).sum(1).mean()
        grads = torch.autograd.grad(loss, list(control.values()))
        for tensor, grad in zip(control.values(), grads, strict=True):
            tensor.grad = grad
        self._optimizer.step()

    def _estimate(self, params: torch.Tensor, f: Cost, noise: torch.Tensor,
                  control: Control) -> torch.Tensor:
        B = params.shape[0]
        z, b = perturbed(params, noise[:, 0])  # B x L x C
        z_tilde = conditional_gumbel(params, b, noise[:, 1])
        with torch.no_grad():  # b is discrete: f(b) has no path to θ
            fb = f(b)
        c = self._control(control, torch.cat([z, z_tilde]), f)  # 2B
        c_z, c_tilde = c[:B], c[B:]
        log_pb = cat.log_prob(params, b)
        pathwise = c_z - c_tilde
        return (fb + (fb - c_tilde) * (log_pb - log_pb.detach())
                + pathwise - pathwise.detach())
