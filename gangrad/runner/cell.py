"""Running cells: train with the cell's estimator, measure its gradients at checkpoints.

:func:`run_cell` runs one cell; :func:`run_cells` runs cells that differ only in their
seed, training the seeds together as one batched model
(:func:`gangrad.train.train_seeds`): each cell's numbers are those :func:`run_cell` gives.
Neither raises for a failure of a cell itself: a run that diverges is reported as
``diverged`` with its step, one that raises as ``failed`` with its traceback. They return
plain data (picklable, for worker processes and Ray) including the tidy metric rows the
store writes.
"""

from __future__ import annotations

import copy
import platform
import time
import traceback
from typing import Any

import torch

import gangrad
from gangrad import estimators, tasks
from gangrad.train import TrainConfig, TrainState, train, train_seeds

__all__ = ["TIMING_METRICS", "decode_samples", "run_cell", "run_cells"]

# metrics that measure the machine, not the estimator: excluded from reproducibility checks
TIMING_METRICS = ("elapsed_s", "time_ms", "time_iqr_ms", "peak_mem_mb", "var_x_time")
GRAD_METRICS = ("bias", "bias_lo", "bias_hi", "variance", "variance_lo", "variance_hi", "mse",
                "mse_lo", "mse_hi", "snr", "snr_lo", "snr_hi", "cosine", "cosine_lo",
                "cosine_hi", "sign_agreement", "sign_agreement_lo", "sign_agreement_hi",
                "reference_se", "reference_norm", "time_ms", "time_iqr_ms", "peak_mem_mb",
                "f_evals", "var_x_time")


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
    import numpy as np

    data = np.frombuffer(blob["data"], dtype=blob["dtype"]).reshape(blob["shape"])
    x = torch.from_numpy(data.copy())
    if blob["kind"] == "symbols":
        if classes is None:
            raise ValueError("decoding symbols needs the number of classes")
        return (x.long().unsqueeze(-1) == torch.arange(classes)).float()
    return x


def run_cell(cell: dict[str, Any], device: str | None = None,
             threads: int | None = None) -> dict[str, Any]:
    """Train and measure one cell (a :meth:`gangrad.runner.suite.Cell.config` dict)."""
    return run_cells([cell], device, threads)[0]


def _without_seed(cell: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cell.items() if k != "seed"}


def run_cells(cells: list[dict[str, Any]], device: str | None = None,
              threads: int | None = None) -> list[dict[str, Any]]:
    """Train and measure cells that differ only in ``seed``, the seeds as one batch.

    Returns one result per cell, in order; ``wall_s`` is the whole batch's time.
    """
    from gangrad.measure import gradient_stats
    from gangrad.measure.gradstats import label

    if not cells:
        return []
    if any(_without_seed(c) != _without_seed(cells[0]) for c in cells):
        raise ValueError("run_cells: the cells must differ in their seed only")
    if threads:
        torch.set_num_threads(threads)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    meta = {"device": device if device == "cpu" else torch.cuda.get_device_name(device),
            "torch": torch.__version__, "gangrad": gangrad.__version__,
            "host": platform.node()}
    cell = cells[0]
    seeds = [c["seed"] for c in cells]
    try:
        task = tasks.create(cell["task"], **cell["task_params"])
        est = estimators.create(cell["estimator"], **cell["estimator_params"])
        gs = dict(cell["grad_stats"])
        at = gs.pop("at_steps")
        grad_rows: dict[int, list[tuple[str, int, str, str, float]]] = {s: [] for s in seeds}
        references: dict[int, dict[int, str]] = {s: {} for s in seeds}

        def measure(seed: int, step: int, state: TrainState) -> None:
            df = gradient_stats(task, [state.estimator.frozen()], G=copy.deepcopy(state.G),
                                D=copy.deepcopy(state.D), seed=seed, device=device, **gs)
            references[seed][step] = str(df["reference"].iloc[0])
            for rec in df.to_dict("records"):
                for name in GRAD_METRICS:
                    grad_rows[seed].append(("grad", step, rec["layer"], name, float(rec[name])))

        config = TrainConfig(**cell["train"])
        if len(seeds) == 1:
            histories = [train(task, est, config=config, seed=seeds[0], device=device,
                               checkpoint_steps=at,
                               on_checkpoint=lambda step, state: measure(seeds[0], step, state))]
        else:
            histories = train_seeds(task, est, seeds, config=config, device=device,
                                    checkpoint_steps=at, on_checkpoint=measure)
        wall = time.perf_counter() - start
        results = []
        for seed, history in zip(seeds, histories, strict=True):
            train_rows = [("train", int(rec["step"]), "", name, float(value))
                          for rec in history.to_dict("records")
                          for name, value in rec.items() if name != "step"]
            last = int(history["step"].iloc[-1]) if len(history) else 0
            results.append({**meta, "status": history.attrs["status"],
                            "diverged_at": history.attrs["diverged_at"], "error": None,
                            "label": label(est), "references": references[seed],
                            "samples": _encode(history.attrs.get("samples"), last),
                            "metrics": train_rows + grad_rows[seed], "wall_s": wall})
        return results
    except Exception:
        error = traceback.format_exc()
        return [{**meta, "status": "failed", "diverged_at": None, "label": cell["estimator"],
                 "error": error, "metrics": [], "wall_s": time.perf_counter() - start}
                for _ in cells]
