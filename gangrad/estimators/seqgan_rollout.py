r"""SeqGAN's policy gradient with Monte Carlo roll-outs (Yu et al., 2017, "SeqGAN: sequence
generative adversarial nets with policy gradient", AAAI, Eqs. 4–8 and Algorithm 1).

The generator is a policy that emits ``y_1 … y_L`` and is rewarded only for the whole
sequence. Each prefix ``y_{1:t}`` is valued by completing it ``N`` times with a roll-out
policy ``G_β`` (Eq. 4) and the generator follows the policy gradient (Eqs. 6–8). In
gangrad's form, a cost ``f`` to minimise (SeqGAN's reward ``D(Y)`` is ``f = −D(Y)``, the
training loss ``"probability"``):

.. math::
    \hat Q_t = \frac1N \sum_{n=1}^{N} f\big(Y^{n}_{1:L}\big),\quad
    Y^{n} \sim G_β(\,\cdot \mid y_{1:t}) \;(t < L), \qquad \hat Q_L = f(y_{1:L}),

    \hat g = \sum_{t=1}^{L} \hat Q_t \, ∇_θ \log G_θ(y_t \mid y_{1:t-1}),

with surrogate ``f(y) + Σ_t (ℓ_t − ⊥ℓ_t) ⊥Q̂_t`` (``ℓ_t`` the log-probability of ``y_t``;
its value is ``f(y)``). When ``G_β = G_θ``, ``E[Q̂_t | y_{1:t}] = E[f(Y) | y_{1:t}]`` and
``ĝ`` is unbiased for ``∇_θ E[f]`` (the tower property: a score at ``t`` times any function of
``y_{1:t}`` whose conditional mean is ``E[f | y_{1:t}]``). A delayed ``G_β ≠ G_θ`` biases it.
SeqGAN uses no baseline; neither does this estimator.

Roll-out policy. ``surrogate(..., rollout=)`` takes a callable that completes prefixes
(:data:`gangrad.estimators.Rollout`); :func:`gangrad.train.train_autoregressive` passes the
roll-out network of an autoregressive generator. Without it the positions are taken to be
independent given ``params`` (as for a generator of per-position logits) and the completions
are drawn from ``params`` themselves: ``G_β = G_θ`` exactly.

Noise: uniforms ``(B, L, V + N·(L−1))``. ``[..., :V]`` draws the sample by Gumbel-max,
``y_t = argmax(θ_t + g_t)`` (so an autoregressive generator can run on the same uniforms,
:mod:`gangrad.train.autoregressive`); column ``V + n·(L−1) + t − 1`` at position ``s`` is the
uniform of roll-out ``n``'s symbol ``s`` when it completes the first ``t`` symbols (inverse
CDF: the first class whose cumulative probability exceeds it).

Hyper-parameters:

- ``rollouts`` (``N ≥ 1``): completions per prefix; SeqGAN's code uses 16.
- ``update_rate`` (``r ∈ (0, 1]``): after each generator step the roll-out network moves to
  ``β ← (1 − r)·β + r·θ``, done by the autoregressive training. ``r = 1`` (the default)
  keeps ``β = θ``: Algorithm 1 sets ``β ← θ`` after every round of one g-step, and the
  released code, as we read ``rollout.py``, runs the same. Its ``ROLLOUT(generator, 0.8)``
  states ``β ← 0.8·β + 0.2·θ`` (``r = 0.2`` here). But the roll-out graph built in
  ``ROLLOUT.__init__`` reads the generator's variables through ``tf.identity``, and
  ``update_params`` never rebuilds it, so its roll-outs come from the current generator.
  ``r < 1`` needs a roll-out network, so a call without ``rollout=`` refuses it.

Spaces: discrete. f-evaluations per row: ``1 + N·(L−1)`` (:meth:`evaluations`). SeqGAN's code
spends ``N·L``, because it scores the complete sequence once per roll-out.
"""

from __future__ import annotations

import torch

from gangrad._validate import integer
from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import AbstractEstimator
from gangrad.spaces import Discrete

__all__ = ["SeqGANRollout"]


