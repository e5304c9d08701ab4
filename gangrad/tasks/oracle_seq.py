"""SeqGAN's synthetic-text benchmark: sequences from a random oracle LSTM.

Data (Yu et al., 2017, "SeqGAN: sequence generative adversarial nets with policy
gradient", §5): an LSTM language model with random weights plays the real data. Its
embeddings (``vocab+1`` rows, the last one a begin-of-sequence token), LSTM weights and
biases and output layer, all of width ``hidden``, are drawn i.i.d. from ``N(0, 1)`` with a
generator seeded by ``oracle_seed``, as SeqGAN initialises its oracle; such large weights
saturate the gates and make a peaky, strongly structured distribution. Real sequences of
``length`` symbols are drawn ancestrally, ``x_t ~ softmax(W h_t + b)``. Space
``Discrete(length, vocab)``.

Scale. SeqGAN's oracle has vocabulary 5,000, length 20, embedding and hidden width 32, and
its real data is a fixed set of 10,000 oracle sequences; NLL-oracle is measured on 10,000
generated sequences. The options set each: ``vocab``, ``length``, ``hidden``, ``embed``
(the oracle's embedding width; ``None``: ``hidden``), ``train_size`` (``None``: every real
batch is fresh oracle samples; ``n``: a fixed training set of ``n`` sequences, drawn once
from a stream derived from ``oracle_seed``, which ``sample_real`` resamples) and
``test_size`` (held-out sequences for ``nll_test``). The number of generated sequences a
metric sees is the training setting ``eval_samples``. So SeqGAN's scale is::

    tasks.create("oracle_seq", vocab=5000, length=20, hidden=32, embed=32, train_size=10000)

and, in a suite, ``params = {vocab = 5000, train_size = 10000}`` with
``[train] eval_samples = 10000``. The defaults (``vocab=100``, fresh samples) keep one-hot
tensors small.

SeqGAN's own oracle. The oracle drawn here is another instance of the same law: its entropy
rate is 6.04 nats per token at SeqGAN's scale, against 5.76 for the oracle SeqGAN released
(``save/target_params_py3.pkl`` of github.com/LantaoYu/SeqGAN), and NLL-oracle depends on
the instance. That file carries no licence to redistribute, so gangrad does not ship it; a
user who has it passes its path as ``oracle_file``::

    tasks.create("oracle_seq", vocab=5000, hidden=32, train_size=10000,
                 oracle_file="target_params_py3.pkl")

It is read by a numpy-only unpickler and mapped exactly onto :class:`OracleLSTM`
(:mod:`gangrad.tasks._seqgan_oracle` gives the equations and the array order); ``vocab``,
``hidden`` and ``embed`` must match the file, and ``oracle_seed`` then seeds only the
training and held-out sets.

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

SeqGAN's own generator, an autoregressive LSTM, is :class:`SeqGenerator`; it is not the
task's default generator, because a generator that feeds its samples back needs its
sampling noise given (see :mod:`gangrad.train.autoregressive`).

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
from gangrad.tasks import _plots, _seqgan_oracle
from gangrad.tasks._base import AbstractTask, Metric, check_samples
from gangrad.tasks._nets import leaky_relu, mlp_generator

__all__ = ["OracleLSTM", "OracleSeq", "SeqGenerator", "inverse_cdf", "inverse_cdf_at"]

TEST_SIZE = 1000


class OracleLSTM:
    """A fixed LSTM language model, weights ``~ N(0, 1)`` from ``torch.Generator(seed)``;
    token embeddings of width ``embed`` (default ``hidden``). :meth:`from_seqgan` loads
    SeqGAN's released oracle instead."""

    def __init__(self, vocab: int, hidden: int, seed: int, embed: int | None = None) -> None:
        g = torch.Generator().manual_seed(seed)
        embed = hidden if embed is None else embed
        self.vocab, self.hidden = vocab, hidden
        self.embed = torch.randn(vocab + 1, embed, generator=g)  # row `vocab` is BOS
        self.w_ih = torch.randn(4 * hidden, embed, generator=g)
        self.w_hh = torch.randn(4 * hidden, hidden, generator=g)
        self.bias = torch.randn(4 * hidden, generator=g)
        self.w_out = torch.randn(vocab, hidden, generator=g)
        self.b_out = torch.randn(vocab, generator=g)

    @classmethod
    def from_seqgan(cls, path: str | Path) -> OracleLSTM:
        """SeqGAN's released oracle (``save/target_params_py3.pkl`` of
        github.com/LantaoYu/SeqGAN), read with a numpy-only unpickler and mapped exactly
        onto this LSTM (:mod:`gangrad.tasks._seqgan_oracle`)."""
        weights = _seqgan_oracle.oracle_weights(_seqgan_oracle.load_arrays(path))
        oracle = cls.__new__(cls)
        oracle.vocab, oracle.hidden = weights["w_out"].shape
        for name, value in weights.items():
            setattr(oracle, name, value)
        return oracle

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

    def sample(self, n: int, length: int, generator: torch.Generator | None = None, *,
               method: str = "multinomial"):
        """Ancestral samples, symbols ``(n, length)``. Both methods draw exactly from the
        model: ``"multinomial"`` (``torch.multinomial``, the task's own streams) or
        ``"inverse_cdf"`` (one uniform per symbol, ~20× faster for 5,000 symbols)."""
        draw = {"multinomial": lambda p: torch.multinomial(p, 1, generator=generator)[:, 0],
                "inverse_cdf": lambda p: inverse_cdf(p, generator)}[
            _validate.choice("OracleLSTM", "method", method, ("multinomial", "inverse_cdf"))]
        token, h, c = self._start(n)
        out = []
        for _ in range(length):
            h, c, log_p = self._step(token, h, c)
            token = draw(log_p.exp())
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


