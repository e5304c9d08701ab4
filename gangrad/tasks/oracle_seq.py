"""SeqGAN's synthetic-text benchmark: sequences from a random oracle LSTM.

Data (Yu et al., 2017, "SeqGAN: sequence generative adversarial nets with policy
gradient", §5): an LSTM language model with random weights plays the real data. Its
embeddings (``vocab+1`` rows, the last one a begin-of-sequence token), LSTM weights and
biases and output layer, all of width ``hidden``, are drawn i.i.d. from ``N(0, 1)`` with a
generator seeded by ``oracle_seed``, as SeqGAN initialises its oracle; such large weights
saturate the gates and make a peaky, strongly structured distribution. Real sequences of
``length`` symbols are drawn ancestrally, ``x_t ~ softmax(W h_t + b)``. Space
``Discrete(length, vocab)``. SeqGAN used vocabulary 5,000 and hidden 32; the default
``vocab=100`` keeps one-hot tensors small.

Generator: MLP ``z (32) → 2×256 ReLU`` and a linear head to ``prod(param_shape)``, e.g.
logits ``(length, vocab)``. It is *not* autoregressive: the symbols are independent given
``z``, ``p_G(x | z) = Π_t softmax(G(z)_t)[x_t]``, and all dependence between positions comes
through ``z``. Discriminator: embedding by matmul of the (possibly relaxed) one-hot vectors
with a ``vocab × 32`` matrix, two width-3 convolutions (64 channels, LeakyReLU(0.2)),
max-over-time pooling (as in SeqGAN's CNN discriminator) and a linear logit.

Metrics, both in nats per sequence (sum over the ``length`` positions):

- ``nll_oracle`` (:meth:`OracleSeq.evaluate`): ``-mean_i log p_oracle(x_i)`` of the
  generated samples, SeqGAN's quality measure (argmax over the last axis for soft vectors).
  A generator that emits the oracle's single most likely sequence scores well on it.
- ``nll_test`` (:meth:`OracleSeq.evaluate_generator`): the generator's NLL of a fixed set
  of 1,000 held-out oracle samples, ``-mean_i log((1/K) Σ_k p_G(x_i | z_k))`` with ``K=256``
  latent draws. By Jensen's inequality its expectation is at least the true
  ``-log p_G(x_i)``: a stochastic upper bound. It punishes missing modes, which
  ``nll_oracle`` cannot see (Lu et al., 2018, "Texygen", report both for this reason).

Training: batch 64, Adam learning rates 1e-3 for G and D, 3000 steps, one D step per G
step. For orientation, with the defaults the oracle's entropy is ≈ 55 nats per sequence,
uniform tokens score ``nll_oracle`` ≈ 141 and a uniform generator ``nll_test`` =
``length·log(vocab)`` ≈ 92; straight-through Gumbel-softmax training with these settings
brings ``nll_oracle`` to ≈ 110.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gangrad import _validate
from gangrad.spaces import Discrete
from gangrad.tasks import _plots
from gangrad.tasks._base import AbstractTask, Metric, check_samples
from gangrad.tasks._nets import leaky_relu, mlp_generator

__all__ = ["OracleLSTM", "OracleSeq"]

TEST_SIZE = 1000


class OracleLSTM:
    """A fixed LSTM language model, weights ``~ N(0, 1)`` from ``torch.Generator(seed)``."""

    def __init__(self, vocab: int, hidden: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.vocab, self.hidden = vocab, hidden
        self.embed = torch.randn(vocab + 1, hidden, generator=g)  # row `vocab` is BOS
        self.w_ih = torch.randn(4 * hidden, hidden, generator=g)
        self.w_hh = torch.randn(4 * hidden, hidden, generator=g)
        self.bias = torch.randn(4 * hidden, generator=g)
        self.w_out = torch.randn(vocab, hidden, generator=g)
        self.b_out = torch.randn(vocab, generator=g)

    def _step(self, token: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """One LSTM step from the previous ``token (n,)``: new ``h, c`` and log-probs ``(n, V)``."""
        gates = self.embed[token] @ self.w_ih.T + h @ self.w_hh.T + self.bias  # n x 4H
        i, f, g, o = gates.chunk(4, dim=-1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        return h, c, torch.log_softmax(h @ self.w_out.T + self.b_out, dim=-1)

    def _start(self, n: int):
        zeros = torch.zeros(n, self.hidden)
        return torch.full((n,), self.vocab), zeros, zeros.clone()

    def sample(self, n: int, length: int, generator: torch.Generator | None = None):
        """Ancestral samples, symbols ``(n, length)``."""
        token, h, c = self._start(n)
        out = []
        for _ in range(length):
            h, c, log_p = self._step(token, h, c)
            token = torch.multinomial(log_p.exp(), 1, generator=generator)[:, 0]
            out.append(token)
        return torch.stack(out, 1)

    def log_prob(self, symbols: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` of symbols ``(n, length)``, shape ``(n,)``."""
        token, h, c = self._start(symbols.shape[0])
        total = torch.zeros(symbols.shape[0])
        for t in range(symbols.shape[1]):
            h, c, log_p = self._step(token, h, c)
            token = symbols[:, t]
            total += log_p.gather(1, token[:, None])[:, 0]
        return total


