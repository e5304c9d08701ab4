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

Many seeds at once (:class:`SeedStack`, what :func:`gangrad.train.train_seeds` uses for
a subclass that sets ``stacks_seeds``, as REBAR and RELAX do): S
copies of one estimator, one per seed, keep their control variates as one set of tensors
with a leading seed dimension, and one call computes every seed's estimate on params
``(S, B, L, C)``, noise ``(S, B, 2, L, C)`` and a cost ``f`` mapping ``(S, N, L, C)`` to
``(S, N)`` (each seed's rows through that seed's discriminator). Every operation is
elementwise, within a row or within a seed, so each seed gets the numbers its copy alone
would compute.
"""

from __future__ import annotations

import abc

import torch

from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import AbstractEstimator, Cost, _checked_cost
from gangrad.estimators._conditional import conditional_gumbel, perturbed
from gangrad.spaces import Discrete, Space

__all__ = ["AbstractLearnedControlVariate", "SeedStack", "per_row"]

Control = dict[str, torch.Tensor]


def per_row(t: torch.Tensor, z: torch.Tensor, extra: int) -> torch.Tensor:
    """A learned tensor ``t`` used on perturbed logits ``z (*seeds, N, L, C)``: with seed
    dimensions (``t`` is then ``(*seeds, *shape)``), ``t`` with ``extra`` unit dimensions
    after them, so that each seed's tensor meets its own rows; ``t`` itself otherwise."""
    lead = z.dim() - 3
    if lead == 0:
        return t
    return t.reshape(*t.shape[:lead], *([1] * extra), *t.shape[lead:])


class AbstractLearnedControlVariate(AbstractEstimator):
    """Unbiased estimator with a control variate ``c_φ(z)`` learned to minimise variance."""

    space_types = (Discrete,)
    differentiable_f = True
    learns = True
    # whether _control computes every seed's c_φ for z (S, N, L, C) and tensors (S, ...)
    # (see SeedStack); a subclass that does not is batched seed by seed
    stacks_seeds: bool = False
    cv_lr: float
    control_: Control | None = None  # learned during use
    _optimizer: torch.optim.Optimizer | None = None
    _control_shape: tuple[int, ...] | None = None

    @abc.abstractmethod
    def _init_control(self, shape: tuple[int, ...]) -> Control:
        """Fresh float64 CPU tensors of ``c_φ`` for per-sample params of ``shape``."""

    @abc.abstractmethod
    def _control(self, control: Control, z: torch.Tensor, f: Cost) -> torch.Tensor:
        """``c_φ(z)`` for perturbed logits ``z (N, L, C)``: shape ``(N,)``; for a
        :class:`SeedStack`, ``z (S, N, L, C)`` with tensors ``(S, ...)`` (see
        :func:`per_row`) gives ``(S, N)``."""

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
        """The surrogate for params ``(B, L, C)`` (or ``(S, B, L, C)``, many seeds)."""
        B = params.shape[-3]
        z, b = perturbed(params, noise[..., 0, :, :])  # B x L x C
        z_tilde = conditional_gumbel(params, b, noise[..., 1, :, :])
        with torch.no_grad():  # b is discrete: f(b) has no path to θ
            fb = f(b)
        c = self._control(control, torch.cat([z, z_tilde], dim=-3), f)  # 2B
        c_z, c_tilde = c[..., :B], c[..., B:]
        log_pb = cat.log_prob(params, b)
        pathwise = c_z - c_tilde
        return (fb + (fb - c_tilde) * (log_pb - log_pb.detach())
                + pathwise - pathwise.detach())


