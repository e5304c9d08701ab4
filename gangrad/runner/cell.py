"""Running one cell: train with the cell's estimator, measure its gradients at checkpoints.

:func:`run_cell` never raises for a failure of the cell itself: a run that diverges is
reported as ``diverged`` with its step, one that raises as ``failed`` with its traceback.
It returns plain data (picklable, for worker processes and Ray) including the tidy metric
rows the store writes.
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
from gangrad.train import TrainConfig, TrainState, train

__all__ = ["TIMING_METRICS", "decode_samples", "run_cell"]

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
    from gangrad.measure import gradient_stats
    from gangrad.measure.gradstats import label

    if threads:
        torch.set_num_threads(threads)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    meta = {"device": device if device == "cpu" else torch.cuda.get_device_name(device),
            "torch": torch.__version__, "gangrad": gangrad.__version__,
            "host": platform.node()}
    try:
        task = tasks.create(cell["task"], **cell["task_params"])
        est = estimators.create(cell["estimator"], **cell["estimator_params"])
        gs = dict(cell["grad_stats"])
        at = gs.pop("at_steps")
        grad_rows: list[tuple[str, int, str, str, float]] = []
        references: dict[int, str] = {}

        def measure(step: int, state: TrainState) -> None:
            df = gradient_stats(task, [est.frozen()], G=copy.deepcopy(state.G),
                                D=copy.deepcopy(state.D), seed=cell["seed"], device=device,
                                **gs)
            references[step] = str(df["reference"].iloc[0])
            for rec in df.to_dict("records"):
                for name in GRAD_METRICS:
                    grad_rows.append(("grad", step, rec["layer"], name, float(rec[name])))

        history = train(task, est, config=TrainConfig(**cell["train"]), seed=cell["seed"],
                        device=device, checkpoint_steps=at, on_checkpoint=measure)
        train_rows = [("train", int(rec["step"]), "", name, float(value))
                      for rec in history.to_dict("records")
                      for name, value in rec.items() if name != "step"]
        return {**meta, "status": history.attrs["status"],
                "diverged_at": history.attrs["diverged_at"], "error": None,
                "label": label(est), "references": references,
                "samples": _encode(history.attrs.get("samples"), int(history["step"].iloc[-1])),
                "metrics": train_rows + grad_rows, "wall_s": time.perf_counter() - start}
    except Exception:
        return {**meta, "status": "failed", "diverged_at": None, "label": cell["estimator"],
                "error": traceback.format_exc(), "metrics": [],
                "wall_s": time.perf_counter() - start}
