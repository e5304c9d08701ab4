"""The GAN literature's discrete estimators beside the group baselines, on two small problems.

G emits independent categoricals (``P`` positions, ``C`` classes, logits ``θ``); D is the
optimal one, logit ``T*(x) = Σ_p log p_d(x_p) − log p_θ(x_p)`` (Goodfellow et al. 2014,
Prop. 1); the cost is G's non-saturating loss ``f = softplus(−T*)``. For each estimator the
table gives its f-evaluations per row, its mean gradient over ``R`` batches of ``B`` rows
against the exact ``∇_θ E f`` (enumeration), its cosine with that and with the
maximum-likelihood direction ``∇_θ KL(p_d ‖ p_θ) = p_θ − p_d`` that MaliGAN and BGAN
target, and its per-row variance (trace). Run: ``python examples/gan_estimators.py``.
"""

from __future__ import annotations

import itertools

import torch
from torch.nn.functional import cosine_similarity, one_hot, softplus

from gangrad import estimators
from gangrad.estimators import logit_kwargs
from gangrad.spaces import Discrete

CONFIGS = [
    ("score_function", {"baseline": "mean", "samples": 4}, "RLOO (K=4)"),
    ("score_function", {"baseline": "group_mean", "samples": 4}, "Dr. GRPO, group_mean (K=4)"),
    ("score_function", {"baseline": "group_norm", "samples": 4}, "GRPO, group_norm (K=4)"),
    ("maligan", {}, "MaliGAN (batch-normalised)"),
    ("maligan", {"samples": 4, "normalize": "row"}, "MaliGAN (row, S=4)"),
    ("bgan", {}, "BGAN (M=20)"),
    ("gumbel_softmax", {"temperature": 1.0}, "Gumbel-softmax, τ=1"),
    ("gumbel_softmax", {"temperature": 0.1}, "Gumbel-softmax, τ=0.1 (end of an annealing)"),
    ("straight_through", {}, "straight-through"),
    ("decoupled_st", {}, "decoupled ST (defaults)"),
]


def problem(positions: int, classes: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    theta = 0.5 * torch.randn(positions, classes, generator=gen, dtype=torch.float64)
    p_data = torch.randn(positions, classes, generator=gen, dtype=torch.float64).softmax(-1)
    table = p_data.log() - theta.log_softmax(-1)
    return theta, p_data, lambda x: (x * table).sum((-1, -2))


def exact_gradient(theta: torch.Tensor, logit) -> torch.Tensor:
    positions, classes = theta.shape
    leaf = theta.clone().requires_grad_(True)
    log_p = leaf.log_softmax(-1)
    total = 0.0
    for symbols in itertools.product(range(classes), repeat=positions):
        x = one_hot(torch.tensor(symbols), classes).double().unsqueeze(0)
        log_prob = sum(log_p[p, s] for p, s in enumerate(symbols))
        total = total + log_prob.exp() * softplus(-logit(x))[0]
    return torch.autograd.grad(total, leaf)[0]


def table(positions: int, classes: int, batch: int = 64, batches: int = 1500,
          seed: int = 0) -> str:
    theta, p_data, logit = problem(positions, classes, seed)
    truth, ml = exact_gradient(theta, logit), theta.softmax(-1) - p_data
    lines = [f"P={positions} positions, C={classes} classes: exact ∇E f (position 0) "
             f"{[round(v, 4) for v in truth[0].tolist()]}",
             "| estimator | f-evaluations/row | mean (position 0) | ‖mean − ∇E f‖/‖∇E f‖ | "
             "cos(mean, ∇E f) | cos(mean, ∇KL) | per-row variance |",
             "|---|---|---|---|---|---|---|"]
    for key, hyper, label in CONFIGS:
        est = estimators.create(key, **hyper)
        gen = torch.Generator().manual_seed(seed + 1)
        grads = []
        for _ in range(batches):
            params = theta.expand(batch, positions, classes).clone().requires_grad_(True)
            est.surrogate(params, lambda x: softplus(-logit(x)), generator=gen,
                          **logit_kwargs(est, logit)).mean().backward()
            grads.append(params.grad.sum(0))
        g = torch.stack(grads)
        mean = g.mean(0)
        lines.append(
            f"| {label} | {est.evaluations(Discrete(positions, classes)):g} | "
            f"{[round(v, 4) for v in mean[0].tolist()]} | "
            f"{float((mean - truth).norm() / truth.norm()):.3f} | "
            f"{float(cosine_similarity(mean.flatten(), truth.flatten(), dim=0)):.4f} | "
            f"{float(cosine_similarity(mean.flatten(), ml.flatten(), dim=0)):.4f} | "
            f"{float(g.flatten(1).var(0).sum() * batch):.4g} |")
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(table(1, 2), end="\n\n")
    print(table(4, 3))