class SeedStack:
    """S copies of one learned control variate, one per seed, learned as one.

    Their tensors are stacked along a leading seed dimension, and each copy's tensors
    become views of its slice, so every copy always holds its current values (as
    :class:`gangrad.train.stacked.Stack` does for networks). One Adam steps the stack:
    Adam is elementwise, so each slice takes the step its copy's own Adam would. The
    stack is made when the copies' own state would be: at once for copies that have
    learned already, else at the first :meth:`learn` (until then the surrogate uses the
    initial values, as each copy's would). :meth:`sync` writes the stack's Adam state back
    into each copy's optimiser.

    Each call is given the current copies: a schedule replaces them at every step
    (:meth:`~gangrad.estimators.AbstractEstimator.replace` carries the learned state
    over), and the first copy's hyper-parameters are the ones used.
    """

    def __init__(self, copies: list[AbstractLearnedControlVariate]) -> None:
        """``copies``: one estimator per seed, each in the same state (e.g. deep copies of
        one), none frozen."""
        if not copies or any(type(c) is not type(copies[0]) or c._frozen for c in copies):
            raise ValueError("SeedStack: the copies must be one unfrozen estimator type")
        if len({c._control_shape for c in copies}) != 1:
            raise ValueError("SeedStack: the copies' control variates differ in shape")
        self.control: Control | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        if copies[0].control_ is not None:
            self._stack(copies, None)

    def _stack(self, copies: list[AbstractLearnedControlVariate],
               params: torch.Tensor | None) -> None:
        if params is not None:  # as each copy's first learn() would
            for c in copies:
                c._state(params[0])
        keys = list(copies[0].control_)
        self.control = {
            k: torch.stack([c.control_[k].detach() for c in copies]).requires_grad_()
            for k in keys}
        self.optimizer = torch.optim.Adam(list(self.control.values()), lr=copies[0].cv_lr)
        for k in keys:  # an Adam state the copies bring with them carries over
            states = [c._optimizer.state.get(c.control_[k]) for c in copies]
            if any(states):
                if not all(states) or any(not torch.equal(st["step"], states[0]["step"])
                                          for st in states):
                    raise ValueError("SeedStack: the copies' optimisers are at different steps")
                self.optimizer.state[self.control[k]] = {
                    name: (value.clone() if name == "step" else
                           torch.stack([st[name] for st in states]))
                    for name, value in states[0].items()}
        for s, c in enumerate(copies):
            for k in keys:
                c.control_[k].data = self.control[k].data[s]

    def surrogate(self, copies: list[AbstractLearnedControlVariate], params: torch.Tensor,
                  f: Cost, noise: torch.Tensor) -> torch.Tensor:
        """Every seed's surrogate, ``(S, B)``, for params ``(S, B, L, C)``."""
        estimator = copies[0]
        shape = estimator._check_shape(params[0])
        if self.control is None:
            like = {"device": params.device, "dtype": params.dtype}
            control = {k: v.to(**like).expand(len(copies), *v.shape)
                       for k, v in estimator._init_control(shape).items()}
        else:
            control = {k: v.detach() for k, v in self.control.items()}
        return estimator._estimate(params, f, noise, control)

    def learn(self, copies: list[AbstractLearnedControlVariate], params: torch.Tensor,
              f: Cost, noise: torch.Tensor) -> None:
        """Each seed's :meth:`AbstractLearnedControlVariate.learn`, as one step."""
        estimator = copies[0]
        if estimator._frozen:
            return
        params = params.detach().requires_grad_(True)
        if self.control is None:
            self._stack(copies, params)
        s = estimator._estimate(params, f, noise, self.control)  # S x B
        (g,) = torch.autograd.grad(s.sum(), params, create_graph=True)
        loss = g.pow(2).flatten(2).sum(2).mean(1)  # S: each seed's mean_b ‖ĝ_b‖²
        grads = torch.autograd.grad(loss.sum(), list(self.control.values()))
        for tensor, grad in zip(self.control.values(), grads, strict=True):
            tensor.grad = grad
        self.optimizer.step()

    def sync(self, copies: list[AbstractLearnedControlVariate]) -> None:
        """Each copy's optimiser state set to (a copy of) its slice of the stack's."""
        if self.control is None:
            return
        for k, stacked in self.control.items():
            state = self.optimizer.state.get(stacked)
            if not state:
                continue
            for s, c in enumerate(copies):
                c._optimizer.state[c.control_[k]] = {
                    name: value.clone() if name == "step" else value[s].clone()
                    for name, value in state.items()}
