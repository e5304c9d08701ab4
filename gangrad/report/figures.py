"""The report's figures; each takes the run's :class:`RunData` and returns ``(figure,
caption)``, or ``None`` when the run has no data for it. Captions say what to look at.
Drawn on the package's plotting convention (:mod:`gangrad.plotting`); statistic names and
axis titles come from :data:`gangrad.measure.STATISTICS`, estimator hyper-parameters
(σ, …) from the tidy metrics' columns."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gangrad import tasks
from gangrad.measure import statistic
from gangrad.plotting import grid, new_figure, palette
from gangrad.stats import mean_ci

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    Drawn = tuple[Figure, str] | None

__all__ = ["FIGURES", "RunData"]


@dataclass
class RunData:
    """What a report reads from the store: tidy metrics (with hyper-parameter columns),
    the cells (with their configs) and the stored samples by cell id."""

    metrics: pd.DataFrame
    cells: pd.DataFrame
    samples: dict[str, dict[str, Any]]


def _total_grad(run: RunData, names: list[str]) -> pd.DataFrame:
    """The gradient statistics ``names`` of the ``total`` layer, where they are finite
    (NaN: not measured, e.g. a cost with timing off; an infinite SNR has no point)."""
    m = run.metrics
    return m[(m["kind"] == "grad") & (m["layer"] == "total") & m["name"].isin(names)
             & np.isfinite(m["value"].astype(float))]


def training_curves(run: RunData) -> Drawn:
    metrics = run.metrics
    train = metrics[metrics["kind"] == "train"]
    if train.empty:
        return None
    task_keys = sorted(train["task"].unique())
    fig, axes = grid(2 * len(task_keys), cols=4)
    colors = palette(train["label"])
    for i, task_key in enumerate(task_keys):
        name, higher = tasks.headline_metric(task_key)
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


def bias_variance(run: RunData) -> Drawn:
    g = _total_grad(run, ["bias", "variance"])
    if g.empty:
        return None
    wide = g.pivot_table(index=["task", "label", "step"], columns="name",
                         values="value", aggfunc="mean").reset_index()
    task_keys = sorted(wide["task"].unique())
    fig, axes = grid(len(task_keys))
    colors = palette(wide["label"])
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
        ax.set_xlabel(statistic("variance").title)
        ax.set_ylabel(statistic("bias").title)
        ax.set_title(f"{task_key} (o step {first}, ■ step {last})", fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig, ("Bias against variance of each estimator's G gradient, per task, at the "
                 "first (circle) and last (square) checkpoint, mean over seeds; zero is drawn "
                 "at 1e-12. Lower-left is better; unbiased estimators sit at the bottom, "
                 "deterministic ones at the left.")


def snr_cosine(run: RunData) -> Drawn:
    g = _total_grad(run, ["snr", "cosine"])
    if g.empty or g["step"].nunique() < 2:
        return None
    task_keys = sorted(g["task"].unique())
    fig, axes = grid(2 * len(task_keys), cols=4)
    colors = palette(g["label"])
    for i, task_key in enumerate(task_keys):
        for j, name in enumerate(("snr", "cosine")):
            ax = axes[2 * i + j]
            sdf = g[(g["task"] == task_key) & (g["name"] == name)]
            sdf = sdf[np.isfinite(sdf["value"])]
            for label, ldf in sdf.groupby("label"):
                agg = ldf.groupby("step")["value"].mean()
                ax.plot(agg.index, agg.values, marker="o", color=colors[label], label=label)
            ax.set_xlabel("training step")
            ax.set_ylabel(statistic(name).title)
            if statistic(name).log:
                ax.set_yscale("log")
            ax.set_title(task_key, fontsize=10)
            if j == 1:
                ax.legend(fontsize=6)
    fig.tight_layout()
    return fig, ("Signal-to-noise ratio and cosine to the reference gradient along training "
                 "(checkpoints), mean over seeds. Higher is better for both; deterministic "
                 "estimators have infinite SNR and are left out of that panel.")


def sigma_sweep(run: RunData) -> Drawn:
    if "sigma" not in run.metrics:
        return None
    g = _total_grad(run, ["bias", "variance"])
    g = g[g["estimator"].isin(["smoothing", "score_function"])]
    if g.empty:
        return None
    g = g[g["step"] == 0]
    counts = g[g["estimator"] == "smoothing"].groupby("task")["sigma"].nunique()
    task_keys = sorted(counts[counts >= 2].index)
    if not task_keys:
        return None
    fig, axes = grid(2 * len(task_keys), cols=2, width=4.6)
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


def cost(run: RunData) -> Drawn:
    import seaborn as sns

    metrics = run.metrics
    g = _total_grad(run, ["time_ms", "var_x_time"])
    if g.empty:
        return None
    g = g[g["step"] == g.groupby("task")["step"].transform("max")]
    fig, axes = new_figure(1, 2, width=13, height=0.35 * g["label"].nunique()
                           * g["task"].nunique() / 2 + 2.5)
    for ax, name in zip(axes, ("time_ms", "var_x_time"), strict=True):
        title = statistic(name).title
        sdf = g[g["name"] == name].copy()
        if sdf.empty:
            ax.set_axis_off()
            ax.set_title(f"{title}: not measured", fontsize=10)
            continue
        sdf["cell"] = sdf["task"] + " · " + sdf["label"]
        order = sdf.groupby("cell")["value"].median().sort_index().index
        sns.barplot(data=sdf, y="cell", x="value", order=order, ax=ax, errorbar=None,
                    color="C0" if name == "time_ms" else "C2")
        if statistic(name).log and (sdf["value"] > 0).any():
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


def sample_grid(run: RunData) -> Drawn:
    import matplotlib.image

    samples = run.samples
    if not samples:
        return None
    from gangrad.runner.cell import decode_samples

    configs = dict(zip(run.cells["cell_id"], run.cells["config"], strict=True))
    cells = run.metrics.drop_duplicates("cell_id")[["cell_id", "task", "label", "seed"]]
    cells = cells[cells["cell_id"].isin(samples)]
    cells = cells[cells["seed"] == cells.groupby("task")["seed"].transform("min")]
    if cells.empty:
        return None
    cells = cells.sort_values(["task", "label"])
    n = len(cells)
    fig, axes = grid(n, width=3.0, height=3.0, cols=5)
    with tempfile.TemporaryDirectory() as tmp:
        for ax, (_, c) in zip(axes, cells.iterrows(), strict=True):
            # the cell's own task, with the parameters it was trained with
            task = tasks.create(c["task"], **json.loads(configs[c["cell_id"]])["task_params"])
            classes = getattr(task.space, "classes", None)
            x = decode_samples(samples[c["cell_id"]], classes)
            path = task.render(x, Path(tmp) / f"{c['cell_id']}.png")
            ax.imshow(matplotlib.image.imread(path))
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
