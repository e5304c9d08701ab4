"""What the command line prints: the estimator and task tables, gradient statistics."""

from __future__ import annotations

import pandas as pd

from gangrad import estimators
from gangrad._registry import hyperparameters
from gangrad.measure import STATISTICS
from gangrad.spaces import Continuous, Discrete

__all__ = ["estimator_table", "grad_stats_view", "print_table", "task_table"]


def _first_line(cls: type) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0].replace("``", "") if cls.__doc__ else ""


def _hyper(cls: type) -> str:
    return ", ".join(str(h) for h in hyperparameters(cls)) or "-"


def estimator_table() -> pd.DataFrame:
    rows = []
    for key, cls in sorted(estimators.REGISTRY.classes().items()):
        spaces = "+".join(t.__name__.lower() for t in (Continuous, Discrete)
                          if t in cls.space_types)
        if getattr(cls, "space_requirement", None):
            spaces = "binary" if "binary" in cls.space_requirement else cls.space_requirement
        try:
            differentiable = cls().differentiable_f  # may depend on hyper-parameters
        except Exception:
            differentiable = bool(getattr(cls, "differentiable_f", True))
        rows.append({
            "estimator": key,
            "spaces": spaces,
            "f": "differentiable" if differentiable else "black box",
            "hyper-parameters": _hyper(cls),
            "description": _first_line(cls),
        })
    return pd.DataFrame(rows)


def task_table() -> pd.DataFrame:
    from gangrad import tasks

    rows = []
    for key, cls in sorted(tasks.REGISTRY.classes().items()):
        task = cls()
        rows.append({
            "task": key,
            "space": str(task.space),
            "latent": task.latent_dim,
            "metrics": ", ".join([*task.metrics, *getattr(task, "generator_metrics", {})]),
            "exact reference": task.exact_reference or "-",
            "hyper-parameters": _hyper(cls),
        })
    return pd.DataFrame(rows)


def print_table(df: pd.DataFrame, title: str) -> None:
    print(f"\n{title}")
    if df.empty:
        print("  (none)")
        return
    with pd.option_context("display.max_colwidth", 80, "display.width", 250):
        print(df.to_string(index=False))


def grad_stats_view(df: pd.DataFrame, layers: bool = False) -> pd.DataFrame:
    """The printed form of gradient statistics: ``value [95% CI]`` for the statistics with
    an interval, the value alone for the others (:data:`gangrad.measure.STATISTICS`)."""
    rows = df if layers else df[df["layer"] == "total"]
    view = rows[[c for c in ("step", "sigma", "estimator", "layer") if c in rows]].copy()
    if not layers:
        view = view.drop(columns="layer")
    for stat in STATISTICS:
        if not stat.summary or stat.name not in rows:
            continue
        col = stat.name
        if stat.interval:
            view[col] = rows.apply(lambda r, c=col: f"{r[c]:.3g} [{r[c + '_lo']:.3g}, "
                                                    f"{r[c + '_hi']:.3g}]", axis=1)
        else:
            view[col] = rows[col].map(lambda v: f"{v:.3g}")
    return view