def inverse_cdf(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw per row of ``probs (n, V)`` (rows summing to one up to rounding), ``(n,)``:
    the first ``i`` with ``F_i > u·F_V``, ``F`` the cumulative sums, ``u ~ U[0, 1)``."""
    u = torch.rand(probs.shape[0], generator=generator, device=probs.device)
    return inverse_cdf_at(probs, u)


def inverse_cdf_at(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """:func:`inverse_cdf` with the uniforms given, ``u (n,)``."""
    cdf = probs.cumsum(-1)  # n x V
    at = (u.to(cdf.dtype) * cdf[:, -1]).unsqueeze(1)
    return torch.searchsorted(cdf, at, right=True)[:, 0].clamp_max(probs.shape[1] - 1)


def _stream(seed: int, purpose: int) -> torch.Generator:
    """A CPU generator whose seed derives from ``(seed, purpose)`` (differs from ``seed``)."""
    derived = int(np.random.SeedSequence([seed, purpose]).generate_state(1)[0])
    return torch.Generator().manual_seed(derived)


class SeqGenerator(nn.Module):
    r"""SeqGAN's generator: an autoregressive LSTM language model (Yu et al., 2017, §5).

    .. math::  p_θ(x) = \prod_t \operatorname{softmax}(W h_t + b)[x_t],\qquad
               h_t, c_t = \operatorname{LSTM}(e(x_{t-1}), h_{t-1}, c_{t-1}),

    with ``x_0`` a begin-of-sequence token and ``h_0 = c_0 = 0``. As in SeqGAN's released
    generator, one bias per gate and every weight and bias drawn from ``N(0, init_std²)``
    (``init_std = 0.1``); SeqGAN's sizes are ``embed = hidden = 32``.

    - :meth:`log_prob` is the teacher-forced ``log p_θ(x)`` (MLE pre-training);
    - :meth:`sample` draws ``n`` sequences ancestrally;
    - ``G(noise)``, with uniforms ``noise (B, length, vocab)``, runs the model on the
      Gumbel-max path ``y_t = argmax(l_t + g_t)``, ``g = -log(-log u)``, and returns the
      logits ``l (B, length, vocab)`` along it. An estimator that samples by Gumbel-max from
      the same uniforms draws exactly ``y``, and ``Σ_t log softmax(l_t)[y_t] = log p_θ(y)``:
      this is how gangrad's estimators train an autoregressive generator
      (:mod:`gangrad.train.autoregressive`).
    """

    def __init__(self, vocab: int, length: int, embed: int = 32, hidden: int = 32,
                 init_std: float = 0.1) -> None:
        super().__init__()
        owner = type(self).__name__
        self.vocab = _validate.integer(owner, "vocab", vocab, 2)
        self.length = _validate.integer(owner, "length", length, 1)
        self.hidden = _validate.integer(owner, "hidden", hidden, 1)
        _validate.integer(owner, "embed", embed, 1)
        _validate.positive(owner, "init_std", init_std)

        def weight(*shape: int) -> nn.Parameter:
            return nn.Parameter(init_std * torch.randn(*shape))

        self.embed = weight(vocab + 1, embed)  # row `vocab` is BOS
        self.w_ih = weight(4 * hidden, embed)
        self.w_hh = weight(4 * hidden, hidden)
        self.bias = weight(4 * hidden)
        self.w_out = weight(vocab, hidden)
        self.b_out = weight(vocab)

    def _cell(self, token: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """From the previous ``token (n,)``: new ``h, c``."""
        gates = self.embed[token] @ self.w_ih.T + h @ self.w_hh.T + self.bias  # n x 4H
        i, f, g, o = gates.chunk(4, dim=-1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c.tanh(), c

    def _step(self, token: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """From the previous ``token (n,)``: new ``h, c`` and the logits ``(n, V)``."""
        h, c = self._cell(token, h, c)
        return h, c, h @ self.w_out.T + self.b_out

    def _start(self, n: int):
        zeros = self.bias.new_zeros(n, self.hidden)
        return torch.full((n,), self.vocab, device=self.bias.device), zeros, zeros

    def log_prob(self, symbols: torch.Tensor) -> torch.Tensor:
        """Teacher-forced ``log p_θ(x)`` of symbols ``(n, length)``, shape ``(n,)``."""
        if symbols.dim() != 2 or symbols.shape[1] != self.length:
            raise ValueError(f"symbols must have shape (n, {self.length}), got "
                             f"{tuple(symbols.shape)}")
        token, h, c = self._start(symbols.shape[0])
        total = 0
        for t in range(self.length):
            h, c, logits = self._step(token, h, c)
            token = symbols[:, t]
            total = total + logits.log_softmax(-1).gather(1, token[:, None])[:, 0]
        return total

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` ancestral samples, symbols ``(n, length)``."""
        token, h, c = self._start(n)
        out = []
        for _ in range(self.length):
            h, c, logits = self._step(token, h, c)
            token = inverse_cdf(logits.softmax(-1), generator)
            out.append(token)
        return torch.stack(out, 1)

    @torch.no_grad()
    def complete(self, symbols: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
        """SeqGAN's roll-outs (Yu et al., 2017, Eq. 4): every prefix of ``symbols (M, L)``
        completed by this model, ``(M, L-1, L)``. Completion ``t`` keeps the first ``t``
        symbols and draws position ``s ≥ t`` from ``p_θ(· | its prefix)`` by inverse CDF from
        ``uniforms[:, t-1, s]`` (``uniforms (M, L-1, L)``). The ``L-1`` completions run in
        lockstep, ``L`` steps in all; at step ``s`` only those with ``t ≤ s`` need logits.
        The :data:`~gangrad.estimators.Rollout` that ``seqgan_rollout`` takes."""
        M, L = symbols.shape
        if L != self.length or tuple(uniforms.shape) != (M, L - 1, L):
            raise ValueError(f"complete: symbols (M, {self.length}) and uniforms (M, "
                             f"{self.length - 1}, {self.length}), got {tuple(symbols.shape)} "
                             f"and {tuple(uniforms.shape)}")
        given = symbols.repeat(L - 1, 1)  # row (t-1)*M + m: completion t of sequence m
        u = uniforms.transpose(0, 1).reshape((L - 1) * M, L)
        token, h, c = self._start(given.shape[0])
        out = []
        for s in range(L):
            h, c = self._cell(token, h, c)
            drawing = s * M  # the rows with t <= s, first in this order
            drawn = inverse_cdf_at((h[:drawing] @ self.w_out.T + self.b_out).softmax(-1),
                                   u[:drawing, s])
            token = torch.cat([drawn, given[drawing:, s]])
            out.append(token)
        return torch.stack(out, 1).reshape(L - 1, M, L).transpose(0, 1)

    def path(self, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, length, vocab)`` along the Gumbel-max path of uniforms ``noise``
        ``(B, length, vocab)``, and the path's symbols ``(B, length)``."""
        if noise.dim() != 3 or tuple(noise.shape[1:]) != (self.length, self.vocab):
            raise ValueError(f"noise must be uniforms of shape (B, {self.length}, "
                             f"{self.vocab}), got {tuple(noise.shape)}")
        gumbel = -torch.log(-torch.log(noise))
        token, h, c = self._start(noise.shape[0])
        logits, symbols = [], []
        for t in range(self.length):
            h, c, step = self._step(token, h, c)
            token = (step.detach() + gumbel[:, t]).argmax(-1)
            logits.append(step)
            symbols.append(token)
        return torch.stack(logits, 1), torch.stack(symbols, 1)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.path(noise)[0]


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
                 oracle_seed: int = 0, embed: int | None = None, train_size: int | None = None,
                 test_size: int = TEST_SIZE, oracle_file: str | None = None) -> None:
        owner = type(self).__name__
        _validate.integer(owner, "vocab", vocab, 2)
        _validate.integer(owner, "length", length, 1)
        _validate.integer(owner, "hidden", hidden, 1)
        _validate.integer(owner, "oracle_seed", oracle_seed, 0)
        if embed is not None:
            _validate.integer(owner, "embed", embed, 1)
        if train_size is not None:
            _validate.integer(owner, "train_size", train_size, 1)
        _validate.integer(owner, "test_size", test_size, 1)
        if oracle_file is not None:
            oracle = OracleLSTM.from_seqgan(oracle_file)
            sizes = {"vocab": (vocab, oracle.vocab), "hidden": (hidden, oracle.hidden),
                     "embed": (hidden if embed is None else embed, oracle.embed.shape[1])}
            wrong = [f"{k}={theirs} (got {ours})" for k, (ours, theirs) in sizes.items()
                     if ours != theirs]
            if wrong:
                raise ValueError(f"{owner}: oracle_file {oracle_file!r} holds an oracle of "
                                 f"vocabulary {oracle.vocab}, hidden width {oracle.hidden} "
                                 f"and embedding width {oracle.embed.shape[1]}; pass "
                                 + ", ".join(wrong))
        else:
            oracle = OracleLSTM(vocab, hidden, oracle_seed, embed)
        self.vocab = vocab
        self.length = length
        self.hidden = hidden
        self.oracle_seed = oracle_seed
        self.embed = embed
        self.train_size = train_size
        self.test_size = test_size
        self.oracle_file = oracle_file
        self.space = Discrete(length, vocab)
        self.latent_dim = 32
        self.oracle = oracle
        # The held-out and training sets' streams derive from, and differ from, the
        # oracle's seed.
        self.test_symbols = self.oracle.sample(test_size, length, _stream(oracle_seed, 1))
        self.train_symbols = (None if train_size is None else  # N x L
                              self.oracle.sample(train_size, length, _stream(oracle_seed, 2),
                                                 method="inverse_cdf"))

    def sample_real(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fresh oracle samples, or, with ``train_size``, ``n`` draws with replacement from
        the fixed training set."""
        if self.train_symbols is None:
            symbols = self.oracle.sample(n, self.length, generator)
        else:
            symbols = self.train_symbols[torch.randint(self.train_size, (n,),
                                                       generator=generator)]
        return nn.functional.one_hot(symbols, self.vocab).float()  # n x L x V

    def nll_oracle(self, symbols: torch.Tensor) -> torch.Tensor:
        """``-log p_oracle(x)`` per sequence of symbols ``(n, length)``, shape ``(n,)``: the
        per-sample values whose mean :meth:`evaluate` reports, without one-hot tensors."""
        if symbols.dim() != 2 or symbols.shape[1] != self.length:
            raise ValueError(f"symbols must have shape (n, {self.length}), got "
                             f"{tuple(symbols.shape)}")
        if symbols.dtype.is_floating_point or symbols.min() < 0 or symbols.max() >= self.vocab:
            raise ValueError(f"symbols must be integers in [0, {self.vocab})")
        return -self.oracle.log_prob(symbols.cpu())

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
