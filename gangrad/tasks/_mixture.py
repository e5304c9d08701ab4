"""2-D Gaussian mixtures with mode-collapse metrics (PacGAN, VEEGAN).

Data: a uniform mixture of ``K`` isotropic Gaussians ``N(μ_k, std²·I)`` in the plane.

Metrics (Srivastava et al., 2017, "VEEGAN: Reducing mode collapse in GANs using implicit
variational learning"; Lin et al., 2018, "PacGAN: the power of two samples in generative
adversarial networks", Table 1), defined on 2,500 generator samples. The rule follows
PacGAN's released evaluation code (github.com/fjxmlzn/PacGAN,
``synthetic_data_experiments/PacGAN/pacgan/extensions.py``, ``MetricLogger``):

- every sample ``x`` is assigned to its nearest mode ``k(x) = argmin_k ‖x - μ_k‖ / std``
  (there, distances standardised by each mode's diagonal std; here all stds are equal, so
  this is the Euclidean nearest centre);
- ``x`` is *high-quality* if ``‖x - μ_{k(x)}‖ < 3·std`` (strict);
- ``c_k`` = number of high-quality samples assigned to mode ``k`` (low-quality samples
  are dropped, not counted in any bin);
- ``modes`` = ``#{k : c_k ≥ 1}``, the modes with at least one high-quality sample;
- ``high_quality`` = ``Σ_k c_k / n``, the fraction of high-quality samples;
- ``reverse_kl`` = ``KL(p ‖ U_K) = Σ_k p_k log(K p_k)`` with ``p_k = c_k / Σ_j c_j``, the
  mode histogram of the high-quality samples against the uniform data weights, with
  ``0 log 0 = 0`` so empty bins add nothing; this equals ``log K - H(p)``, the "entropy of
  coverage" the released code logs. With no high-quality sample at all ``p`` is undefined
  and ``reverse_kl`` is reported as ``log K``, its value for a single-mode histogram (the
  largest it can take).

Networks (``arch``): ``"mlp"`` (default), generator MLP ``latent_dim → hidden×depth → 2``
with ReLU, discriminator MLP ``2·pack → hidden×depth → 1`` with LeakyReLU(0.2),
``hidden=128, depth=3``, small so that a run takes seconds on a laptop CPU; ``"pacgan"``,
PacGAN's 4×400 ReLU + batch-norm generator and 3×200 maxout (5 pieces) discriminator with
weights ``N(0, 0.02²)`` (:mod:`gangrad.tasks._pacgan`; ``hidden`` and ``depth`` size the
MLPs only). ``batch_norm`` picks that generator's batch norm: ``"batch"`` (the default,
batch statistics in training and evaluation, no state) or ``"pacgan"`` (PacGAN's code:
each pack slot's own statistics in training, running averages at evaluation).

Packing (``pack = m``): the discriminator judges packs of ``m`` real or ``m`` generated
samples (PacGAN); every estimator trains packed, because the packs are formed inside D
(rows ``p, p + B/m, …``), and row ``b``'s cost ``f(x)_b`` is its pack's, with the gradient
routed through ``b``'s own slot only (:mod:`gangrad.tasks._pacgan` states the maths). A
batch must be a multiple of ``m``.

Data (``dataset_size``): ``None`` draws fresh samples from the mixture at every call; ``N``
draws a fixed data set of ``N`` points once (from ``dataset_seed``; :attr:`dataset`), from
which :meth:`sample_real` draws minibatches uniformly with replacement. PacGAN trained on
100,000 points in shuffled epochs instead: that is the training option
``data_order="epochs"`` (:class:`gangrad.train.TrainConfig`), which reads :attr:`dataset`.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from matplotlib.patches import Circle
from torch import nn

from gangrad import _validate
from gangrad.spaces import Continuous
from gangrad.tasks import _plots
from gangrad.tasks._base import AbstractTask, Metric, check_samples
from gangrad.tasks._nets import MLPDiscriminator, leaky_relu, mlp, mlp_generator
from gangrad.tasks._pacgan import (
    BATCH_NORMS,
    PackedDiscriminator,
    pacgan_discriminator,
    pacgan_generator,
    packed_input_dim,
)

__all__ = ["ARCHS", "DEPTH", "HIDDEN", "AbstractMixture2D", "mode_metrics"]

THRESHOLD = 3.0  # high-quality radius, in standard deviations
ARCHS = ("mlp", "pacgan")
HIDDEN, DEPTH = 128, 3  # the "mlp" arch's default width and depth


def mode_metrics(x: torch.Tensor, centres: torch.Tensor, std: float) -> dict[str, float]:
    """PacGAN's ``modes``, ``high_quality`` and ``reverse_kl`` of ``x (n, 2)`` (module doc)."""
    # Direct differences, not the |x|² - 2x·μ + |μ|² shortcut, so the 3σ cut is exact.
    dist = torch.cdist(x.double(), centres.double(),
                       compute_mode="donot_use_mm_for_euclid_dist")  # n x K
    nearest_dist, nearest = dist.min(dim=1)
    good = nearest_dist < THRESHOLD * std
    k = centres.shape[0]
    counts = torch.bincount(nearest[good], minlength=k).double()  # K
    total = counts.sum()
    if total > 0:
        p = counts / total
        reverse_kl = float(torch.xlogy(p, p * k).sum())
    else:
        reverse_kl = math.log(k)
    return {
        "modes": float((counts > 0).sum()),
        "high_quality": float(good.double().mean()),
        "reverse_kl": reverse_kl,
    }


