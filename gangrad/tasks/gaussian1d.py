"""The linear GAN: 1-D Gaussian data, a linear generator and a logistic discriminator.

The smallest GAN that still has every moving part, from the well-known answer to "Some
confusion on learning of Generative Adversarial Networks" (Cross Validated): data
``x ~ N(loc, scale²)`` (default ``N(4, 1.25²)``), noise ``z ~ N(0, 1)``, generator
``G(z) = w·z + b`` and discriminator ``D(x) = σ(w₂·x + b₂)`` (the module returns the logit
``w₂·x + b₂``). A logistic D separates distributions only by location: it pins the
generator's mean ``b`` but cannot ask for the right scale. Worse, for a fixed D the
non-saturating cost ``softplus(-w₂x - b₂)`` is convex in ``x``, so by Jensen any spread
raises the expected cost and training shrinks ``|w|`` towards 0: with plain backprop the
generator matches the mean and collapses to nearly a point, where ``w1`` plateaus near
``scale·√(2/π) ≈ 1.0`` and ``ks`` near 0.5. The task is about the mechanics and the exact
gradient, not about fitting the variance.

With ``features="quadratic"`` D sees ``x`` and ``x²``: its logit ``w₂·x + v₂·x² + b₂`` is a
quadratic, the form of the log density ratio ``log p_data(x)/p_G(x)`` of two Gaussians, so
D can represent the optimal discriminator and penalise a wrong scale; the generator then
has a gradient towards ``|w| = scale``.

With ``features="mlp"`` D is a LeakyReLU(0.2) MLP on ``x`` (``depth`` hidden layers of
width ``hidden``): it sees the whole shape of the law, tails included, not only its first
two moments. With ``generator="mlp"`` G is a LeakyReLU(0.2) MLP of the same size, so it
can reshape its input's law (a uniform z into a Gaussian, say); the default linear G can
only shift and scale it. (With a one-dimensional z a ReLU G has ranges of z where every
unit is off: there it is flat, its output's tail is cut and no gradient reaches it; the
leaky slope keeps every range alive.) ``hidden`` and ``depth`` size the MLPs only;
``latent_dim`` is the dimension of z (1 by default; the exact reference below needs 1).

Exact reference (quadrature). For a cost ``f`` the expected generator loss is a 1-D integral,

.. math:: L(w, b) = E_{z,ε \\sim N(0,1)}[f(w z + b + σ ε)]
          ≈ Σ_i Σ_j u_i u_j f(w z_i + b + σ ε_j),

with probabilists' Gauss–Hermite nodes and weights (:func:`gangrad.exact.gauss_hermite`);
:meth:`Gaussian1D.expected_loss` evaluates it in float64, and autograd through it gives
``∇_{w,b} L`` to quadrature accuracy (exact for polynomial ``f`` of degree ``< 2·degree``).

Metrics, on samples ``x_1..x_n`` against ``F = N(loc, scale²)``:

- ``w1``: Wasserstein-1 distance ``∫_0^1 |F_n^{-1}(u) - F^{-1}(u)| du`` between the
  empirical distribution and ``F``, in closed form: with ``x_(i)`` sorted and
  ``q_i = F^{-1}(i/n)``, the ``i``-th term is ``E[|x_(i) - X|; q_{i-1} < X < q_i]`` for
  ``X ~ F``, a sum of Gaussian partial moments.
- ``ks``: Kolmogorov–Smirnov statistic ``sup_t |F_n(t) - F(t)|`` (Kolmogorov, 1933;
  ``scipy.stats.kstest``).

Default training: batch 64, Adam learning rates 1e-2 for G and D, 2000 steps, one D step
per G step (enough to move the mean from 0 to ``loc``; at 1e-3 it gets only half-way).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from torch import nn

from gangrad import _validate
from gangrad.exact import gauss_hermite
from gangrad.spaces import Continuous
from gangrad.tasks import _plots
from gangrad.tasks._base import AbstractTask, Metric, check_samples
from gangrad.tasks._nets import Generator, MLPDiscriminator, leaky_relu, mlp_generator

__all__ = ["FEATURES", "GENERATORS", "Gaussian1D", "wasserstein1_normal"]

#: what the logistic D sees of ``x``, and how many features that is (``"mlp"``: an MLP
#: on ``x``, no fixed features)
FEATURES = {"linear": 1, "quadratic": 2, "mlp": 1}
#: the generator's body: linear (``w·z + b``) or a ReLU MLP
GENERATORS = ("linear", "mlp")


def wasserstein1_normal(x: np.ndarray, loc: float, scale: float) -> float:
    """Exact ``W1(empirical(x), N(loc, scale²))`` for a 1-D sample ``x`` (see module doc)."""
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    n = x.size
    u = np.arange(n + 1) / n
    bounds = stats.norm.ppf(u)  # standardised quantiles, -inf and inf at the ends
    c = np.clip((x - loc) / scale, bounds[:-1], bounds[1:])

    def mass(a, b):  # P(a < Z < b) for Z ~ N(0, 1)
        return stats.norm.cdf(b) - stats.norm.cdf(a)

    def first(a, b):  # E[Z; a < Z < b]
        return stats.norm.pdf(a) - stats.norm.pdf(b)

    # In standard units, E|s - Z| on (a, b) splits at c = clip(s): below c, s - Z >= 0.
    s = (x - loc) / scale
    below = s * mass(bounds[:-1], c) - first(bounds[:-1], c)
    above = first(c, bounds[1:]) - s * mass(c, bounds[1:])
    return float(scale * np.sum(below + above))


class _Logistic(nn.Module):
    """``x (B, 1) -> w₂·φ(x) + b₂ (B,)``, the logit of a logistic discriminator on the
    features ``φ(x) = x`` (``"linear"``) or ``φ(x) = (x, x²)`` (``"quadratic"``)."""

    def __init__(self, features: str = "linear") -> None:
        super().__init__()
        self.features = features
        self.linear = nn.Linear(FEATURES[features], 1)

    def _phi(self, x: torch.Tensor) -> torch.Tensor:  # (..., 1) -> (..., 1 or 2)
        return x if self.features == "linear" else torch.cat([x, x * x], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self._phi(x)).squeeze(-1)

    def stacked_forward(self, x: torch.Tensor, stack) -> torch.Tensor:
        return stack.child("linear")(self._phi(x)).squeeze(-1)


class Gaussian1D(AbstractTask):
    """Data ``N(loc, scale²)``, ``G(z) = w·z + b``, logistic ``D``; see the module doc."""

    name = "gaussian1d"
    description = "1-D Gaussian data, linear G, logistic D (the 'linear GAN')"
    metrics = {"w1": Metric(False, margin=0.05, low=0.0),
               "ks": Metric(False, margin=0.02, low=0.0, high=1.0)}
    exact_reference = "Gauss–Hermite quadrature over z (and the smoothing noise)"
    training_defaults = {"batch_size": 64, "lr_g": 1e-2, "lr_d": 1e-2, "steps": 2000,
                         "d_steps": 1}

    def __init__(self, loc: float = 4.0, scale: float = 1.25, features: str = "linear",
                 generator: str = "linear", hidden: int = 32, depth: int = 2,
                 latent_dim: int = 1) -> None:
        owner = type(self).__name__
        if isinstance(loc, bool) or not isinstance(loc, numbers.Real) or not math.isfinite(loc):
            raise ValueError(f"{owner}: loc must be a number in (-inf, inf), got {loc!r}")
        _validate.positive(owner, "scale", scale)
        _validate.choice(owner, "features", features, FEATURES)
        _validate.choice(owner, "generator", generator, GENERATORS)
        _validate.integer(owner, "hidden", hidden, 1)
        _validate.integer(owner, "depth", depth, 1)
        _validate.integer(owner, "latent_dim", latent_dim, 1)
        self.loc = loc
        self.scale = scale
        self.features = features
        self.generator = generator
        self.hidden, self.depth = hidden, depth
        self.space = Continuous(1)
        self.latent_dim = latent_dim

    def sample_real(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.loc + self.scale * torch.randn(n, 1, generator=generator)

    def make_generator(self, param_shape: tuple[int, ...]) -> nn.Module:
        if self.generator == "mlp":
            return mlp_generator(self.latent_dim, self.hidden, self.depth, param_shape,
                                 leaky_relu)
        return Generator(nn.Identity(), self.latent_dim, param_shape)

    def make_discriminator(self) -> nn.Module:
        if self.features == "mlp":
            return MLPDiscriminator(self.space.shape, self.hidden, self.depth, leaky_relu)
        return _Logistic(self.features)

    def evaluate(self, x: torch.Tensor) -> dict[str, float]:
        xs = check_samples(self.space, x).double().numpy()[:, 0]
        return {
            "w1": wasserstein1_normal(xs, self.loc, self.scale),
            "ks": float(stats.kstest(xs, "norm", args=(self.loc, self.scale)).statistic),
        }

    def expected_loss(self, G: nn.Module, f: Callable[[torch.Tensor], torch.Tensor],
                      sigma: float = 0.0, degree: int = 64) -> torch.Tensor:
        """``E_{z,ε}[f(G(z)[..., 0] + σ·ε)]`` by Gauss–Hermite quadrature, float64 scalar.

        ``G`` is a generator of this task built with ``param_shape=(1,)``; the result is
        differentiable in its parameters, so ``torch.autograd.grad(loss, G.parameters())``
        is the exact gradient of the expected generator loss. ``f`` maps ``x (N, 1)`` to
        ``(N,)`` and is called on float64 inputs (give it a float64 copy of a network,
        e.g. ``copy.deepcopy(D).double()``). ``sigma >= 0`` is the smoothing noise scale.
        """
        if self.latent_dim != 1:
            raise ValueError(f"expected_loss integrates over a one-dimensional z; this task has "
                             f"latent_dim={self.latent_dim}")
        if getattr(G, "param_shape", None) != (1,):
            raise ValueError("expected_loss needs a generator made with param_shape=(1,), got "
                             f"param_shape={getattr(G, 'param_shape', None)!r}")
        if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not sigma >= 0:
            raise ValueError(f"sigma must be a number in [0, inf), got {sigma!r}")
        _validate.integer(type(self).__name__, "degree", degree, 1)
        params = {k: p.double() for k, p in G.named_parameters()}
        device = next(iter(params.values())).device
        z, u = gauss_hermite(degree, device=device)
        x = torch.func.functional_call(G, params, (z[:, None],))[:, 0]  # degree
        if sigma > 0:
            x = (x[:, None] + sigma * z[None, :]).reshape(-1)  # degree² (z-major)
            u = (u[:, None] * u[None, :]).reshape(-1)
        fx = f(x[:, None])
        if fx.shape != x.shape:
            raise ValueError(f"f must map (N, 1) to (N,), got output shape {tuple(fx.shape)}")
        return (u * fx.double()).sum()

    def render(self, x: torch.Tensor, path: str | Path) -> Path:
        xs = check_samples(self.space, x).double().numpy()[:, 0]
        fig = _plots.new_figure(6, 4, style="whitegrid")
        ax = fig.axes[0]
        lo = min(xs.min(), self.loc - 4 * self.scale)
        hi = max(xs.max(), self.loc + 4 * self.scale)
        t = np.linspace(lo, hi, 400)
        ax.hist(xs, bins=min(60, max(10, xs.size // 20)), range=(lo, hi), density=True,
                alpha=0.6, label="samples")
        ax.plot(t, stats.norm.pdf(t, self.loc, self.scale), "k", label="data density")
        ax.set_xlabel("x")
        ax.legend()
        return _plots.save(fig, path)
