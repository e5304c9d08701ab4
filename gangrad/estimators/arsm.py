r"""ARSM, Augment-REINFORCE-Swap-Merge (Yin, Yue & Zhou, ICML 2019, "ARSM: Augment-
REINFORCE-Swap-Merge Estimator for Gradient Backpropagation Through Categorical Variables").

*Augment*: a categorical ``z ~ Cat(softmax φ)`` over ``C`` classes is
``z = \arg\min_i π_i e^{−φ_i}`` with ``π ~ Dirichlet(1_C)``. *REINFORCE* on ``π`` and
*swap*: for the vector ``π^{m⇌j}`` with entries ``m`` and ``j`` exchanged, the
pseudo-action ``z^{m⇌j} = \arg\min_i π^{m⇌j}_i e^{−φ_i}`` (``z^{j⇌j} = z``) gives, for
every reference ``j``, an unbiased estimate; *merge* averages them over ``j``:

.. math::
    \hat g_c = \sum_{j=1}^{C} \Big(f(z^{c⇌j}) − \frac1C \sum_{m=1}^{C} f(z^{m⇌j})\Big)
    \Big(\frac1C − π_j\Big) .

For ``L`` independent positions each has its own ``π_l`` and the same swap ``(m, j)`` is
applied at every position (the paper's multivariate form), so ``f`` is called on the
pseudo-action vectors ``z^{m⇌j}`` and ``\hat g_{l,c} = Σ_j f_Δ^{c⇌j}(1/C − π_{l,j})``.
Unbiased: the other positions' pseudo-actions are exact samples independent of ``π_l``.
For ``C = 2`` it is ARM with ``u = π_1`` (``z = 1[u < σ(α)]``, ``z^{0⇌1} = 1[1 − u < σ(α)]``).

``f`` is a black box called once on the ``1 + C(C − 1)/2`` distinct swaps (``z`` and
``z^{m⇌j}``, ``m < j``) per row: :meth:`evaluations` (``f_evaluations``, on
``Discrete(1, 2)``, is 2). The paper evaluates only the *unique* pseudo-actions, a
data-dependent number (often far fewer); here every swap is evaluated, so the count is
fixed and the estimator vectorizes (``torch.func.vmap``). Each pseudo-action is itself a
sample of ``Cat(softmax φ)`` (swapping preserves the Dirichlet), so the surrogate's value
is their mean cost; :meth:`sample` emits ``z``. Memory: ``B·L·C³/2`` numbers for the swaps.

Noise: ``π (B, L, C)``, one ``Dirichlet(1_C)`` per position (normalised exponentials of
uniforms). Spaces: discrete, any number of classes ``C ≥ 2``. No hyper-parameters.
"""

from __future__ import annotations

import torch

from gangrad.estimators import _categorical as cat
from gangrad.estimators._base import AbstractEstimator, Cost
from gangrad.spaces import Discrete

__all__ = ["ARSM", "swap_pairs"]


def swap_pairs(C: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The permutations of the ``P = C(C − 1)/2`` swaps ``m < j``, ``(P, C)``, and the
    ``(C, C)`` table of which evaluation holds ``f(z^{m⇌j})`` (0 for ``z`` itself)."""
    m, j = torch.triu_indices(C, C, 1, device=device)  # P, P
    classes = torch.arange(C, device=device)
    perm = torch.where(classes == m[:, None], j[:, None],
                       torch.where(classes == j[:, None], m[:, None], classes))
    which = torch.zeros(C, C, dtype=torch.long, device=device)
    pair = torch.arange(1, len(m) + 1, device=device)
    which = which.index_put((m, j), pair).index_put((j, m), pair)
    return perm, which


class ARSM(AbstractEstimator):
    """Merge of swap-REINFORCE estimates over Dirichlet-augmented categoricals; unbiased."""

    key = "arsm"
    space_types = (Discrete,)
    differentiable_f = False
    rows_independent = True
    f_evaluations = 2

    def __init__(self) -> None:
        pass

    def evaluations(self, space) -> float:
        self._check_supported(space)
        return float(1 + space.classes * (space.classes - 1) // 2)

    def _noise(self, params, space, generator):
        e = -torch.log(cat.uniform_noise(params.shape, params, generator))
        return e / e.sum(-1, keepdim=True)  # B x L x C, Dirichlet(1)

    def _sample(self, params, noise, space):
        return cat.one_hot_argmax(params - noise.log())

    def _surrogate(self, params: torch.Tensor, f: Cost, noise, space) -> torch.Tensor:
        B, L, C = params.shape
        perm, which = swap_pairs(C, params.device)
        with torch.no_grad():
            phi, log_pi = params.detach(), noise.log()
            z = cat.one_hot_argmax(phi - log_pi)  # B x L x C
            swapped = cat.one_hot_argmax(phi.unsqueeze(-2) - log_pi[..., perm])  # B x L x P x C
            actions = torch.cat([z.unsqueeze(2), swapped], dim=2).transpose(1, 2)
            fv = f(actions.reshape(-1, L, C)).reshape(B, -1)  # B x (1 + P)
            table = fv[:, which]  # B x C x C: f(z^{m⇌j}) at [m, j]
            f_delta = table - table.mean(1, keepdim=True)
            g = torch.einsum("bcj,blj->blc", f_delta, 1 / C - noise)  # B x L x C
        return fv.mean(1) + (g * (params - params.detach())).sum((1, 2))
