"""Gradients of G's parameters: R replicate estimates at once, and the reference gradient.

:func:`replicate_gradients` is one ``torch.func.vmap`` over the replicate noise of
``torch.func.grad`` of a ``functional_call`` of G (``chunk_size`` bounds memory);
:func:`loop_gradients` computes the same with a Python loop, the cross-check.

The reference (:func:`reference_gradient`, its method named in the ``reference`` column):

- ``pathwise`` (continuous spaces): the exact gradient of the deterministic objective
  ``mean_b f(G(z_b))`` given z (σ = 0);
- ``enumeration`` (discrete spaces with ≤ 65,536 outcomes): the exact gradient of
  ``mean_b E_{x~Cat(G(z_b))} f(x)`` by enumerating every outcome;
- ``unbiased average`` (larger discrete spaces): the mean of ``replicates`` score-function
  estimates with an 8-sample leave-one-out baseline, with its standard error;
- ``quadrature`` (tasks with ``expected_loss``, asked for ``∇ E_z``): Gauss–Hermite
  quadrature; other tasks then use their fixed-z method on the pooled z (``… (pooled z)``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from gangrad import estimators, exact
from gangrad.estimators import AbstractEstimator, logit_kwargs
from gangrad.spaces import Continuous
from gangrad.tasks import AbstractTask

__all__ = ["Grads", "deterministic_gradient", "draw_noise", "loop_gradients",
           "paired_reference", "reference_gradient", "replicate_gradients"]

Grads = dict[str, torch.Tensor]


def draw_noise(est: AbstractEstimator, params: torch.Tensor, replicates: int, space,
               generator: torch.Generator | None) -> torch.Tensor | None:
    """Noise for ``replicates`` estimates on ``params (B, ...)``: ``(R, B, ...)`` or None."""
    B = params.shape[0]
    big = params.detach().repeat(replicates, *[1] * (params.dim() - 1))
    noise = est.noise(big, space=space, generator=generator)
    return None if noise is None else noise.reshape(replicates, B, *noise.shape[1:])


def replicate_gradients(est: AbstractEstimator, G: nn.Module, f, z: torch.Tensor,
                        noise: torch.Tensor | None, space, *,
                        chunk_size: int | None = None, logit=None) -> Grads:
    """Gradients of G's parameters, one per replicate: ``{name: (R, *shape)}``.

    ``z`` is ``(B, latent)`` (shared) or ``(R, B, latent)`` (one batch per replicate);
    ``noise`` is ``(R, B, ...)`` from :func:`draw_noise` (None for deterministic estimators).
    ``logit`` (D's logit, a callable ``x -> (N,)``) goes to an estimator that
    ``needs_logit`` and is required by it.
    """
    params = {k: v.detach() for k, v in G.named_parameters()}
    extra = logit_kwargs(est, logit)

    def loss(p, z_r, noise_r):
        return est.surrogate(functional_call(G, p, (z_r,)), f, noise=noise_r, space=space,
                             **extra).mean()

    fresh = z.dim() == 3
    if noise is None and not fresh:
        raise ValueError("a deterministic estimator with fixed z has one gradient; "
                         "use fresh_z or expand it")
    in_z = 0 if fresh else None
    in_noise = None if noise is None else 0
    return vmap(grad(loss), in_dims=(None, in_z, in_noise), chunk_size=chunk_size)(
        params, z, noise)


def loop_gradients(est: AbstractEstimator, G: nn.Module, f, z: torch.Tensor,
                   noise: torch.Tensor | None, space, *, logit=None) -> Grads:
    """The same as :func:`replicate_gradients`, one replicate at a time (the cross-check)."""
    names = [k for k, _ in G.named_parameters()]
    R = noise.shape[0] if noise is not None else z.shape[0]
    out: dict[str, list[torch.Tensor]] = {k: [] for k in names}
    for r in range(R):
        z_r = z[r] if z.dim() == 3 else z
        n_r = None if noise is None else noise[r]
        s = est.surrogate(G(z_r), f, noise=n_r, space=space, **logit_kwargs(est, logit)).mean()
        for k, g in zip(names, torch.autograd.grad(s, list(G.parameters())), strict=True):
            out[k].append(g)
    return {k: torch.stack(v) for k, v in out.items()}


def _autograd(G: nn.Module, value: torch.Tensor) -> Grads:
    names = [k for k, _ in G.named_parameters()]
    return dict(zip(names, torch.autograd.grad(value, list(G.parameters())), strict=True))


def deterministic_gradient(est: AbstractEstimator, G: nn.Module, f, z: torch.Tensor,
                           space, *, logit=None) -> Grads:
    """The one gradient of an estimator without noise, on a fixed z batch."""
    return _autograd(G, est.surrogate(G(z), f, space=space,
                                      **logit_kwargs(est, logit)).mean())


def reference_gradient(task: AbstractTask, G: nn.Module, f, z: torch.Tensor, *,
                       replicates: int = 2000, generator: torch.Generator | None = None,
                       chunk_size: int | None = None,
                       expected: bool = False) -> tuple[Grads, Grads | None, str]:
    """``(gradient, standard error or None, method)`` of the reference objective.

    ``z`` is ``(B, latent)``. ``expected=True`` asks for ``∇ E_z`` (quadrature where the
    task offers it, else the fixed-z method on ``z``, which should then be large).
    """
    space = task.space
    if expected and hasattr(task, "expected_loss"):
        # the quadrature runs in float64; D (inside f) keeps its own dtype
        value = task.expected_loss(G, lambda x: f(x.to(z.dtype)).double())
        return ({k: v.to(z.dtype) for k, v in _autograd(G, value).items()}, None, "quadrature")
    suffix = " (pooled z)" if expected else ""
    if isinstance(space, Continuous):
        return _autograd(G, f(G(z)).mean()), None, "pathwise" + suffix
    if space.outcomes <= exact.MAX_OUTCOMES:
        return (_autograd(G, exact.discrete_expectation(G(z), f).mean()), None,
                "enumeration" + suffix)
    est = estimators.create("score_function", baseline="mean", samples=8)
    noise = draw_noise(est, G(z), replicates, space, generator)
    reps = replicate_gradients(est, G, f, z, noise, space, chunk_size=chunk_size)
    mean = {k: v.mean(0) for k, v in reps.items()}
    se = {k: v.std(0) / math.sqrt(replicates) for k, v in reps.items()}
    return mean, se, f"unbiased average ({replicates} x score_function RLOO-8)" + suffix


def paired_reference(task: AbstractTask, G: nn.Module, f, z: torch.Tensor,
                     chunk_size: int | None = None) -> Grads | None:
    """Each z batch's own exact reference, ``{name: (R, *shape)}`` for ``z (R, B, latent)``:
    pathwise on continuous spaces, enumeration on small discrete ones; None where there is
    no exact one per batch. Their mean is the pooled-z reference."""
    space = task.space
    if isinstance(space, Continuous):
        def objective(x_params):
            return f(x_params).mean()
    elif space.outcomes <= exact.MAX_OUTCOMES:
        def objective(x_params):
            return exact.discrete_expectation(x_params, f).mean()
    else:
        return None
    params = {k: v.detach() for k, v in G.named_parameters()}

    def loss(p, z_r):
        return objective(functional_call(G, p, (z_r,)))

    return vmap(grad(loss), in_dims=(None, 0), chunk_size=chunk_size)(params, z)
