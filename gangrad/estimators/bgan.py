r"""BGAN: boundary-seeking GAN, discrete case (Hjelm et al., 2018, arXiv 1702.08431).

For a generator with a conditional distribution ``g_θ(x | z)`` the paper's target is
``\tilde p(x | z) = g_θ(x | z)\, e^{T(x)} / β(z)``, ``T`` D's logit, which is the data
distribution when D is optimal (``e^{T^*} = p_d/p_θ``); G minimises
``KL(\tilde p(x|z) ‖ g_θ(x|z))``. The partition ``β(z)`` is estimated from ``M`` samples
``x^{(m)} ~ g_θ(x | z)`` per ``z``, which gives the self-normalised weights

.. math::  \tilde w^{(m)} = \frac{e^{T(x^{(m)})}}{Σ_{m'} e^{T(x^{(m')})}}
           = \operatorname{softmax}_m T(x^{(m)}),

and the policy gradient (the paper's discrete-variable estimator, Sec. 2)

.. math::  ∇_θ \mathcal L_g ≈ −\frac1N Σ_n Σ_m \tilde w^{(m|n)}\, ∇_θ \log g_θ(x^{(m|n)} | z_n),

which is what the authors' released code computes (``multinomial_BGAN`` in
``lib/loss.py`` of github.com/rdevon/BGAN: ``log_w`` = D's output at the samples,
``w̃`` its softmax over the ``n_samples`` axis, held constant, generator loss
``−(w̃ · log g).sum(0).mean()``; no baseline). Here row ``b`` is one ``z``; its gradient is
``−Σ_m \tilde w^{(m)} ∇ \log p_θ(x^{(m)})``. At the optimal D the expectation tends to
``∇_θ KL(p_d ‖ p_θ)`` as ``M`` grows (:mod:`gangrad.estimators._weighted`); it is not an
estimate of ``∇ E f``, and the gradient statistics report the difference as bias.

``samples`` (``M ≥ 2``): draws per ``z``; default 20, the ``n_samples`` of the released
discrete-MNIST script (``DISC-MNIST/disc_mnist.py``). The same as MaliGAN with
``normalize="row"`` and ``baseline="none"``. Requires D's ``logit`` (``needs_logit``).
Spaces: discrete. f-evaluations per row: ``samples``.
"""

from __future__ import annotations

import torch

from gangrad._validate import integer
from gangrad.estimators._weighted import AbstractDiscriminatorWeighted

__all__ = ["BGAN"]


class BGAN(AbstractDiscriminatorWeighted):
    """Policy gradient with weights softmax(D's logit) over M samples per z."""

    key = "bgan"
    rows_independent = True

    def __init__(self, samples: int = 20) -> None:
        self.samples = integer(self.key, "samples", samples, minimum=2)

    def _advantage(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(1) * logits.shape[1]  # M·w̃: the row's mean gradient is Σ w̃ ∇
