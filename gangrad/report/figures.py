"""The report's figures; each returns ``(figure, caption)`` or ``None`` when the run has
no data for it. Captions say what to look at."""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from gangrad import tasks
from gangrad.report.tables import mean_ci, primary_metric

__all__ = ["FIGURES", "png_bytes"]

Figure = tuple[plt.Figure, str] | None
DPI = 80


def png_bytes(fig: plt.Figure, dpi: int = DPI) -> bytes:
    """The figure as a compact PNG: an adaptive 128-colour palette keeps reports small."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, format="png",
                                                                     optimize=True)
    return out.getvalue()


def _palette(labels) -> dict[str, tuple]:
    labels = sorted(set(labels))
    return dict(zip(labels, sns.color_palette("tab10", max(len(labels), 1)), strict=False))


def _grid(n: int, width: float = 4.2, height: float = 3.2, cols: int = 4):
    cols = min(cols, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def training_curves(metrics: pd.DataFrame, samples, run: str) -> Figure:
    train = metrics[metrics["kind"] == "train"]
    if train.empty:
        return None
    task_keys = sorted(train["task"].unique())
    fig, axes = _grid(2 * len(task_keys), cols=4)
    colors = _palette(train["label"])
    for i, task_key in enumerate(task_keys):
        name, higher = primary_metric(task_key)
        tdf = train[train["task"] == task_key]
        wide = tdf[tdf["name"].isin([name, "elapsed_s"])].pivot_table(
            index=["label", "seed", "step"], columns="name", values="value").reset_index()
        if name not in wide:
            continue
        for j, xcol in enumerate(("step", "elapsed_s")):
            ax = axes[2 * i + j]
            for label, ldf in wide.groupby("label"):
                agg = ldf.groupby("step").agg(
                    x=(xcol, "mean"), **{"m": (name, "mean")}).reset_index()
                cis = ldf.groupby("step")[name].apply(lambda v: mean_ci(v)[1:]).tolist()
                lo = [c[0] for c in cis]
                hi = [c[1] for c in cis]
                ax.plot(agg["x"], agg["m"], color=colors[label], label=label, lw=1.5)
                ax.fill_between(agg["x"], lo, hi, color=colors[label], alpha=0.2, lw=0)
            ax.set_xlabel("step" if xcol == "step" else "wall-clock (s)")
            ax.set_ylabel(f"{name} ({'higher' if higher else 'lower'} is better)")
            ax.set_title(task_key, fontsize=10)
            if j == 1:
                ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    return fig, ("Training quality: each task's headline metric against steps (left) and "
                 "against wall-clock seconds (right), mean over seeds with a 95% band. Look "
                 "for which estimator reaches the best value, and how fast in real time.")


def bias_variance(metrics: pd.DataFrame, samples, run: str) -> Figure:
    g = metrics[(metrics["kind"] == "grad") & (metrics["layer"] == "total")
                & metrics["name"].isin(["bias", "variance"])]
    if g.empty:
        return None
    wide = g.pivot_table(index=["task", "label", "step"], columns="name",
                         values="value", aggfunc="mean").reset_index()
    task_keys = sorted(wide["task"].unique())
    fig, axes = _grid(len(task_keys))
    colors = _palette(wide["label"])
    floor = 1e-12
    for ax, task_key in zip(axes, task_keys, strict=True):
        tdf = wide[wide["task"] == task_key]
        first, last = tdf["step"].min(), tdf["step"].max()
        for (label, step), r in tdf.set_index(["label", "step"]).iterrows():
            marker = "o" if step == first else ("s" if step == last else ".")
            ax.scatter(max(r["variance"], floor), max(r["bias"], floor), color=colors[label],
                       marker=marker, s=40, label=label if step == last else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("variance (trace)")
        ax.set_ylabel("bias ‖E g − g*‖")
        ax.set_title(f"{task_key} (o step {first}, ■ step {last})", fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig, ("Bias against variance of each estimator's G gradient, per task, at the "
                 "first (circle) and last (square) checkpoint, mean over seeds; zero is drawn "
                 "at 1e-12. Lower-left is better; unbiased estimators sit at the bottom, "
                 "deterministic ones at the left.")


def snr_cosine(metrics: pd.DataFrame, samples, run: str) -> Figure:
    g = metrics[(metrics["kind"] == "grad") & (metrics["layer"] == "total")
                & metrics["name"].isin(["snr", "cosine"])]
    if g.empty or g["step"].nunique() < 2:
        return None
    task_keys = sorted(g["task"].unique())
    fig, axes = _grid(2 * len(task_keys), cols=4)
    colors = _palette(g["label"])
    for i, task_key in enumerate(task_keys):
        for j, name in enumerate(("snr", "cosine")):
            ax = axes[2 * i + j]
            sdf = g[(g["task"] == task_key) & (g["name"] == name)]
            sdf = sdf[np.isfinite(sdf["value"])]
            for label, ldf in sdf.groupby("label"):
                agg = ldf.groupby("step")["value"].mean()
                ax.plot(agg.index, agg.values, marker="o", color=colors[label], label=label)
            ax.set_xlabel("training step")
            ax.set_ylabel("SNR ‖E g‖/√tr Σ" if name == "snr" else "cosine to reference")
            if name == "snr":
                ax.set_yscale("log")
            ax.set_title(task_key, fontsize=10)
            if j == 1:
                ax.legend(fontsize=6)
    fig.tight_layout()
    return fig, ("Signal-to-noise ratio and cosine to the reference gradient along training "
                 "(checkpoints), mean over seeds. Higher is better for both; deterministic "
                 "estimators have infinite SNR and are left out of that panel.")


def _sigma(label: str) -> float | None:
    m = re.search(r"sigma=([0-9.eE+-]+)", label)
    return float(m.group(1)) if m else None


def sigma_sweep(metrics: pd.DataFrame, samples, run: str) -> Figure:
    g = metrics[(metrics["kind"] == "grad") & (metrics["layer"] == "total")
                & metrics["estimator"].isin(["smoothing", "score_function"])
                & metrics["name"].isin(["bias", "variance"])]
    if g.empty:
        return None
    g = g[g["step"] == 0].copy()
    g["sigma"] = g["label"].map(_sigma)
    default = {"smoothing": 0.1, "score_function": 0.1}
    g["sigma"] = g.apply(lambda r: default[r["estimator"]] if pd.isna(r["sigma"])
                         else r["sigma"], axis=1)
    counts = g[g["estimator"] == "smoothing"].groupby("task")["sigma"].nunique()
    task_keys = sorted(counts[counts >= 2].index)
    if not task_keys:
        return None
    fig, axes = _grid(2 * len(task_keys), cols=2, width=4.6)
    for i, task_key in enumerate(task_keys):
        for j, name in enumerate(("bias", "variance")):
            ax = axes[2 * i + j]
            sdf = g[(g["task"] == task_key) & (g["name"] == name)]
            for est, color in (("smoothing", "C0"), ("score_function", "C3")):
                e = sdf[sdf["estimator"] == est].groupby("sigma")["value"]
                if not len(e):
                    continue
                m = e.mean()
                ax.plot(m.index, np.maximum(m.values, 1e-12), marker="o", color=color,
                        label=est)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("σ")
            ax.set_ylabel(name)
            ax.set_title(f"{task_key}: {name} against σ (step 0)", fontsize=9)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, ("Goodfellow's σ-smoothing at initialisation: bias against the σ = 0 "
                 "gradient (left) and variance (right) against σ, log–log, with the "
                 "score-function estimator of the same smoothed objective. The smoothing "
                 "bias falls towards 0 as σ → 0 (eq. 1 of Goodfellow et al., 2014) while the "
                 "score function's variance grows.")


def cost(metrics: pd.DataFrame, samples, run: str) -> Figure:
    g = metrics[(metrics["kind"] == "grad") & (metrics["layer"] == "total")
                & metrics["name"].isin(["time_ms", "var_x_time"])]
    if g.empty:
        return None
    g = g[g["step"] == g.groupby("task")["step"].transform("max")]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.35 * g["label"].nunique()
                                             * g["task"].nunique() / 2 + 2.5))
    for ax, name, title in ((axes[0], "time_ms", "time per estimate (ms, median)"),
                            (axes[1], "var_x_time", "variance × time (lower is better)")):
        sdf = g[g["name"] == name].copy()
        sdf["cell"] = sdf["task"] + " · " + sdf["label"]
        order = sdf.groupby("cell")["value"].median().sort_index().index
        sns.barplot(data=sdf, y="cell", x="value", order=order, ax=ax, errorbar=None,
                    color="C0" if name == "time_ms" else "C2")
        if name == "var_x_time":
            ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("")
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    device = ", ".join(sorted(metrics["device"].unique())) if "device" in metrics else "cpu"
    return fig, (f"Cost at the last checkpoint: time per gradient estimate (forward, surrogate, "
                 f"backward; median of repeated timed calls; device: {device}) and efficiency, "
                 "variance × time: the variance left after spending equal time. Deterministic "
                 "estimators score 0.")


def sample_grid(metrics: pd.DataFrame, samples, run: str) -> Figure:
    if not samples:
        return None
    from gangrad.runner.cell import decode_samples

    cells = metrics.drop_duplicates("cell_id")[["cell_id", "task", "label", "seed"]]
    cells = cells[cells["cell_id"].isin(samples)]
    cells = cells[cells["seed"] == cells.groupby("task")["seed"].transform("min")]
    if cells.empty:
        return None
    cells = cells.sort_values(["task", "label"])
    n = len(cells)
    fig, axes = _grid(n, width=3.0, height=3.0, cols=5)
    with tempfile.TemporaryDirectory() as tmp:
        for ax, (_, c) in zip(axes, cells.iterrows(), strict=True):
            task = tasks.create(c["task"])
            classes = getattr(task.space, "classes", None)
            x = decode_samples(samples[c["cell_id"]], classes)
            path = task.render(x, Path(tmp) / f"{c['cell_id']}.png")
            ax.imshow(plt.imread(path))
            ax.set_title(f"{c['task']}\n{c['label']}", fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    return fig, ("Generated samples at the end of training (first seed), per task and "
                 "estimator: 2-D samples over the data's modes, digit grids, decoded sequences "
                 "(symbols are the argmax for the softmax pass-through).")


FIGURES = {
    "training": training_curves,
    "bias_variance": bias_variance,
    "snr_cosine": snr_cosine,
    "sigma_sweep": sigma_sweep,
    "cost": cost,
    "samples": sample_grid,
}
