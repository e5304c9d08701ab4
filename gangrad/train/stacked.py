"""S copies of one network as stacked parameters, called on ``(S, N, ...)`` inputs.

:class:`Stack` is what :func:`gangrad.train.train_seeds` trains: ``stack_module_state``
stacks the copies' parameters into tensors with a leading seed dimension, and one call
runs every copy on its own slice of the input.

Two ways to call the copies:

- grouped matrix products, for networks built from ``nn.Linear``, ``nn.Sequential``,
  elementwise activations and modules that define ``stacked_forward``: every ``Linear``
  becomes one ``torch.baddbmm`` over the seeds, with a backward that follows ``addmm``'s
  (which ``nn.Linear`` uses on a 2-D input) term by term, so on the CPU each seed gets
  the same bits as its own network run alone (``tests/test_train_seeds.py`` checks). A
  ``Linear`` with one input or one output is a matrix-vector product, for which ``addmm``
  takes another path: it runs seed by seed;
- ``torch.func.vmap`` over ``functional_call`` for any other network: correct, but
  rounding may differ from a lone run in the last bits.

A module opts into the grouped path with ``stacked_forward(self, x, stack)``, where ``x``
is ``(S, N, ...)``, ``stack.child(name)`` is the grouped call of a child module and
``stack.param(name)`` the stacked ``(S, ...)`` tensor of one of its own parameters or
buffers.

Buffers (batch norm's running statistics) are stacked like the parameters, and each
copy's buffers become views of their slice: a grouped call that updates them in place
(:class:`gangrad.tasks._pacgan.BlocksBatchNorm`), or ``torch.func.vmap`` over a module that
does (``nn.BatchNorm1d`` with running statistics), updates every copy's own, as its lone
run would.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["Stack"]

Call = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]

_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.ELU, nn.GELU,
                nn.SiLU, nn.Softplus, nn.Hardtanh)


class _View:
    """What ``stacked_forward`` sees: its children's grouped calls and its own parameters."""

    def __init__(self, prefix: str, params: dict[str, torch.Tensor],
                 children: dict[str, Call]) -> None:
        self._prefix, self._params, self._children = prefix, params, children

    def child(self, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        call = self._children[name]
        return lambda x: call(self._params, x)

    def param(self, name: str) -> torch.Tensor:
        """The stacked ``(S, ...)`` parameter or buffer ``name`` of this module."""
        return self._params[self._prefix + name]


class _GroupedLinear(torch.autograd.Function):
    """``x @ wᵀ + b`` per seed: ``(S, N, in), (S, out, in), (S, out) -> (S, N, out)``.

    Forward and backward are ``addmm``'s as autograd runs it for ``nn.Linear`` (the weight
    gradient computed as ``gradᵀ @ x``, the layout of the weight), one ``bmm`` per term.
    """

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
                ) -> torch.Tensor:
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, bias = inputs
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_w = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def _grouped(module: nn.Module, prefix: str = "") -> Call | None:
    """The grouped call of ``module`` (parameters named from ``prefix``), or ``None``."""
    if isinstance(module, nn.Linear):
        weight, bias = prefix + "weight", prefix + "bias"
        if 1 in (module.in_features, module.out_features):
            # matrix-vector products: addmm takes a gemv path that bmm does not, so each
            # seed runs its own F.linear (a cheap layer)
            def sliced(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
                # unbind, not x[s]: its backward is one stack, not S zero-filled copies
                b = p[bias].unbind(0) if module.bias is not None else [None] * len(x)
                return torch.stack([nn.functional.linear(*args) for args in
                                    zip(x.unbind(0), p[weight].unbind(0), b, strict=True)])
            return sliced
        if module.bias is None:
            return lambda p, x: _GroupedLinear.apply(x, p[weight], None)
        return lambda p, x: _GroupedLinear.apply(x, p[weight], p[bias])
    if isinstance(module, _ELEMENTWISE):
        return lambda p, x: module(x)
    if isinstance(module, nn.Sequential):
        calls = [_grouped(child, f"{prefix}{name}.") for name, child in module.named_children()]
        if any(c is None for c in calls):
            return None

        def chain(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            for call in calls:
                x = call(p, x)
            return x
        return chain
    forward = getattr(module, "stacked_forward", None)
    if forward is None:
        return None
    children = {name: _grouped(child, f"{prefix}{name}.")
                for name, child in module.named_children()}
    if any(c is None for c in children.values()):
        return None
    return lambda p, x: forward(x, _View(prefix, p, children))


class Stack:
    """S copies of one network, stacked; ``stack(x)`` maps ``(S, N, ...)`` inputs.

    Each copy's own module keeps working: its parameters become views of its slice of the
    stacked tensors, so it always holds the current values (for evaluation and
    checkpoints) at no cost.
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        from torch.func import functional_call, stack_module_state, vmap

        self.params, self.buffers = stack_module_state(list(modules))
        for s, module in enumerate(modules):
            for name, p in module.named_parameters():
                p.data = self.params[name].data[s]
            for name, b in module.named_buffers():
                b.data = self.buffers[name][s]
        grouped = _grouped(modules[0])
        self.grouped = grouped is not None
        if grouped is None:
            base = copy.deepcopy(modules[0]).to("meta")
            names = set(self.params)
            mapped = vmap(lambda params, buffers, x: functional_call(base, (params, buffers),
                                                                     (x,)))

            def grouped(tensors: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
                base.train(modules[0].training)  # the copies follow the first one's mode
                params = {k: v for k, v in tensors.items() if k in names}
                return mapped(params, {k: v for k, v in tensors.items() if k not in names}, x)
        self._call = grouped

    def __call__(self, x: torch.Tensor, *, frozen: bool = False) -> torch.Tensor:
        """``x (S, N, ...)``; ``frozen``: no gradient flows to the parameters."""
        params = ({k: v.detach() for k, v in self.params.items()} if frozen
                  else self.params)
        return self._call({**params, **self.buffers}, x)