class _ConvDiscriminator(nn.Module):
    """``x (B, L, V) -> logits (B,)``: matmul embedding, two convolutions, max over time."""

    def __init__(self, vocab: int, embed: int = 32, channels: int = 64) -> None:
        super().__init__()
        self.embed = nn.Linear(vocab, embed, bias=False)
        self.conv = nn.Sequential(nn.Conv1d(embed, channels, 3, padding=1), leaky_relu(),
                                  nn.Conv1d(channels, channels, 3, padding=1), leaky_relu())
        self.out = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.embed(x).transpose(1, 2))  # B x channels x L
        return self.out(h.amax(dim=2)).squeeze(-1)


class OracleSeq(AbstractTask):
    """Sequences from a random ``N(0, 1)`` oracle LSTM (SeqGAN); see the module doc."""

    name = "oracle_seq"
    description = "SeqGAN's synthetic text: samples of a random oracle LSTM"
    metrics = {"nll_oracle": Metric(False, margin=0.05, low=0.0)}
    generator_metrics = {"nll_test": Metric(False, margin=0.05, low=0.0)}
    exact_reference = None
    training_defaults = {"batch_size": 64, "lr_g": 1e-3, "lr_d": 1e-3, "steps": 3000,
                         "d_steps": 1}

    def __init__(self, vocab: int = 100, length: int = 20, hidden: int = 32,
                 oracle_seed: int = 0) -> None:
        owner = type(self).__name__
        _validate.integer(owner, "vocab", vocab, 2)
        _validate.integer(owner, "length", length, 1)
        _validate.integer(owner, "hidden", hidden, 1)
        _validate.integer(owner, "oracle_seed", oracle_seed, 0)
        self.vocab = vocab
        self.length = length
        self.hidden = hidden
        self.oracle_seed = oracle_seed
        self.space = Discrete(length, vocab)
        self.latent_dim = 32
        self.oracle = OracleLSTM(vocab, hidden, oracle_seed)
        # The held-out set's stream is derived from, and differs from, the oracle's seed.
        test_seed = int(np.random.SeedSequence([oracle_seed, 1]).generate_state(1)[0])
        test_rng = torch.Generator().manual_seed(test_seed)
        self.test_symbols = self.oracle.sample(TEST_SIZE, length, test_rng)  # N x L

    def sample_real(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        symbols = self.oracle.sample(n, self.length, generator)
        return nn.functional.one_hot(symbols, self.vocab).float()  # n x L x V

    def make_generator(self, param_shape: tuple[int, ...]) -> nn.Module:
        return mlp_generator(self.latent_dim, 256, 2, param_shape, nn.ReLU)

    def make_discriminator(self) -> nn.Module:
        return _ConvDiscriminator(self.vocab)

    def evaluate(self, x: torch.Tensor) -> dict[str, float]:
        symbols = check_samples(self.space, x).argmax(-1)
        return {"nll_oracle": float(-self.oracle.log_prob(symbols).mean())}

    def evaluate_generator(self, G: nn.Module, param_kind: str,
                           generator: torch.Generator | None = None, *,
                           samples: int = 256) -> dict[str, float]:
        """``nll_test``: held-out NLL under ``p_G(x) = E_z p_G(x | z)``, ``samples`` draws of z.

        Only defined for ``param_kind == "logits"`` (G's head is per-position logits).
        """
        if param_kind != "logits":
            raise ValueError(f"nll_test needs a generator of logits, got param_kind={param_kind!r}")
        _validate.integer(type(self).__name__, "samples", samples, 1)
        device = next((p.device for p in G.parameters()), torch.device("cpu"))
        positions = torch.arange(self.length)
        ll = []  # per chunk of z: k x N, log p_G(x_i | z_k)
        with torch.no_grad():
            for z in self.sample_latent(samples, generator).split(64):
                logits = G(z.to(device))
                if tuple(logits.shape[1:]) != self.space.shape:
                    raise ValueError(f"G must emit logits of shape (K, {self.length}, "
                                     f"{self.vocab}), got {tuple(logits.shape)}")
                log_p = torch.log_softmax(logits.double(), dim=-1).cpu()  # k x L x V
                ll.append(log_p[:, positions, self.test_symbols].sum(-1))
        nll = math.log(samples) - torch.logsumexp(torch.cat(ll), dim=0)  # N
        return {"nll_test": float(nll.mean())}

    def decode(self, x: torch.Tensor) -> list[str]:
        """Samples ``x (n, L, V)`` as token strings ``"t17 t3 ..."``."""
        symbols = check_samples(self.space, x).argmax(-1).tolist()
        return [" ".join(f"t{s}" for s in row) for row in symbols]

    def render(self, x: torch.Tensor, path: str | Path) -> Path:
        x = check_samples(self.space, x)[:16]
        nll = -self.oracle.log_prob(x.argmax(-1))
        lines = [f"{v:7.1f}  {s}" for v, s in zip(nll.tolist(), self.decode(x), strict=True)]
        fig = _plots.new_figure(0.075 * max(len(s) for s in lines) + 0.5, 0.2 * len(lines) + 0.4)
        ax = fig.axes[0]
        ax.set_axis_off()
        ax.text(0, 1, "oracle NLL  sequence\n" + "\n".join(lines), family="monospace",
                fontsize=9, va="top", ha="left", transform=ax.transAxes)
        return _plots.save(fig, path)