class AbstractMixture2D(AbstractTask):
    """A uniform mixture of ``N(centres[k], std²·I)``; subclasses set ``centres (K, 2)``."""

    metrics = {"modes": Metric(True, margin=0.25, low=0.0),
               "high_quality": Metric(True, margin=0.01, low=0.0, high=1.0),
               "reverse_kl": Metric(False, margin=0.05, low=0.0)}
    exact_reference = None

    centres: torch.Tensor  # K x 2
    std: float
    hidden: int
    depth: int
    arch: str
    batch_norm: str
    pack: int
    dataset_size: int | None
    dataset_seed: int
    _dataset: torch.Tensor | None = None

    def _configure(self, latent_dim: int, hidden: int, depth: int, arch: str, pack: int,
                   dataset_size: int | None, dataset_seed: int,
                   batch_norm: str = "batch") -> None:
        """Check and store the network and data options shared by the mixtures."""
        owner = type(self).__name__
        _validate.integer(owner, "latent_dim", latent_dim, 1)
        _validate.integer(owner, "hidden", hidden, 1)
        _validate.integer(owner, "depth", depth, 1)
        _validate.choice(owner, "arch", arch, ARCHS)
        _validate.integer(owner, "pack", pack, 1)
        if dataset_size is not None:
            _validate.integer(owner, "dataset_size", dataset_size, 1)
        _validate.integer(owner, "dataset_seed", dataset_seed, 0)
        _validate.choice(owner, "batch_norm", batch_norm, BATCH_NORMS)
        if batch_norm != "batch" and arch != "pacgan":
            raise ValueError(f"{owner}: batch_norm={batch_norm!r} is an option of the "
                             f"'pacgan' arch (the 'mlp' arch has no batch norm)")
        if arch == "pacgan" and (hidden, depth) != (HIDDEN, DEPTH):
            raise ValueError(f"{owner}: hidden and depth size the 'mlp' arch; the 'pacgan' "
                             f"arch has PacGAN's fixed sizes (got hidden={hidden}, "
                             f"depth={depth})")
        self.space = Continuous(2)
        self.latent_dim = latent_dim
        self.hidden, self.depth = hidden, depth
        self.arch, self.pack, self.batch_norm = arch, pack, batch_norm
        self.dataset_size, self.dataset_seed = dataset_size, dataset_seed

    def _draw(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        k = torch.randint(self.centres.shape[0], (n,), generator=generator)
        noise = torch.randn(n, 2, generator=generator)
        return self.centres[k] + self.std * noise

    @property
    def dataset(self) -> torch.Tensor | None:
        """The fixed data set ``(dataset_size, 2)``, drawn once from ``dataset_seed``;
        ``None`` when ``dataset_size`` is ``None``."""
        if self.dataset_size is not None and self._dataset is None:
            self._dataset = self._draw(self.dataset_size,
                                       torch.Generator().manual_seed(self.dataset_seed))
        return self._dataset

    def sample_real(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        data = self.dataset
        if data is None:
            return self._draw(n, generator)
        return data[torch.randint(data.shape[0], (n,), generator=generator)]

    def make_generator(self, param_shape: tuple[int, ...]) -> nn.Module:
        if self.arch == "pacgan":
            return pacgan_generator(self.latent_dim, param_shape, self.batch_norm,
                                    slots=self.pack)
        return mlp_generator(self.latent_dim, self.hidden, self.depth, param_shape, nn.ReLU)

    def make_discriminator(self) -> nn.Module:
        width = packed_input_dim(self.space.shape, self.pack)
        if self.arch == "pacgan":
            return PackedDiscriminator(pacgan_discriminator(width), self.space.shape, self.pack)
        if self.pack == 1:
            return MLPDiscriminator(self.space.shape, self.hidden, self.depth, leaky_relu)
        return PackedDiscriminator(mlp(width, self.hidden, self.depth, 1, leaky_relu),
                                   self.space.shape, self.pack)

    def evaluate(self, x: torch.Tensor) -> dict[str, float]:
        return mode_metrics(check_samples(self.space, x), self.centres, self.std)

    def render(self, x: torch.Tensor, path: str | Path) -> Path:
        xs = check_samples(self.space, x)
        m = self.evaluate(xs)
        centres = self.centres.numpy()
        lo, hi = centres.min(), centres.max()
        pad = 0.25 * (hi - lo) + 0.5
        fig = _plots.new_figure(5, 5, style="white")
        ax = fig.axes[0]
        for c in centres:
            ax.add_patch(Circle(c, THRESHOLD * self.std, color="tab:red", alpha=0.3, lw=0))
        ax.scatter(centres[:, 0], centres[:, 1], marker="+", c="tab:red", s=60, zorder=3)
        points = xs.double().numpy()
        ax.scatter(points[:, 0], points[:, 1], s=3, c="k", alpha=0.3, lw=0)
        ax.set(xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad), aspect="equal",
               xlabel="$x_1$", ylabel="$x_2$")
        ax.set_title(f"{self.name}: modes {m['modes']:.0f}/{len(centres)}, high quality "
                     f"{100 * m['high_quality']:.1f}%, reverse KL {m['reverse_kl']:.3f}",
                     fontsize=9)
        return _plots.save(fig, path)
