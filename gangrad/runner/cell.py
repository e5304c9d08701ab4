"""Running cells: train with the cell's estimator, measure its gradients at checkpoints.

:func:`run_cells` runs cells that differ only in their seed, training the seeds together as
one batched model (:func:`gangrad.train.train_seeds`), each cell's numbers those it gets
alone; gradient statistics come from a :class:`gangrad.measure.GradientProbe` per seed,
the checkpoint callback of training. It does not raise for a failure of a cell itself: a
run that diverges is reported as ``diverged`` with its step, one that raises as ``failed``
with its traceback. A batch of seeds that raises is run again seed by seed, so each
seed's result is its own: the seeds that do not fail get exactly their lone runs. Results
are plain data (picklable, for worker processes and Ray), including the tidy metric rows
the store writes.
"""

from __future__ import annotations

import platform
import time
import traceback
from typing import Any

import numpy as np
import torch

import gangrad
from gangrad import estimators, tasks
from gangrad._provenance import pinned_threads
from gangrad.measure import GradientProbe, GradStatsConfig, stored_names, timing_names
from gangrad.runner.suite import annealed_label, schedules_of
from gangrad.train import TrainConfig, train, train_seeds

__all__ = ["TIMING_METRICS", "decode_samples", "run_cells"]

# metrics that measure the machine, not the estimator: excluded from reproducibility checks
TIMING_METRICS = ("elapsed_s", *timing_names())


def _encode(x: torch.Tensor | None, step: int) -> dict[str, Any] | None:
    """Generated samples as compact bytes: symbols (int16) for discrete, float32 otherwise."""
    if x is None:
        return None
    if x.dim() == 3:  # N x L x C (one-hot or soft): keep the symbols
        data, kind = x.argmax(-1).to(torch.int16).numpy(), "symbols"
    else:
        data, kind = x.to(torch.float32).numpy(), "values"
    return {"step": step, "kind": kind, "shape": list(data.shape), "dtype": str(data.dtype),
            "data": data.tobytes()}


def decode_samples(blob: dict[str, Any], classes: int | None = None) -> torch.Tensor:
    """The inverse of the stored form: ``(N, *space.shape)`` (one-hot for symbols)."""
    data = np.frombuffer(blob["data"], dtype=blob["dtype"]).reshape(blob["shape"])
    x = torch.from_numpy(data.copy())
    if blob["kind"] == "symbols":
        if classes is None:
            raise ValueError("decoding symbols needs the number of classes")
        return (x.long().unsqueeze(-1) == torch.arange(classes)).float()
    return x


def _without_seed(cell: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cell.items() if k != "seed"}


def _grad_rows(probe: GradientProbe) -> tuple[list[tuple[str, int, str, str, float]],
                                               dict[int, str]]:
    """The store's rows of one seed's gradient statistics, and each step's reference."""
    rows, references = [], {}
    names = stored_names()
    for frame in probe.frames:
        references[int(frame["step"].iloc[0])] = str(frame["reference"].iloc[0])
        for rec in frame.to_dict("records"):
            rows += [("grad", int(rec["step"]), rec["layer"], name, float(rec[name]))
                     for name in names]
    return rows, references


def run_cells(cells: list[dict[str, Any]], device: str | None = None,
              threads: int | None = None) -> list[dict[str, Any]]:
    """Train and measure cells (:meth:`gangrad.runner.Cell.config` dicts) that differ only
    in ``seed``, the seeds as one batch.

    Returns one result per cell, in order; ``wall_s`` is the whole batch's time.
    """
    # one thread per cell whatever the machine (workers use the other cores): the numbers
    # then repeat from a seed on any machine (gangrad._provenance)
    with pinned_threads(threads or 1):
        return _run_cells(cells, device)


def _run_cells(cells: list[dict[str, Any]], device: str | None) -> list[dict[str, Any]]:
    if not cells:
        return []
    if any(_without_seed(c) != _without_seed(cells[0]) for c in cells):
        raise ValueError("run_cells: the cells must differ in their seed only")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    meta = {"device": device if device == "cpu" else torch.cuda.get_device_name(device),
            "torch": torch.__version__, "gangrad": gangrad.__version__,
            "host": platform.node(), "threads": torch.get_num_threads()}
    cell = cells[0]
    seeds = [c["seed"] for c in cells]
    label = cell["estimator"]
    try:
        task = tasks.create(cell["task"], **cell["task_params"])
        est = estimators.create(cell["estimator"], **cell["estimator_params"])
        schedules = schedules_of(cell.get("anneal", {}))
        label = annealed_label(est, schedules)
        settings = dict(cell["grad_stats"])
        at = settings.pop("at_steps")
        probes = {seed: GradientProbe(task, None, GradStatsConfig(seed=seed), device=device,
                                      **settings) for seed in seeds}
        config = TrainConfig(**cell["train"], schedules=schedules)
        if len(seeds) == 1:
            histories = [train(task, est, config=config, seed=seeds[0], device=device,
                               checkpoint_steps=at, on_checkpoint=probes[seeds[0]])]
        else:
            histories = train_seeds(task, est, seeds, config=config, device=device,
                                    checkpoint_steps=at,
                                    on_checkpoint=lambda seed, step, state:
                                    probes[seed](step, state))
        wall = time.perf_counter() - start
        results = []
        for seed, history in zip(seeds, histories, strict=True):
            train_rows = [("train", int(rec["step"]), "", name, float(value))
                          for rec in history.to_dict("records")
                          for name, value in rec.items() if name != "step"]
            grad_rows, references = _grad_rows(probes[seed])
            last = int(history["step"].iloc[-1]) if len(history) else 0
            results.append({**meta, "status": history.attrs["status"],
                            "diverged_at": history.attrs["diverged_at"], "error": None,
                            "label": label, "references": references,
                            "samples": _encode(history.attrs.get("samples"), last),
                            "metrics": train_rows + grad_rows, "wall_s": wall})
        return results
    except Exception:
        error = traceback.format_exc()
        if len(cells) > 1:  # the batch raised: each seed alone, its failure its own
            return [_run_cells([c], device)[0] for c in cells]
        return [{**meta, "status": "failed", "diverged_at": None, "label": label,
                 "error": error, "metrics": [], "wall_s": time.perf_counter() - start}]
