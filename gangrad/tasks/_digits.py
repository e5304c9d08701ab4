"""scikit-learn's 8×8 digits and the classifier-based metrics of the digits tasks.

Data: the 1,797 images of ``sklearn.datasets.load_digits`` (UCI optical digits, 8×8 pixels,
values 0..16, shipped inside scikit-learn), as pixel intensities in ``[0, 1]``: ``value/16``
for the continuous representation, ``value > 8`` for the binary one.

Classifier: an MLP ``64 → 128 → 128 → 10`` (ReLU; dropout 0.1 on the pixels, 0.3 on the
hidden layers), one per representation, trained at first use on a fixed 1,497-image split
(the other 300 are held out), full batch, Adam (learning rate 1e-2, weight decay 1e-4),
200 epochs, seed 0; a few seconds on two CPU cores, held-out accuracy ≈ 0.99 (continuous)
and ≈ 0.97 (binary: thresholding loses stroke detail). Its weights are cached
in ``$GANGRAD_CACHE``, else ``$XDG_CACHE_HOME/gangrad``, else ``~/.cache/gangrad``, as
``digits_classifier_<representation>_<VERSION>.pt``; a missing or unreadable file is
retrained and replaced atomically.

Metrics on generated images ``x`` (as intensities), with ``h(x) ∈ R^128`` the classifier's
penultimate features and ``π(x)`` its softmax:

- ``fd``: Fréchet distance between Gaussian fits of ``h`` on the samples and on all 1,797
  real images, ``‖μ_g - μ_r‖² + Tr(Σ_g + Σ_r - 2 (Σ_g Σ_r)^{1/2})`` (Heusel et al., 2017,
  "GANs trained by a two time-scale update rule converge to a local Nash equilibrium", the
  FID, here with a digits classifier instead of Inception). Like the FID it is biased
  upwards for small sample sizes: compare values computed on equal numbers of samples;
- ``class_kl``: ``KL(c ‖ U_10) = log 10 - H(c)`` of the histogram ``c`` of predicted classes
  (0 for balanced classes, ``log 10`` for a single class);
- ``confidence``: mean of ``max_k π_k(x)``, high when samples look like some digit.
"""

from __future__ import annotations

import abc
import functools
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import linalg
from threadpoolctl import threadpool_limits
from torch import nn

from gangrad import _validate
from gangrad.tasks import _plots
from gangrad.tasks._base import AbstractTask, Metric, check_samples
from gangrad.tasks._nets import MLPDiscriminator, leaky_relu, mlp_generator

__all__ = ["VERSION", "AbstractDigits", "DigitsClassifier", "cache_dir", "frechet_distance",
           "load_classifier"]

VERSION = "v1"
HELD_OUT = 300


@functools.cache
def images(representation: str) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 images ``(1797, 64)`` as intensities in [0, 1], and their labels ``(1797,)``."""
    from sklearn.datasets import load_digits

    data = load_digits()
    pixels = data.data > 8 if representation == "binary" else data.data / 16.0
    return torch.as_tensor(pixels, dtype=torch.float32), torch.as_tensor(data.target)


def cache_dir() -> Path:
    """``$GANGRAD_CACHE``, else ``$XDG_CACHE_HOME/gangrad``, else ``~/.cache/gangrad``."""
    if os.environ.get("GANGRAD_CACHE"):
        return Path(os.environ["GANGRAD_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "gangrad"
    return Path.home() / ".cache" / "gangrad"


class DigitsClassifier(nn.Module):
    """``x (B, 64) -> logits (B, 10)``; :meth:`features` gives the 128-d penultimate layer."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Dropout(0.1), nn.Linear(64, 128), nn.ReLU(),
                                  nn.Dropout(0.3), nn.Linear(128, 128), nn.ReLU())
        self.out = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, 10))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


def train_classifier(representation: str) -> tuple[DigitsClassifier, float]:
    """The classifier of the module doc, trained deterministically, and its held-out accuracy."""
    x, y = images(representation)
    order = torch.as_tensor(np.random.default_rng(0).permutation(len(y)))
    train, test = order[HELD_OUT:], order[:HELD_OUT]
    threads = torch.get_num_threads()
    # One thread: the same reductions, hence the same weights, whatever the core count; and
    # at this size thread start-up costs more than the arithmetic.
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            torch.manual_seed(0)
            net = DigitsClassifier()
            opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
            x_train, y_train = x[train], y[train]
            for _ in range(200):
                loss = nn.functional.cross_entropy(net(x_train), y_train)
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    net.eval()
    with torch.no_grad():
        accuracy = (net(x[test]).argmax(1) == y[test]).float().mean().item()
    return net, accuracy