def _inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The first class whose cumulative probability exceeds ``u·total``: ``probs (..., V)``,
    ``u (...)`` -> ``(...)``; a count, not a search, so that it runs under ``vmap``."""
    cdf = probs.cumsum(-1)
    below = (cdf <= (u * cdf[..., -1]).unsqueeze(-1)).sum(-1)
    return below.clamp_max(probs.shape[-1] - 1)


def _one_hot(symbols: torch.Tensor, classes: int, like: torch.Tensor) -> torch.Tensor:
    """One-hot ``(..., classes)`` of ``symbols (...)``, out of place (``vmap``-safe)."""
    zeros = torch.zeros(*symbols.shape, classes, dtype=like.dtype, device=like.device)
    return zeros.scatter(-1, symbols.unsqueeze(-1), 1.0)


class SeqGANRollout(AbstractEstimator):
    """REINFORCE with per-token values from Monte Carlo roll-outs (SeqGAN)."""

    key = "seqgan_rollout"
    space_types = (Discrete,)
    differentiable_f = False
    rows_independent = True
    takes_rollout = True

    def __init__(self, rollouts: int = 16, update_rate: float = 1.0) -> None:
        self.rollouts = integer(self.key, "rollouts", rollouts, minimum=1)
        if isinstance(update_rate, bool) or not isinstance(update_rate, int | float) or \
                not 0 < update_rate <= 1:
            raise ValueError(f"{self.key}: update_rate must be a number in (0, 1], got "
                             f"{update_rate!r}")
        self.update_rate = float(update_rate)

    def evaluations(self, space) -> float:
        self._check_supported(space)
        return float(1 + self.rollouts * (space.length - 1))

    def _noise(self, params, space, generator):
        B, L, V = params.shape
        return cat.uniform_noise((B, L, V + self.rollouts * (L - 1)), params, generator)

    def _sample(self, params, noise, space):
        return cat.one_hot_argmax(params + cat.gumbel(noise[..., :space.classes]))

    def _surrogate(self, params, f, noise, space, rollout=None):
        with torch.no_grad():  # f is a black box
            q_hat = self._values(params.detach(), f, noise, rollout)  # B x L
        y = (params.detach() + cat.gumbel(noise[..., :space.classes])).argmax(-1)  # B x L
        log_p = params.log_softmax(-1).gather(-1, y.unsqueeze(-1)).squeeze(-1)  # B x L
        return q_hat[:, -1] + ((log_p - log_p.detach()) * q_hat).sum(-1)

    def _values(self, params, f, noise, rollout) -> torch.Tensor:
        """``Q̂_t`` for ``t = 1 … L`` (``(B, L)``; the last is ``f(y)``)."""
        B, L, V = params.shape
        N = self.rollouts
        y = (params + cat.gumbel(noise[..., :V])).argmax(-1)  # B x L
        # f's first call sees the sample: what D trains on (gangrad.train.step.fakes), which
        # needs no roll-out, so the check below comes after it
        fy = f(_one_hot(y, V, params))
        if L == 1:
            return fy.unsqueeze(1)
        if rollout is None and self.update_rate != 1.0:
            raise ValueError(f"{self.key}: update_rate={self.update_rate} < 1 needs a "
                             "roll-out network (a delayed copy of the generator): pass "
                             "rollout=, as gangrad.train.train_autoregressive does")
        # N*B x (L-1) x L: roll-out n of row b completing t symbols, at position s
        uniforms = noise[..., V:].reshape(B, L, N, L - 1).permute(2, 0, 3, 1).reshape(
            N * B, L - 1, L)
        prefix = y.repeat(N, 1)  # N*B x L, row n*B + b
        if rollout is not None:
            done = rollout(prefix, uniforms)
            if tuple(done.shape) != (N * B, L - 1, L):
                raise ValueError(f"{self.key}: rollout must return completions of shape "
                                 f"{(N * B, L - 1, L)}, got {tuple(done.shape)}")
        else:
            probs = params.softmax(-1).repeat(N, 1, 1)  # N*B x L x V
        positions = torch.arange(L, device=params.device)
        values = []
        for t in range(1, L):
            drawn = (done[:, t - 1].to(prefix.dtype) if rollout is not None
                     else _inverse_cdf(probs, uniforms[:, t - 1]))
            completion = torch.where(positions < t, prefix, drawn)  # the prefix is y's own
            values.append(f(_one_hot(completion, V, params)).reshape(N, B).mean(0))
        return torch.stack([*values, fy], 1)
