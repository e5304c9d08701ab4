"""Training a GAN whose generator step uses a gradient estimator.

One step, many drivers: the GAN step (:func:`gan_step`: ``d_steps`` D updates, then one G
update through the estimator) is written once, in :mod:`gangrad.train.step`; one seed
(:func:`train`), many seeds as one batched model (:func:`train_seeds`) and the questions
all call it. Optimiser: Adam with β = (0.5, 0.999) by default. For a given seed a run on
the CPU is deterministic, and the same whichever driver trains it.

Measuring along training has one way in: ``on_checkpoint(step, state)`` (or
``(seed, step, state)`` for many seeds) is called at ``checkpoint_steps`` with the live
state, e.g. :class:`gangrad.measure.GradientProbe`.

Modules: :mod:`~gangrad.train.config` (settings), :mod:`~gangrad.train.step` (the step),
:mod:`~gangrad.train.loop` (one seed), :mod:`~gangrad.train.seeds` (many seeds),
:mod:`~gangrad.train.stacked` (networks stacked over seeds),
:mod:`~gangrad.train.autoregressive` (autoregressive generators: MLE pre-training, and GAN
training from a given generator state).

Python::

    from gangrad.train import train, train_seeds
    history = train("ring8", "pathwise", steps=2000, seed=0)   # pandas DataFrame
    histories = train_seeds("ring8", "pathwise", seeds=range(16), steps=2000)  # one per seed
"""

from gangrad.losses import LOSSES, discriminator_loss, generator_loss
from gangrad.train.autoregressive import pretrain_mle, train_autoregressive
from gangrad.train.config import TrainConfig
from gangrad.train.loop import init_state, param_kind, train
from gangrad.train.seeds import seed_batching, train_seeds
from gangrad.train.step import Diverged, TrainState, discriminator_step, gan_step, train_step

__all__ = ["LOSSES", "Diverged", "TrainConfig", "TrainState", "discriminator_loss",
           "discriminator_step", "gan_step", "generator_loss", "init_state", "param_kind",
           "pretrain_mle", "seed_batching", "train", "train_autoregressive", "train_seeds",
           "train_step"]
