"""Autoregressive generators (SeqGAN's LSTM, :class:`gangrad.tasks.oracle_seq.SeqGenerator`):
MLE pre-training (:func:`pretrain_mle`) and GAN training through the one GAN step
(:func:`train_autoregressive`), starting from a given generator state.

An autoregressive generator feeds every symbol it emits back into its next step, so its
logits at position ``t`` depend on the symbols before ``t``; gangrad's estimators, given
logits ``(B, L, V)``, draw every position at once. The two meet through the noise. The
discrete estimators sample by Gumbel-max from uniforms ``u`` of the logits' shape,
``x_t = argmax(l_t + g_t)``, ``g = -log(-log u)``. Here ``u`` is drawn first, the generator
runs on the path ``y_t = argmax(l_t + g_t)`` its own logits and ``u`` give, and the
estimator then receives the logits ``l`` along that path *and the same* ``u``: its sample
is ``y`` exactly (checked), and ``Σ_t log softmax(l_t)[y_t] = log p_θ(y)``, the sequence's
log-probability under the autoregressive model. What each estimator's gradient is, then:

- ``score_function`` (``samples=1``): ``(f(y) − b) ∇_θ log p_θ(y)``, REINFORCE per
  sequence with one reward for the whole sequence; unbiased for ``∇ E_{p_θ} f``.
- ``seqgan_rollout``: SeqGAN's (Yu et al., 2017) REINFORCE that values every prefix
  ``y_{1:t}`` by ``N`` Monte Carlo completions. Its noise is the ``(B, L, V)`` uniforms of
  the path followed by one uniform per roll-out symbol; the roll-outs come from a roll-out
  network, a copy of G moved to ``β ← (1 − r)·β + r·θ`` after each G step (``r`` the
  estimator's ``update_rate``; ``r = 1``: G itself), through
  :meth:`~gangrad.tasks.oracle_seq.SeqGenerator.complete`. Unbiased for ``∇ E_{p_θ} f``
  when ``r = 1``.
- ``straight_through``, ``st_gumbel``, ``gumbel_softmax``: ``f`` (the discriminator) sees
  the relaxed or straight-through vectors at every position, but the symbol fed back to
  the LSTM is the hard ``y_{t-1}``: no gradient flows through the feedback (Kusner &
  Hernández-Lobato, 2016, feed the relaxed vector back instead).

Estimators whose noise does not start with one uniform per logit (one draw per row) or that
learn state during use are refused by name.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import torch
from torch import nn

from gangrad.estimators import AbstractEstimator, Rollout
from gangrad.spaces import Discrete
from gangrad.tasks import AbstractTask
from gangrad.train.config import TrainConfig, config_dict, prepare
from gangrad.train.loop import finite, loss_diverged, unsound
from gangrad.train.step import Diverged, OneSeed, TrainState, discriminator_step, gan_step

__all__ = ["AutoregressiveSeed", "pretrain_mle", "train_autoregressive"]

Evaluate = Callable[[torch.Tensor], Mapping[str, float]]


def pretrain_mle(G: nn.Module, symbols: torch.Tensor, *, epochs: int, batch_size: int = 64,
                 lr: float = 0.01, clip: float = 5.0, seed: int = 0,
                 progress: Callable[[int, float], None] | None = None) -> list[float]:
    """Maximum-likelihood (teacher-forced) training of ``G`` on ``symbols (N, L)``, in place.

    Minimises the per-token NLL ``-Σ_{i,t} log p_θ(x_{i,t} | x_{i,<t}) / (B·L)`` of each
    batch with Adam (``lr``), gradients clipped to global norm ``clip``: SeqGAN's
    pre-training (Adam 0.01, clip 5, batch 64, 120 epochs). Each epoch visits the
    ``N`` sequences once in an order drawn from ``seed``; a last partial batch is kept.
    ``G`` needs a ``log_prob(symbols) -> (n,)``. Returns each epoch's mean batch loss;
    ``progress(epoch, loss)`` after each epoch.
    """
    if epochs < 0 or batch_size < 1 or not lr > 0 or not clip > 0:
        raise ValueError(f"pretrain_mle: need epochs >= 0, batch_size >= 1, lr > 0 and "
                         f"clip > 0; got {epochs}, {batch_size}, {lr}, {clip}")
    if symbols.dim() != 2 or len(symbols) < 1:
        raise ValueError(f"pretrain_mle: symbols must have shape (N, L), N >= 1; got "
                         f"{tuple(symbols.shape)}")
    device = next(G.parameters()).device
    opt = torch.optim.Adam(G.parameters(), lr=lr)
    order_rng = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(epochs):
        total, batches = 0.0, 0
        for rows in torch.randperm(len(symbols), generator=order_rng).split(batch_size):
            x = symbols[rows].to(device)  # B x L
            loss = -G.log_prob(x).sum() / x.numel()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(G.parameters(), clip)
            opt.step()
            total, batches = total + float(loss.detach()), batches + 1
        losses.append(total / batches)
        if progress is not None:
            progress(epoch + 1, losses[-1])
    return losses


class AutoregressiveSeed(OneSeed):
    """:class:`~gangrad.train.step.OneSeed` for an autoregressive G: the latents are the
    estimator's uniforms, G runs on their Gumbel-max path, and the estimator is handed the
    same uniforms (see the module doc)."""

    def __init__(self, state: TrainState, task: AbstractTask, cfg: TrainConfig) -> None:
        super().__init__(state, task, cfg)
        self._noise_now: torch.Tensor | None = None
        self._checked = False
        rate = getattr(state.estimator, "update_rate", 1.0)
        # SeqGAN's roll-out network (Algorithm 1: β ← θ before adversarial training)
        self._rollout_net = (None if not state.estimator.takes_rollout else state.G
                             if rate == 1.0 else copy.deepcopy(state.G).requires_grad_(False))

    def latents(self) -> torch.Tensor:
        template = torch.empty(self.cfg.batch_size, *self.task.space.shape, device=self.device)
        est = self.state.estimator
        u = est.noise(template, space=self.task.space, generator=self.state.rng)
        per_row = None if u is None else u.numel() // template.shape[0]
        if u is None or per_row < template[0].numel() or (
                per_row != template[0].numel() and not est.takes_rollout):
            raise ValueError(f"estimator {est.key!r} does not draw one "
                             "uniform per logit; an autoregressive generator needs Gumbel-max "
                             "sampling from uniforms of the logits' shape")
        return u

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        length, vocab = self.task.space.shape
        logits, path = self.state.G.path(z.reshape(z.shape[0], length, -1)[..., :vocab])
        self._noise_now = z
        if not self._checked:  # the estimator's own sample must be the generator's path
            x = self.state.estimator.sample(logits.detach(), noise=z, space=self.task.space)
            if not torch.equal(x.argmax(-1), path):
                raise ValueError(f"estimator {self.state.estimator.key!r} does not sample "
                                 "by Gumbel-max from its uniforms; it cannot train an "
                                 "autoregressive generator")
            self._checked = True
        return logits

    def _noise(self, params: torch.Tensor) -> torch.Tensor:
        return self._noise_now

    def rollout(self) -> Rollout | None:
        return None if self._rollout_net is None else self._rollout_net.complete

    def advance(self) -> None:
        super().advance()
        net = self._rollout_net
        if net is not None and net is not self.state.G:  # β ← (1 − r)·β + r·θ
            with torch.no_grad():
                for b, p in zip(net.parameters(), self.state.G.parameters(), strict=True):
                    b.lerp_(p, self.state.estimator.update_rate)


def train_autoregressive(task: AbstractTask | str, estimator: AbstractEstimator | str,
                         generator: nn.Module, *,
                         estimator_hyper: Mapping[str, Any] | None = None,
                         config: TrainConfig | None = None, d_warmup: int = 0,
                         evaluate: Evaluate | None = None,
                         progress: Callable[[dict[str, Any]], None] | None = None,
                         **overrides: Any) -> tuple[pd.DataFrame, nn.Module]:
    """GAN training of an autoregressive ``generator`` on a discrete ``task``, starting from
    its current weights (e.g. after :func:`pretrain_mle`; ``generator`` itself is not
    changed), with :func:`~gangrad.train.gan_step` and ``estimator`` for the G step.

    ``generator`` needs ``path(noise) -> (logits, symbols)`` and ``sample(n, generator)``
    (as :class:`~gangrad.tasks.oracle_seq.SeqGenerator`). D is the task's, initialised from
    ``config.seed``, and first trained alone for ``d_warmup`` steps against the initial G
    (SeqGAN pre-trains its discriminator). ``overrides`` are :class:`TrainConfig` fields.
    Every ``eval_every`` steps, ``eval_samples`` sequences are drawn and scored by
    ``evaluate(symbols)`` (default: ``task.evaluate`` of their one-hot vectors).

    Returns the history (``step``, ``elapsed_s``, losses, metrics; ``attrs`` as
    :func:`gangrad.train.train`'s) and the trained generator. A run whose losses break
    the divergence rule (:mod:`gangrad.train.loop`) or whose generator stops being finite
    ends with ``attrs["status"] == "diverged"``.
    """
    task, estimator, cfg, _ = prepare(task, estimator, estimator_hyper, config, overrides,
                                      (), None)
    if not isinstance(task.space, Discrete):
        raise ValueError(f"train_autoregressive needs a discrete task, got {task.space}")
    if estimator.learns:
        raise ValueError(f"estimator {estimator.key!r} learns state from fresh noise; an "
                         "autoregressive generator needs every draw on its own path")
    if (getattr(generator, "length", None), getattr(generator, "vocab", None)) != \
            task.space.shape:
        raise ValueError(f"generator must emit (length, vocab) = {task.space.shape}")
    if d_warmup < 0:
        raise ValueError(f"d_warmup must be an integer >= 0, got {d_warmup}")
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    D = task.make_discriminator().to(device)
    G = copy.deepcopy(generator).to(device)
    betas = (cfg.beta1, cfg.beta2)
    state = TrainState(G=G, D=D, opt_g=torch.optim.Adam(G.parameters(), cfg.lr_g, betas=betas),
                       opt_d=torch.optim.Adam(D.parameters(), cfg.lr_d, betas=betas),
                       estimator=estimator, rng=torch.Generator(device).manual_seed(cfg.seed),
                       data_rng=torch.Generator().manual_seed(cfg.seed + 1_000_003),
                       noise_rng=torch.Generator(device).manual_seed(cfg.seed + 2_000_003))
    seeds = AutoregressiveSeed(state, task, cfg)
    score = evaluate or (lambda symbols: task.evaluate(
        nn.functional.one_hot(symbols, task.space.classes).float()))
    rows: list[dict[str, Any]] = []
    status, diverged_at, pending = "ok", None, []
    start = time.perf_counter()

    def record(step: int) -> None:
        row: dict[str, Any] = {"step": step, "elapsed_s": time.perf_counter() - start}
        for name in pending[0] if pending else ():
            values = torch.stack([p[name] for p in pending]).float().cpu()
            bad = unsound(values).nonzero()
            if len(bad):  # the divergence rule of gangrad.train.loop
                raise loss_diverged(step, name, float(values[int(bad[0])]))
            row[name] = float(values.mean())
        pending.clear()
        if not finite(G):
            raise Diverged(step, "a generator parameter")
        rng = torch.Generator(device).manual_seed(cfg.seed + 11)
        row.update(score(G.sample(cfg.eval_samples, rng).cpu()))
        rows.append(row)
        if progress is not None:
            progress(row)

    try:
        for _ in range(d_warmup):
            with torch.no_grad():
                fake = seeds.fakes(seeds.generate(seeds.latents()))
            discriminator_step(D, state.opt_d, seeds.real(fake), fake)
        record(0)
        while state.step < cfg.steps:
            pending.append(gan_step(seeds))
            if state.step % cfg.eval_every == 0 or state.step == cfg.steps:
                record(state.step)
    except Diverged as exc:
        status, diverged_at = "diverged", exc.step
    history = pd.DataFrame(rows)
    history.attrs.update({"status": status, "diverged_at": diverged_at, "task": task.name,
                          "estimator": estimator.key,
                          "estimator_hyper": estimator.hyperparameters(),
                          "d_warmup": d_warmup, "config": config_dict(cfg)})
    return history, G
