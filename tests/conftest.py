"""Shared fixtures: the tiny suite and a store that holds one run of it.

Seeds: every randomized test fixes its seed (torch's global generator, or its own
``torch.Generator``), so a run is deterministic; tolerances follow from the sample size
(``tests/_stats.py`` states the rule: ``Z = 5`` standard errors).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gangrad import tasks
from gangrad.runner import run_suite

# Two tasks, a σ grid, a row-coupled baseline: every runner path in a few seconds.
TINY = """
name = "tiny"
seeds = [0, 1]
[train]
eval_samples = 200
[grad_stats]
at_steps = [0, "end"]
replicates = 8
batch_size = 8
timing_repeats = 2
reference_replicates = 16
[[tasks]]
key = "gaussian1d"
train = { steps = 6, eval_every = 3 }
estimators = ["pathwise", { key = "smoothing", sigma = [0.1, 1.0] },
              { key = "score_function", sigma = [0.1, 1.0], baseline = "mean" }]
[[tasks]]
key = "categorical"
train = { steps = 6, eval_every = 3 }
estimators = ["straight_through", "st_gumbel"]
"""


def write_suite(folder: Path, text: str = TINY, name: str = "tiny") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.fixture
def tiny(tmp_path) -> Path:
    """The tiny suite as a file of its own."""
    return write_suite(tmp_path)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """``(folder, store)``: a store holding one finished run of the tiny suite (read only)."""
    tmp = tmp_path_factory.mktemp("tiny-run")
    store = tmp / "s.sqlite"
    run_suite(write_suite(tmp), store=store, progress=False)
    return tmp, store


def linear_pair(seed: int = 0):
    """``(task, G, D)``: gaussian1d's linear G (seeded) and its logistic D fixed at
    D(x) = σ(1.5x − 3), for the differentiable-d tests."""
    task = tasks.create("gaussian1d")
    torch.manual_seed(seed)
    G, D = task.make_generator((1,)), task.make_discriminator()
    with torch.no_grad():
        D.linear.weight.fill_(1.5)
        D.linear.bias.fill_(-3.0)
    return task, G, D
