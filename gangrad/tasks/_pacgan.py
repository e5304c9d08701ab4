r"""PacGAN's networks for the 2-D mixtures, and packing as a discriminator option.

Architecture (Lin et al., 2018, "PacGAN: the power of two samples in generative adversarial
networks", §5.1 and the released code, github.com/fjxmlzn/PacGAN,
``synthetic_data_experiments/2DRing_GAN&PacGAN``):

- generator: ``z (B, 2) ~ N(0, I)``, four hidden layers of 400 units, each
  ``Linear`` (no bias: batch norm's shift is the bias) → ``BatchNorm1d`` → ReLU, then a
  linear :class:`~gangrad.tasks._nets.Head` with a bias;
- discriminator: three maxout layers of 200 units with 5 pieces each, then ``Linear`` to one
  logit; its input is ``pack × 2`` numbers;
- initialisation: every weight ``N(0, 0.02²)``, every bias 0, batch norm's scale 1 and
  shift 0 (ε = 1e-4, as Blocks' batch norm there).

Batch norm (``batch_norm``, a task option). ``"batch"`` (the default): ``BatchNorm1d``
normalising with the statistics of the batch it is given, in training and in evaluation,
with no running averages (``track_running_stats=False``): the generator has no state
besides its parameters, and an evaluation on 2,500 latents normalises with those 2,500.
``"pacgan"``: :class:`BlocksBatchNorm`, batch norm as PacGAN's code computes it with Blocks
(``blocks.bricks.bn.BatchNormalization`` and ``get_batch_normalization_updates`` in
``pacgan_task.py``): in training, each of the ``pack`` slots of a batch is normalised with
its own statistics (the code runs G once per slot, on 100 latents each); running averages
of the mean and of the standard deviation ``√(var + ε)``, over the slots, with weight 0.05
for the new batch (``m·0.05 + p·0.95``), start at 0 and 1; evaluation normalises with
them. Either way the generator stays a function of its parameters (and buffers) that
``torch.func`` transforms apply to: a forward inside a transform never updates the
running averages.

A maxout unit (Goodfellow et al., 2013, "Maxout networks") is the largest of its ``k``
affine pieces, :math:`h_u(x) = \max_{j<k} (W x + b)_{uk + j}`.

Packing (PacGAN). A packed discriminator judges ``m`` samples at once: its logit
:math:`c(x_1, …, x_m)` is a function of the concatenation of ``m`` samples that are all real
or all generated. Here packing keeps the task contract ``D: (B, *shape) -> (B,)``: the batch
of ``B`` rows is split into ``P = B/m`` packs, pack ``p`` holding rows
``p, p + P, …, p + (m−1)P`` (slot ``j`` is row ``jP + p``), and every row gets its pack's
logit. Rows are packed ``P`` apart, never side by side, because estimators lay out rows that
share a latent side by side (antithetic pairs at rows ``2i, 2i+1``, ``S`` draws of one row
at ``iS … iS+S−1``); packed together, such rows would judge each other. A batch that is not
a multiple of ``m`` is refused.

The per-sample cost under packing. With ``f(x)_b = ℓ(c(pack of b))`` (``ℓ`` the generator
loss), row ``b``'s cost is a function of ``x_b`` with its pack partners held fixed: the
gradient reaches ``x_b`` only through ``b``'s own slot of the pack (the partners' slots are
detached). Then ``mean_b ∇f(x)_b = (1/m)·∇ mean_p ℓ(c_p)``, the same for every estimator: a
score-function estimator, which sees ``f`` as a black box of ``x_b``, and pathwise, which
differentiates it, estimate one gradient, and its expectation over partners drawn from the
generator is ``(1/m)`` times the gradient of the PacGAN objective ``E ℓ(c(x_1, …, x_m))``.
PacGAN differentiates the pack's loss through all its members, ``m`` times this; Adam's
update does not change when the gradient is multiplied by a constant (up to its ε), so
training follows PacGAN's. Routing each slot's gradient takes ``m`` passes of the network
when the input carries a gradient (``x.requires_grad``, which ``torch.func.grad`` sets too;
a plain ``vmap`` hides it, and the stacked seeds call :meth:`stacked_forward` instead);
without one, a single pass gives the same values. The discriminator's
own loss, the mean over rows of each row's cross-entropy, is the mean over packs, as in
PacGAN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from gangrad.tasks._nets import Generator

__all__ = [
    "BATCH_NORMS",
    "INIT_STD",
    "BlocksBatchNorm",
    "Maxout",
    "PackedDiscriminator",
    "pacgan_discriminator",
    "pacgan_generator",
    "packed_input_dim",
]

INIT_STD = 0.02
G_HIDDEN, G_DEPTH = 400, 4
D_HIDDEN, D_DEPTH, D_PIECES = 200, 3, 5
BN_EPS = 1e-4
BN_MOMENTUM = 0.05  # Blocks' population update in PacGAN's code: m·0.05 + p·0.95
#: the generator's batch norm: batch statistics always, or PacGAN's (module doc)
BATCH_NORMS = ("batch", "pacgan")


class BlocksBatchNorm(nn.Module):
    """Batch norm over ``(N, C)`` as PacGAN's Blocks code computes it (module doc).

    Training mode: rows ``[kN/slots, (k+1)N/slots)`` form slot ``k``, normalised with its
    own mean ``μ_k`` and ``σ_k = √(var_k + ε)`` (``var`` without Bessel's correction),
    then scaled by ``weight`` and shifted by ``bias``; the running ``running_mean`` and
    ``running_std`` move to ``(1 − momentum)·p + momentum·mean_k(stat_k)`` at every
    training-mode forward outside ``torch.func`` transforms. Evaluation mode normalises
    with the running values. ``ValueError`` for a training batch not divisible into the
    slots.
    """

    def __init__(self, num_features: int, slots: int = 1, eps: float = BN_EPS,
                 momentum: float = BN_MOMENTUM) -> None:
        super().__init__()
        self.num_features, self.slots, self.eps, self.momentum = (num_features, slots, eps,
                                                                  momentum)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._normalise(x.unsqueeze(0), self.weight[None], self.bias[None],
                               self.running_mean[None], self.running_std[None])[0]

    def stacked_forward(self, x: torch.Tensor, stack) -> torch.Tensor:
        """:meth:`forward` for ``(S, N, C)``, each seed with its own statistics and running
        buffers (``(S, C)``, updated in place; see :mod:`gangrad.train.stacked`)."""
        return self._normalise(x, stack.param("weight"), stack.param("bias"),
                               stack.param("running_mean"), stack.param("running_std"))

    def _normalise(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                   running_mean: torch.Tensor, running_std: torch.Tensor) -> torch.Tensor:
        """``x (S, N, C)``, the rest ``(S, C)``: one code path for one seed and many, so
        that each seed's numbers are the same either way."""
        if not self.training:
            return (x - running_mean[:, None]) / running_std[:, None] * weight[:, None] + \
                bias[:, None]
        n = x.shape[1]
        if n % self.slots:
            raise ValueError(f"BlocksBatchNorm: a batch of {n} rows cannot be split into "
                             f"slots={self.slots} equal slots")
        blocks = x.unflatten(1, (self.slots, n // self.slots))  # S x slots x N/slots x C
        mean = blocks.mean(2, keepdim=True)
        std = ((blocks - mean).square().mean(2, keepdim=True) + self.eps).sqrt()
        if not _transformed(x):
            with torch.no_grad():
                keep = 1 - self.momentum
                running_mean.mul_(keep).add_(self.momentum * mean.mean(1)[:, 0])
                running_std.mul_(keep).add_(self.momentum * std.mean(1)[:, 0])
        out = (blocks - mean) / std * weight[:, None, None] + bias[:, None, None]
        return out.flatten(1, 2)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, slots={self.slots}, eps={self.eps}, "
                f"momentum={self.momentum}")


def _transformed(x: torch.Tensor) -> bool:
    """Whether ``x`` is inside a ``torch.func`` transform (vmap, grad), where an in-place
    update of a buffer would be refused or leak a transformed value."""
    return torch._C._functorch.is_functorch_wrapped_tensor(x)


class Maxout(nn.Module):
    """``Linear(in_features, out_features·pieces)``, then each unit's largest piece.

    Unit ``u`` takes pieces ``u·pieces … u·pieces + pieces − 1`` of the linear output.
    """

    def __init__(self, in_features: int, out_features: int, pieces: int) -> None:
        super().__init__()
        self.out_features, self.pieces = out_features, pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def _max(self, h: torch.Tensor) -> torch.Tensor:
        return h.unflatten(-1, (self.out_features, self.pieces)).max(-1).values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._max(self.linear(x))

    def stacked_forward(self, x: torch.Tensor, stack) -> torch.Tensor:
        """:meth:`forward` for ``(S, N, in_features)`` (see :mod:`gangrad.train.stacked`)."""
        return self._max(stack.child("linear")(x))


class PackedDiscriminator(nn.Module):
    """``x (B, *shape) -> logits (B,)``: ``net`` judges packs of ``pack`` rows (module doc).

    ``net`` maps ``(P, pack·prod(shape))`` to ``(P, 1)``. ``ValueError`` when ``B`` is not
    a multiple of ``pack``.
    """

    def __init__(self, net: nn.Module, in_shape: Sequence[int], pack: int) -> None:
        super().__init__()
        self.net, self.in_shape, self.pack = net, tuple(in_shape), pack

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits(x.flatten(1), self.net)

    def stacked_forward(self, x: torch.Tensor, stack) -> torch.Tensor:
        """:meth:`forward` for ``(S, N, *shape)``: each seed's rows packed on their own."""
        return self._logits(x.flatten(2), stack.child("net"))

    def _logits(self, x: torch.Tensor, net: Callable[[torch.Tensor], torch.Tensor]
                ) -> torch.Tensor:
        n, m = x.shape[-2], self.pack
        if n % m:
            raise ValueError(f"packed discriminator: a batch of {n} rows cannot be split into "
                             f"packs of pack={m}; give a batch that is a multiple of {m}")
        slots = x.unflatten(-2, (m, n // m)).unbind(-3)  # m x (..., P, d): slot j, pack p
        if m == 1 or not (torch.is_grad_enabled() and x.requires_grad):
            logits = net(torch.cat(slots, -1)).squeeze(-1)  # ..., P
            return torch.cat([logits] * m, -1)  # row jP + p: pack p's logit
        routed = [net(torch.cat([s if i == j else s.detach() for i, s in enumerate(slots)], -1)
                      ).squeeze(-1) for j in range(m)]  # slot j's rows: gradient via slot j
        return torch.cat(routed, -1)

    def extra_repr(self) -> str:
        return f"pack={self.pack}"


def _init(module: nn.Module) -> nn.Module:
    """Weights ``N(0, INIT_STD²)``, biases 0 (batch norm keeps scale 1, shift 0)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def pacgan_generator(latent_dim: int, param_shape: Sequence[int], batch_norm: str = "batch",
                     slots: int = 1) -> Generator:
    """PacGAN's generator: 4 × (``Linear`` 400 → batch norm → ReLU), then a linear head;
    ``batch_norm`` (:data:`BATCH_NORMS`) as in the module doc, ``slots`` the packs' slots."""
    if batch_norm not in BATCH_NORMS:
        raise ValueError(f"batch_norm must be one of {', '.join(BATCH_NORMS)}, got "
                         f"{batch_norm!r}")
    layers: list[nn.Module] = []
    width = latent_dim
    for _ in range(G_DEPTH):
        norm = (BlocksBatchNorm(G_HIDDEN, slots=slots) if batch_norm == "pacgan" else
                nn.BatchNorm1d(G_HIDDEN, eps=BN_EPS, track_running_stats=False))
        layers += [nn.Linear(width, G_HIDDEN, bias=False), norm, nn.ReLU()]
        width = G_HIDDEN
    return _init(Generator(nn.Sequential(*layers), G_HIDDEN, param_shape))


def pacgan_discriminator(in_dim: int) -> nn.Sequential:
    """PacGAN's discriminator body: 3 maxout layers (200 units, 5 pieces), ``Linear`` → 1."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(D_DEPTH):
        layers.append(Maxout(width, D_HIDDEN, D_PIECES))
        width = D_HIDDEN
    layers.append(nn.Linear(width, 1))
    return _init(nn.Sequential(*layers))


def packed_input_dim(in_shape: Sequence[int], pack: int) -> int:
    """The width of a pack: ``pack · prod(in_shape)``."""
    return pack * math.prod(in_shape)
