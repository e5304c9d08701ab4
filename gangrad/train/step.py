"""The GAN step, written once: ``d_steps`` discriminator updates, then one generator update
through the estimator (losses: :mod:`gangrad.losses`).

- generator: ``estimator.surrogate(G(z), f).mean()`` with ``f`` the generator loss through
  the current, frozen D (non-saturating by default, or minimax);
- discriminator: binary cross-entropy on exactly the fakes ``f`` sees (the relaxed vectors
  for Gumbel-softmax, ``B·S`` draws for a score function with ``S`` samples per row).

:func:`gan_step` runs on a :class:`Seeds`: one seed (:class:`OneSeed`, plain modules) or
many seeds stacked into one batched model (``gangrad.train.seeds``). Every seed draws its
latents, noise and data from its own generators in the same order either way, so each
seed's run is the same whichever way it is trained.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from gangrad.estimators import AbstractEstimator
from gangrad.losses import discriminator_loss, generator_loss
from gangrad.spaces import Space
from gangrad.tasks import AbstractTask
from gangrad.train.config import TrainConfig

__all__ = ["Diverged", "OneSeed", "Seeds", "TrainState", "discriminator_step", "gan_step",
           "init_nets", "train_step"]


class Diverged(RuntimeError):
    """A loss or a parameter became NaN/Inf."""

    def __init__(self, step: int, what: str) -> None:
        super().__init__(f"diverged at step {step}: {what} is not finite")
        self.step = step


@dataclass
class TrainState:
    """Everything one seed's run carries from one iteration to the next."""

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    estimator: AbstractEstimator
    rng: torch.Generator  # latent and estimator noise, on the run's device
    data_rng: torch.Generator  # real samples (tasks draw them on the CPU)
    step: int = 0


def discriminator_step(D: nn.Module, opt: torch.optim.Optimizer, real: torch.Tensor,
                       fake: torch.Tensor) -> torch.Tensor:
    """One D update on a real and a fake batch of one model; returns the loss."""
    loss = discriminator_loss(D(real), D(fake))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def init_nets(task: AbstractTask, estimator: AbstractEstimator, seed: int,
              device: torch.device) -> tuple[nn.Module, nn.Module]:
    """G (with the estimator's head) and D, initialised from ``seed``."""
    torch.manual_seed(seed)
    G = task.make_generator(estimator.param_shape(task.space)).to(device)
    D = task.make_discriminator().to(device)
    return G, D


class Seeds(abc.ABC):
    """What :func:`gan_step` needs from the seeds it updates together.

    Shapes: ``z`` and params carry the seeds' leading dimensions (none for one seed,
    ``S`` for many); the estimator sees ``flat(params)``, every seed's rows in one batch.
    """

    task: AbstractTask
    cfg: TrainConfig
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer

    @abc.abstractmethod
    def latents(self) -> torch.Tensor: ...

    @abc.abstractmethod
    def generate(self, z: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def discriminate(self, x: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def frozen_discriminator(self) -> contextlib.AbstractContextManager[None]:
        """Within it, :meth:`discriminate` passes no gradient to D's parameters."""

    def learn(self, estimator: AbstractEstimator, params: torch.Tensor, f) -> None:
        """Update an estimator's learned state from one G step (one seed only)."""
        raise ValueError(f"estimator {estimator.key!r} learns state during use: its seeds "
                         "train one after another")

    @abc.abstractmethod
    def noise(self, estimator: AbstractEstimator, params: torch.Tensor
              ) -> torch.Tensor | None: ...

    @abc.abstractmethod
    def real(self, fake: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def flat(self, x: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def per_seed(self, x: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def seed_mean(self, values: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def advance(self) -> None: ...


class OneSeed(Seeds):
    """One seed's plain modules, optimisers and generators (:class:`TrainState`)."""

    def __init__(self, state: TrainState, task: AbstractTask, cfg: TrainConfig) -> None:
        self.state, self.task, self.cfg = state, task, cfg
        self.opt_g, self.opt_d = state.opt_g, state.opt_d
        self.device = torch.device(cfg.device)

    def latents(self) -> torch.Tensor:
        return self.task.sample_latent(self.cfg.batch_size, generator=self.state.rng,
                                       device=self.device)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.state.G(z)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        return self.state.D(x)

    @contextlib.contextmanager
    def frozen_discriminator(self) -> Iterator[None]:
        self.state.D.requires_grad_(False)
        try:
            yield
        finally:
            self.state.D.requires_grad_(True)

    def learn(self, estimator, params, f):
        estimator.learn(params, f, space=self.task.space, generator=self.state.rng)

    def noise(self, estimator, params):
        return estimator.noise(params, space=self.task.space, generator=self.state.rng)

    def real(self, fake: torch.Tensor) -> torch.Tensor:
        return self.task.sample_real(fake.shape[0], generator=self.state.data_rng).to(
            self.device)

    def flat(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def per_seed(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def seed_mean(self, values: torch.Tensor) -> torch.Tensor:
        return values.mean()

    def advance(self) -> None:
        self.state.step += 1


def _fakes(estimator: AbstractEstimator, params: torch.Tensor, noise: torch.Tensor | None,
           space: Space) -> torch.Tensor:
    """What ``f`` sees for ``params`` and ``noise`` (the first call's input), no gradient."""
    seen: list[torch.Tensor] = []

    def record(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach())
        return x.new_zeros(x.shape[0])

    with torch.no_grad():
        estimator.surrogate(params, record, noise=noise, space=space)
    return seen[0]


def gan_step(seeds: Seeds, estimator: AbstractEstimator) -> dict[str, torch.Tensor]:
    """One iteration for every seed of ``seeds``: ``d_steps`` D updates, then one G update
    (D frozen), then, for an estimator that ``learns`` (e.g. REBAR's control variate), one
    update of its own state (:meth:`~gangrad.estimators.AbstractEstimator.learn`) on the
    same G output and D.

    Returns the losses per seed (0-d for one seed, ``(S,)`` for many), on the run's
    device: reading them would synchronize a GPU every step.
    """
    space, cfg = seeds.task.space, seeds.cfg
    d_losses = []
    for _ in range(cfg.d_steps):
        with torch.no_grad():
            params = seeds.generate(seeds.latents())
            noise = seeds.noise(estimator, params)
        fake = seeds.per_seed(_fakes(estimator, seeds.flat(params), noise, space))
        real = seeds.real(fake)
        d_loss = discriminator_loss(seeds.discriminate(real), seeds.discriminate(fake))
        seeds.opt_d.zero_grad(set_to_none=True)
        d_loss.sum().backward()
        seeds.opt_d.step()
        d_losses.append(d_loss.detach())

    with seeds.frozen_discriminator():
        params = seeds.generate(seeds.latents())
        noise = seeds.noise(estimator, params.detach())
        f = generator_loss(cfg.loss, lambda x: seeds.flat(seeds.discriminate(seeds.per_seed(x))))
        g_loss = seeds.seed_mean(estimator.surrogate(seeds.flat(params), f, noise=noise,
                                                     space=space))
        seeds.opt_g.zero_grad(set_to_none=True)
        g_loss.sum().backward()
        seeds.opt_g.step()
        if estimator.learns:
            seeds.learn(estimator, params.detach(), f)
    seeds.advance()
    losses = {"g_loss": g_loss.detach()}
    if d_losses:
        losses["d_loss"] = torch.stack(d_losses).mean(0)
    return losses


def train_step(state: TrainState, task: AbstractTask,
               cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """:func:`gan_step` for one seed's :class:`TrainState`, with its own estimator."""
    return gan_step(OneSeed(state, task, cfg), state.estimator)