def load_classifier(representation: str) -> DigitsClassifier:
    """The cached classifier for ``representation``, trained and cached first if needed."""
    path = cache_dir() / f"digits_classifier_{representation}_{VERSION}.pt"
    net = DigitsClassifier()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state["state_dict"])
    except Exception:  # missing, truncated or stale: rebuild it
        net, accuracy = train_classifier(representation)
        try:
            _write_atomically(path, {"state_dict": net.state_dict(),
                                     "held_out_accuracy": accuracy})
        except OSError as exc:  # a read-only cache costs a retraining per process, no more
            warnings.warn(f"could not cache the digits classifier at {path}: {exc}",
                          stacklevel=2)
    return net.eval().requires_grad_(False)


def _write_atomically(path: Path, obj: object) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def gaussian_fit(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (zero for a single row) of features ``h (n, d)``, float64."""
    h = h.astype(np.float64)
    cov = np.cov(h, rowvar=False) if h.shape[0] > 1 else np.zeros((h.shape[1], h.shape[1]))
    return h.mean(0), cov


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray,
                     cov2: np.ndarray) -> float:
    """``‖μ1 - μ2‖² + Tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^{1/2})`` between two Gaussians.

    ``Tr (Σ1 Σ2)^{1/2} = Tr (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}``, the sum of the square roots of
    the eigenvalues of a symmetric PSD matrix. Computing it that way with ``eigh`` needs no
    ``sqrtm`` of the non-symmetric ``Σ1 Σ2``, hence no regularising offset and no imaginary
    round-off to discard when features are rank-deficient (dead ReLUs, few samples).
    """
    evals, evecs = linalg.eigh(cov1)
    root1 = (evecs * np.sqrt(np.clip(evals, 0, None))) @ evecs.T
    inner = linalg.eigvalsh(root1 @ cov2 @ root1)
    trace_root = np.sqrt(np.clip(inner, 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * trace_root, 0.0))


class AbstractDigits(AbstractTask):
    """Shared data, networks and metrics; subclasses convert samples to intensities."""

    metrics = {"fd": Metric(False, margin=1.0, low=0.0),
               "class_kl": Metric(False, margin=0.02, low=0.0),
               "confidence": Metric(True, margin=0.01, low=0.0, high=1.0)}
    exact_reference = None
    training_defaults = {"batch_size": 64, "lr_g": 1e-3, "lr_d": 1e-3, "steps": 5000,
                         "d_steps": 1}
    representation: str  # "continuous" or "binary"

    def __init__(self, latent_dim: int = 16, hidden: int = 256) -> None:
        _validate.integer(type(self).__name__, "latent_dim", latent_dim, 1)
        _validate.integer(type(self).__name__, "hidden", hidden, 1)
        self.latent_dim = latent_dim
        #: width of G's and D's two hidden layers (256 by default; smaller nets train in
        #: fewer CPU-seconds per step, e.g. 64 in the quick suite)
        self.hidden = hidden
        self._classifier: DigitsClassifier | None = None
        self._real_stats: tuple[np.ndarray, np.ndarray] | None = None

    @abc.abstractmethod
    def intensities(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel intensities ``(n, 64)`` of samples ``x (n, *space.shape)``."""

    def make_generator(self, param_shape: tuple[int, ...]) -> nn.Module:
        return mlp_generator(self.latent_dim, self.hidden, 2, param_shape, nn.ReLU)

    def make_discriminator(self) -> nn.Module:
        return MLPDiscriminator(self.space.shape, self.hidden, 2, leaky_relu)

    @property
    def classifier(self) -> DigitsClassifier:
        if self._classifier is None:
            self._classifier = load_classifier(self.representation)
        return self._classifier

    def evaluate(self, x: torch.Tensor) -> dict[str, float]:
        pixels = self.intensities(check_samples(self.space, x)).float()
        net = self.classifier
        with torch.no_grad():
            h = net.features(pixels)  # n x 128
            probs = net.out(h).softmax(-1)  # n x 10
            real = None if self._real_stats is not None else net.features(
                images(self.representation)[0])
        counts = torch.bincount(probs.argmax(-1), minlength=10).double()
        c = counts / counts.sum()
        # one BLAS thread for these small matrices: OpenBLAS's threads otherwise keep
        # spinning after the call and slow torch's own threads down (same numbers)
        with threadpool_limits(1, user_api="blas"):
            if real is not None:
                self._real_stats = gaussian_fit(real.numpy())
            fd = frechet_distance(*gaussian_fit(h.numpy()), *self._real_stats)
        return {
            "fd": fd,
            "class_kl": float(torch.xlogy(c, 10 * c).sum()),
            "confidence": float(probs.max(-1).values.mean()),
        }

    def render(self, x: torch.Tensor, path: str | Path) -> Path:
        pixels = self.intensities(check_samples(self.space, x)[:64]).clamp(0, 1)
        grid = _plots.image_grid(pixels.reshape(-1, 8, 8).double().numpy(), columns=8)
        fig = _plots.new_figure(5, 5 * grid.shape[0] / grid.shape[1], style="white")
        ax = fig.axes[0]
        ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()
        return _plots.save(fig, path)
