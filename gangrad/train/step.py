"""The GAN step, written once: ``d_steps`` discriminator updates, then one generator update
through the estimator (losses: :mod:`gangrad.losses`).

- generator: ``estimator.surrogate(G(z), f).mean()`` with ``f`` the generator loss through
  the current, frozen D (non-saturating by default, or minimax), and D itself as
  ``logit=`` for an estimator that ``needs_logit`` (MaliGAN, BGAN);
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
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from gangrad.estimators import AbstractEstimator, Rollout, logit_kwargs, rollout_kwargs
from gangrad.losses import discriminator_loss, generator_loss
from gangrad.spaces import Space
from gangrad.tasks import AbstractTask
from gangrad.train.config import TrainConfig

__all__ = ["Diverged", "Epochs", "OneSeed", "Seeds", "TrainState", "discriminator_step",
           "fakes", "gan_step", "init_nets", "real_batch", "sample_latent", "train_step"]


class Diverged(RuntimeError):
    """A run broke the divergence rule (:mod:`gangrad.train.loop`): a loss, a parameter or
    the generator's output became NaN/Inf, or a finite value left the bounds of a sound
    run; ``why`` says which."""

    def __init__(self, step: int, what: str, why: str = "is not finite") -> None:
        super().__init__(f"diverged at step {step}: {what} {why}")
        self.step = step


@dataclass
class TrainState:
    """Everything one seed's run carries from one iteration to the next.

    Three random streams, each from the seed: latents (``rng``), the estimator's noise
    (``noise_rng``) and real data (``data_rng``). With D and G initialised from the seed
    too, two estimators trained from the same seed see the same initial D (and G, where
    their heads agree), the same data and the same latents: comparisons across estimators
    are paired.
    """

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    estimator: AbstractEstimator
    rng: torch.Generator  # latents, on the run's device
    data_rng: torch.Generator  # real samples (tasks draw them on the CPU)
    noise_rng: torch.Generator  # the estimator's noise, on the run's device
    step: int = 0
    epochs: Epochs | None = None  # data_order="epochs": where the run is in its epochs

    @classmethod
    def fresh(cls, task: AbstractTask, estimator: AbstractEstimator, seed: int,
              device: torch.device, opt_g=None, opt_d=None) -> TrainState:
        """Networks and random streams initialised from ``seed``."""
        G, D = init_nets(task, estimator, seed, device)
        return cls(G=G, D=D, opt_g=opt_g, opt_d=opt_d, estimator=estimator,
                   rng=torch.Generator(device).manual_seed(seed),
                   data_rng=torch.Generator().manual_seed(seed + 1_000_003),
                   noise_rng=torch.Generator(device).manual_seed(seed + 2_000_003))


class Epochs:
    """Real data in shuffled epochs of a fixed data set, as Fuel's ``ShuffledScheme`` over
    PacGAN's ``GaussianPackingMixture`` serves it (github.com/fjxmlzn/PacGAN,
    ``synthetic_data_experiments/PacGAN/pacgan/{datasets,streams}.py``).

    At the start of a run, each of the ``pack`` slots draws ``N`` indices of the data set
    ``(N, *shape)`` uniformly with replacement: pack ``i`` is ``(data[ids_0[i]], …,
    data[ids_{m−1}[i]])``, fixed for the run (the code's bootstrap, for ``pack = 1`` too).
    Each epoch is a fresh permutation of the ``N`` packs, served in order, a batch of ``P``
    packs at a time; a batch that runs past an epoch's end takes the rest of it and starts
    the next. A batch's rows are slot-major, row ``jP + p`` holding slot ``j`` of pack
    ``p``, the layout of :class:`gangrad.tasks._pacgan.PackedDiscriminator`. Every draw
    comes from ``generator``.
    """

    def __init__(self, data: torch.Tensor, pack: int, generator: torch.Generator) -> None:
        n = data.shape[0]
        self.generator, self.pack, self.size = generator, pack, n
        ids = torch.stack([torch.randint(n, (n,), generator=generator) for _ in range(pack)])
        self.packs = data[ids]  # pack x N x *shape
        self.order = torch.empty(0, dtype=torch.long)
        self.position = 0
        self.epoch = 0

    def draw(self, rows: int) -> torch.Tensor:
        """The next ``rows`` real samples (``rows // pack`` packs), ``(rows, *shape)``."""
        if rows % self.pack:
            raise ValueError(f"Epochs: a batch of {rows} rows is not a whole number of "
                             f"packs of {self.pack}")
        need, taken = rows // self.pack, []
        while need:
            if self.position == len(self.order):
                self.order = torch.randperm(self.size, generator=self.generator)
                self.position, self.epoch = 0, self.epoch + 1
            take = self.order[self.position:self.position + need]
            self.position += len(take)
            need -= len(take)
            taken.append(take)
        return self.packs[:, torch.cat(taken)].flatten(0, 1)


def real_batch(task: AbstractTask, cfg: TrainConfig, state: TrainState,
               rows: int) -> torch.Tensor:
    """``rows`` real samples for one seed, on the CPU: the task's draws, or the next of the
    seed's :class:`Epochs` (``cfg.data_order``)."""
    if cfg.data_order != "epochs":
        return task.sample_real(rows, generator=state.data_rng)
    if state.epochs is None:
        state.epochs = Epochs(task.dataset, getattr(task, "pack", 1), state.data_rng)
    return state.epochs.draw(rows)


def sample_latent(task: AbstractTask, latent: str, n: int,
                  generator: torch.Generator | None = None,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """G's input for ``n`` samples, ``(n, latent_dim)``, drawn from ``generator``.

    ``latent`` (:data:`gangrad.train.config.LATENTS`): ``"normal"``, the task's own
    ``z ~ N(0, I)`` (:meth:`~gangrad.tasks.AbstractTask.sample_latent`); ``"uniform"``,
    ``z ~ U[-√3, √3]^d``, the uniform law with the same mean 0 and covariance ``I``, so the
    two differ only in shape; ``"none"``, ``z = 0``: a generator without noise, which emits
    one point per parameter setting (plus an estimator's own noise).
    """
    if latent == "normal":
        return task.sample_latent(n, generator=generator, device=device)
    if latent == "uniform":
        u = torch.rand(n, task.latent_dim, generator=generator, device=device)
        return (2 * u - 1) * math.sqrt(3)
    if latent == "none":
        return torch.zeros(n, task.latent_dim, device=device)
    raise ValueError(f"latent must be one of normal, uniform, none; got {latent!r}")


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
    """G (with the estimator's head) and D, each initialised from ``seed`` on its own, so
    that D does not depend on the size of G's head."""
    torch.manual_seed(seed)
    D = task.make_discriminator().to(device)
    torch.manual_seed(seed + 3_000_017)
    G = task.make_generator(estimator.param_shape(task.space)).to(device)
    return G, D


class _Seen(Exception):
    """Raised by the recording cost once it has seen the estimator's first input."""

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        self.x = x


def fakes(estimator: AbstractEstimator, params: torch.Tensor, noise: torch.Tensor | None,
          space: Space) -> torch.Tensor:
    """What ``f`` sees for ``params`` and ``noise`` (its first call's input), no gradient.
    The estimator stops there: nothing after its first cost evaluation runs, so the
    recording neither costs the rest of the estimate nor moves the estimator's state
    (an EMA baseline)."""

    def record(x: torch.Tensor) -> torch.Tensor:
        raise _Seen(x.detach())

    with torch.no_grad():
        try:
            estimator.surrogate(params, record, noise=noise, space=space,
                                **logit_kwargs(estimator, record))
        except _Seen as seen:
            return seen.x
    raise RuntimeError(f"estimator {estimator.key!r} never called its cost f")


class Seeds(abc.ABC):
    """What :func:`gan_step` needs from the seeds it updates together: their networks,
    random streams and estimators. Tensors carry the seeds' leading dimension (none for
    one seed, ``S`` for many)."""

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
    def real(self, fake: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def fakes(self, params: torch.Tensor, keep: bool = False) -> torch.Tensor:
        """What each seed's ``f`` sees for ``params``: the fakes D trains on. ``keep``:
        the next :meth:`generator_loss` reuses this call's estimator noise."""

    @abc.abstractmethod
    def generator_loss(self, params: torch.Tensor) -> torch.Tensor:
        """Each seed's surrogate mean through its frozen D (with the noise kept by
        :meth:`fakes`, if any), and it remembers the costs for :meth:`learn`."""

    @abc.abstractmethod
    def learn(self, params: torch.Tensor) -> None:
        """Estimators that learn state update it once, on the same params and D."""

    @abc.abstractmethod
    def frozen_discriminator(self) -> contextlib.AbstractContextManager[None]:
        """Within it, D passes no gradient to its parameters."""

    @abc.abstractmethod
    def advance(self) -> None: ...


class OneSeed(Seeds):
    """One seed's plain modules, optimisers, streams and estimator (:class:`TrainState`)."""

    def __init__(self, state: TrainState, task: AbstractTask, cfg: TrainConfig) -> None:
        self.state, self.task, self.cfg = state, task, cfg
        self.opt_g, self.opt_d = state.opt_g, state.opt_d
        self.device = torch.device(cfg.device)
        self._f = None
        self._kept: tuple[torch.Tensor | None] | None = None  # noise kept by fakes()

    def latents(self) -> torch.Tensor:
        return sample_latent(self.task, self.cfg.latent, self.cfg.batch_size,
                             generator=self.state.rng, device=self.device)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.state.G(z)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        return self.state.D(x)

    def real(self, fake: torch.Tensor) -> torch.Tensor:
        return real_batch(self.task, self.cfg, self.state, fake.shape[0]).to(self.device)

    def _noise(self, params: torch.Tensor) -> torch.Tensor | None:
        return self.state.estimator.noise(params, space=self.task.space,
                                          generator=self.state.noise_rng)

    def fakes(self, params, keep=False):
        noise = self._noise(params)
        if keep:
            self._kept = (noise,)
        return fakes(self.state.estimator, params, noise, self.task.space)

    def generator_loss(self, params):
        self._f = generator_loss(self.cfg.loss, self.state.D)
        kept, self._kept = self._kept, None
        noise = kept[0] if kept is not None else self._noise(params.detach())
        return self.state.estimator.surrogate(params, self._f, noise=noise,
                                              space=self.task.space,
                                              **logit_kwargs(self.state.estimator,
                                                             self.state.D),
                                              **rollout_kwargs(self.state.estimator,
                                                               self.rollout())).mean()

    def rollout(self) -> Rollout | None:
        """The roll-out policy for an estimator that ``takes_rollout`` (SeqGAN's); ``None``:
        it completes prefixes from ``params``, right for a generator whose positions are
        independent given z (an autoregressive generator supplies its own)."""
        return None

    def learn(self, params):
        if self.state.estimator.learns:
            self.state.estimator.learn(params, self._f, space=self.task.space,
                                       generator=self.state.noise_rng)

    @contextlib.contextmanager
    def frozen_discriminator(self) -> Iterator[None]:
        self.state.D.requires_grad_(False)
        try:
            yield
        finally:
            self.state.D.requires_grad_(True)

    def advance(self) -> None:
        self.state.step += 1


def gan_step(seeds: Seeds) -> dict[str, torch.Tensor]:
    """One iteration for every seed of ``seeds``: ``d_steps`` D updates, then one G update
    (D frozen), then, for an estimator that ``learns`` (e.g. REBAR's control variate), one
    update of its own state (:meth:`~gangrad.estimators.AbstractEstimator.learn`) on the
    same G output and D.

    ``cfg.update_order``: ``"alternating"`` (the default) steps D before G's gradient is
    taken, so G descends through the D just updated (Gauss–Seidel); ``"simultaneous"``
    takes D's last gradient and G's from the same state and then steps both (Jacobi), so
    G's cost is the D of before that update. Either way the random streams are drawn in
    the same order (D's latents and data, then G's latents), so the two orders are paired.

    ``cfg.fakes``: ``"fresh"`` (the default) draws G's own latents and noise;
    ``"shared"`` takes G's step on the latents and noise of D's last step, so ``f`` sees
    the very fakes D trained on, from one forward pass of G (the one whose batch
    statistics a batch-norm G records), as ALI's and PacGAN's code computes both losses
    from one batch.

    Returns the losses per seed (0-d for one seed, ``(S,)`` for many), on the run's
    device: reading them would synchronize a GPU every step.
    """
    d_losses = []
    deferred = seeds.cfg.update_order == "simultaneous" and seeds.cfg.d_steps > 0
    shared, params = seeds.cfg.fakes == "shared", None
    for i in range(seeds.cfg.d_steps):
        if shared and i == seeds.cfg.d_steps - 1:  # G's step reuses this forward pass
            params = seeds.generate(seeds.latents())
            fake = seeds.fakes(params.detach(), keep=True)
        else:
            with torch.no_grad():
                fake = seeds.fakes(seeds.generate(seeds.latents()))
        real = seeds.real(fake)
        d_loss = discriminator_loss(seeds.discriminate(real), seeds.discriminate(fake))
        seeds.opt_d.zero_grad(set_to_none=True)
        d_loss.sum().backward()
        if not (deferred and i == seeds.cfg.d_steps - 1):
            seeds.opt_d.step()
        d_losses.append(d_loss.detach())

    with seeds.frozen_discriminator():
        if params is None:
            params = seeds.generate(seeds.latents())
        g_loss = seeds.generator_loss(params)
        seeds.opt_g.zero_grad(set_to_none=True)
        g_loss.sum().backward()
        seeds.opt_g.step()
        seeds.learn(params.detach())
    if deferred:  # D's gradient was taken before G's; the frozen G step left it untouched
        seeds.opt_d.step()
    seeds.advance()
    losses = {"g_loss": g_loss.detach()}
    if d_losses:
        losses["d_loss"] = torch.stack(d_losses).mean(0)
    return losses


def train_step(state: TrainState, task: AbstractTask,
               cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """:func:`gan_step` for one seed's :class:`TrainState`, with its own estimator."""
    return gan_step(OneSeed(state, task, cfg))
