"""PacGAN's Table 1 (Lin et al., 2018): mode collapse of a GAN and of PacGAN2 on the 2-D
ring and grid, reproduced.

Protocol (the paper, §5.1, and its released code, github.com/fjxmlzn/PacGAN,
``synthetic_data_experiments/2D{Ring,Grid}_GAN&PacGAN``), in gangrad's terms:

- task: ``ring8`` / ``grid25`` with ``arch="pacgan"`` (G: ``z ~ N(0, I_2)``, 4×400 ReLU with
  batch norm, linear output; D: 3 maxout layers of 200 units × 5 pieces, linear output;
  weights ``N(0, 0.02²)``), ``pack=1`` (GAN) or ``pack=2`` (PacGAN2), and a data set of
  100,000 points drawn once per run (``dataset_size``, ``dataset_seed`` = the run's seed);
- training: the non-saturating GAN with plain backprop (``pathwise``), 100 packs per batch
  (``batch_size = 100·pack`` samples), 400 epochs of 1,000 batches = 400,000 steps, one D
  update per G update, both computed from the same state (``update_order="simultaneous"``,
  as the code's ``ali_algorithm``), Adam with learning rate 1e-4;
- Adam's β: the code's ``Adam(beta1=0.8)`` is Blocks' Adam, which follows the first arXiv
  version of Kingma & Ba: ``beta1`` is the weight of the *new* gradient
  (``m_t = beta1·g + (1 − beta1)·m``) and the unset ``beta2`` defaults to 0.001 likewise.
  In torch's convention that is ``betas = (0.2, 0.999)``, which is what runs here; the
  paper's "β₁ = 0.8" quotes the code's argument;
- evaluation: at the end of training, 2,500 generator samples; ``modes``,
  ``high_quality`` (reported in percent, as the paper does) and ``reverse_kl`` by the
  released ``MetricLogger``'s rule (:mod:`gangrad.tasks._mixture`).

Differences that remain, each small by construction: batch norm in G normalises over the
whole batch of ``100·pack`` latents (the code ran each pack slot's 100 through G apart) and,
at evaluation, over the 2,500 evaluation latents (the code used running averages); the
packed G-gradient is ``1/pack`` of the code's, which Adam's update does not see
(:mod:`gangrad.tasks._pacgan`).

What to expect. The quick mode trains for 0.075% of the protocol: too short for the
generators to reach the modes, so its high-quality percentages sit near zero and its
agreements come from wide intervals. Longer runs follow the paper: after 25,000 steps
(25 of the 400 epochs; 3 seeds each, 12 runs sharing one H200 GPU at about 15 ms per step
each), PacGAN2 covered 8/8 ring modes (reverse KL 0.021 ± 0.002, mean ± s.e.) and 25/25
grid modes (0.23 ± 0.01), the GAN 7.7 ± 0.3 (0.24 ± 0.02) and 21 ± 1.2 (0.57 ± 0.09), with
high-quality samples at 84–89% (ring) and 51–56% (grid), still rising. Full mode runs its
40 runs of 400,000 steps one after another.

Comparison rows: gangrad's own default GAN on each task (the task's MLPs, fresh samples,
its ``training_defaults``, Adam betas (0.5, 0.999), alternating updates), as a user gets it
with ``gangrad.train.train(key, "pathwise")``.

Intervals: 95% Student-t over seeds (:func:`gangrad.stats.mean_ci`), kept inside each
metric's range. The paper gives mean ± standard error over 10 runs; :func:`agrees` reads
the published error as such.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from gangrad import tasks
from gangrad.reproductions._base import AbstractReproduction, Row, agrees
from gangrad.stats import mean_ci
from gangrad.train import TrainConfig, train, train_seeds

__all__ = ["PUBLISHED", "PacGANTable1"]

TASKS = ("ring8", "grid25")
METRICS = ("modes", "high_quality", "reverse_kl")
QUANTITY = {"modes": "modes", "high_quality": "high-quality %", "reverse_kl": "reverse KL"}
PACKS = {"GAN": 1, "PacGAN2": 2}
DEFAULT_GAN = "gangrad default MLP GAN"
#: (task, setting) -> metric -> (mean, standard error over 10 runs); high quality in %
PUBLISHED = {
    ("ring8", "GAN"): {"modes": (6.3, 0.5), "high_quality": (98.2, 0.2),
                       "reverse_kl": (0.45, 0.09)},
    ("ring8", "PacGAN2"): {"modes": (7.9, 0.1), "high_quality": (95.6, 2.0),
                           "reverse_kl": (0.07, 0.03)},
    ("grid25", "GAN"): {"modes": (17.3, 0.8), "high_quality": (94.8, 0.7),
                        "reverse_kl": (0.70, 0.07)},
    ("grid25", "PacGAN2"): {"modes": (23.8, 0.7), "high_quality": (91.3, 0.8),
                            "reverse_kl": (0.13, 0.04)},
}
FULL_SEEDS, FULL_STEPS, EPOCH_POINTS = 10, 400_000, 100_000


class PacGANTable1(AbstractReproduction):
    """Table 1 of PacGAN: GAN and PacGAN2 on ring8 and grid25; gangrad's default GAN beside."""

    name = "pacgan-table1"
    title = "PacGAN's Table 1: mode collapse on the 2-D ring and grid, GAN vs PacGAN2"
    source = ("Lin, Khetan, Fanti & Oh (2018), \"PacGAN: The power of two samples in "
              "generative adversarial networks\", NeurIPS, §5.1 and Table 1; released code "
              "github.com/fjxmlzn/PacGAN (synthetic_data_experiments)")
    error_kind = "standard error over 10 trials"
    full = {"seeds": FULL_SEEDS, "steps": FULL_STEPS, "dataset_size": EPOCH_POINTS,
            "packs_per_batch": 100, "lr": 1e-4, "betas": [0.2, 0.999],
            "eval_samples": 2500, "default_gan_steps": None}
    quick = {**full, "seeds": 3, "steps": 300, "default_gan_steps": 1000}

    def measure(self, settings: dict[str, Any], seed: int,
                progress: Callable[[str], None]) -> tuple[list[Row], pd.DataFrame]:
        seeds = [seed + i for i in range(_seed_count(settings))]
        records = []
        for key in TASKS:
            for setting, pack in PACKS.items():
                for s in seeds:
                    records.append(self._pacgan_run(key, pack, setting, s, settings))
                    progress(_line(records[-1]))
            records += self._default_runs(key, seeds, settings)
            for r in records[-len(seeds):]:
                progress(_line(r))
        data = pd.DataFrame(records)
        rows = [self._row(data, key, setting, metric, settings)
                for key in TASKS for metric in METRICS
                for setting in (*PACKS, DEFAULT_GAN)]
        return rows, data

    def _pacgan_run(self, key: str, pack: int, setting: str, seed: int,
                    settings: dict[str, Any]) -> dict[str, Any]:
        task = tasks.create(key, arch="pacgan", pack=pack,
                            dataset_size=settings["dataset_size"], dataset_seed=seed)
        beta1, beta2 = settings["betas"]
        cfg = TrainConfig(steps=settings["steps"],
                          batch_size=settings["packs_per_batch"] * pack,
                          lr_g=settings["lr"], lr_d=settings["lr"], d_steps=1,
                          beta1=beta1, beta2=beta2, update_order="simultaneous",
                          eval_every=settings["steps"], eval_samples=settings["eval_samples"],
                          seed=seed)
        start = time.perf_counter()
        history = train(task, "pathwise", config=cfg)
        return _record(key, setting, seed, history, time.perf_counter() - start)

    def _default_runs(self, key: str, seeds: list[int],
                      settings: dict[str, Any]) -> list[dict[str, Any]]:
        task = tasks.create(key)
        steps = settings["default_gan_steps"] or task.training_defaults["steps"]
        start = time.perf_counter()
        histories = train_seeds(task, "pathwise", seeds, steps=steps, eval_every=steps,
                                eval_samples=settings["eval_samples"])
        wall = (time.perf_counter() - start) / len(seeds)
        return [_record(key, DEFAULT_GAN, s, h, wall)
                for s, h in zip(seeds, histories, strict=True)]

    def _row(self, data: pd.DataFrame, key: str, setting: str, metric: str,
             settings: dict[str, Any]) -> Row:
        runs = data[(data["task"] == key) & (data["setting"] == setting)]
        done = runs[runs["status"] == "ok"]
        scale = 100.0 if metric == "high_quality" else 1.0
        spec = tasks.REGISTRY.get(key).metric(metric)
        k = len(tasks.create(key).centres)  # modes <= K and reverse KL <= log K
        high = {"modes": k, "reverse_kl": math.log(k)}.get(metric, spec.high)
        m, lo, hi = mean_ci(done[metric], low=spec.low, high=high)
        m, lo, hi = m * scale, lo * scale, hi * scale
        published, error = PUBLISHED.get((key, setting), {}).get(metric, (None, None))
        note = _note(key, setting, settings, len(runs) - len(done))
        if published is None:
            verdict = None
        elif len(done) < 2:
            verdict = False  # no interval to compare with
        else:
            verdict = agrees(published, error, lo, hi)
        return Row(f"{QUANTITY[metric]} ({key})", setting, published, error, m, lo, hi,
                   verdict, note)

    def summary(self, rows: list[Row], settings: dict[str, Any]) -> str:
        published = [r for r in rows if r.published is not None]
        agreed = sum(bool(r.agrees) for r in published)
        by = {(r.quantity, r.setting): r for r in rows}
        gaps = "; ".join(
            f"{key} modes GAN {by[(f'modes ({key})', 'GAN')].measured:.1f} vs PacGAN2 "
            f"{by[(f'modes ({key})', 'PacGAN2')].measured:.1f} (published "
            f"{by[(f'modes ({key})', 'GAN')].published:g} vs "
            f"{by[(f'modes ({key})', 'PacGAN2')].published:g})" for key in TASKS)
        share = settings["steps"] / FULL_STEPS
        scope = ("the published protocol" if share >= 1 else
                 f"{settings['steps']:,} of {FULL_STEPS:,} steps ({100 * share:.2g}%)")
        quality = [r for r in published if r.quantity.startswith(QUANTITY["high_quality"])]
        measured = [r.measured for r in quality if math.isfinite(r.measured)]
        unsettled = ""
        if measured and max(measured) < min(r.published for r in quality) - 10:
            unsettled = (f"; high-quality samples {min(measured):.3g}–{max(measured):.3g}% "
                         f"against the published {min(r.published for r in quality):g}–"
                         f"{max(r.published for r in quality):g}%: the generators have not "
                         f"settled on the modes yet")
        return (f"{agreed} of {len(published)} published numbers agree at {scope}, "
                f"{_seed_count(settings)} seeds{unsettled}; {gaps}.")

    def figure(self, rows: list[Row], data: pd.DataFrame, settings: dict[str, Any]):
        from gangrad.plotting import new_figure, palette

        fig, axes = new_figure(len(TASKS), len(METRICS), width=12.0, height=6.4)
        settings_order = [*PACKS, DEFAULT_GAN]
        colours = palette(settings_order)
        for i, key in enumerate(TASKS):
            for j, metric in enumerate(METRICS):
                ax = axes[i][j]
                for x, setting in enumerate(settings_order):
                    row = next(r for r in rows if r.quantity == f"{QUANTITY[metric]} ({key})"
                               and r.setting == setting)
                    if row.published is not None:
                        err = 1.96 * (row.published_error or 0.0)
                        ax.errorbar(x - 0.12, row.published, yerr=err, fmt="s", color="k",
                                    capsize=3, label="published ± 1.96 s.e." if x == 0 else None)
                    if math.isfinite(row.measured):
                        yerr = np.array([[row.measured - row.lo], [row.hi - row.measured]])
                        ax.errorbar(x + 0.12, row.measured,
                                    yerr=None if not np.isfinite(yerr).all() else yerr,
                                    fmt="o", color=colours[setting], capsize=3,
                                    label="measured, 95% CI" if x == 0 else None)
                ax.set_xticks(range(len(settings_order)),
                              ["GAN", "PacGAN2", "default\nMLP GAN"], fontsize=8)
                ax.set_title(f"{key}: {QUANTITY[metric]}", fontsize=9)
                if i == 0 and j == 0:
                    ax.legend(fontsize=7)
        fig.tight_layout()
        share = settings["steps"] / FULL_STEPS
        caption = (f"Published (black squares, ± 1.96 standard errors over 10 runs) and "
                   f"measured (circles, 95% interval over {_seed_count(settings)} seeds) "
                   f"mode coverage, high-quality samples and reverse KL of the mode "
                   f"histogram, after {settings['steps']:,} training steps "
                   f"({100 * share:.2g}% of the published 400 epochs). The third column of "
                   f"each panel is gangrad's default MLP GAN, for comparison.")
        return fig, caption


def _seed_count(settings: dict[str, Any]) -> int:
    seeds = settings["seeds"]
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ValueError(f"pacgan-table1: seeds must be an integer >= 2 (an interval needs "
                         f"two), got {seeds!r}")
    return seeds


def _record(key: str, setting: str, seed: int, history: pd.DataFrame,
            wall: float) -> dict[str, Any]:
    last = history.iloc[-1]
    ok = history.attrs["status"] == "ok"
    return {"task": key, "setting": setting, "seed": seed, "steps": int(last["step"]),
            "status": history.attrs["status"],
            **{m: float(last[m]) if ok else math.nan for m in METRICS},
            "wall_s": round(wall, 2)}


def _line(record: dict[str, Any]) -> str:
    return (f"{record['task']} {record['setting']} seed {record['seed']}: "
            f"{record['status']}, modes {record['modes']:.0f}, high quality "
            f"{100 * record['high_quality']:.1f}%, reverse KL {record['reverse_kl']:.3f} "
            f"({record['wall_s']:.0f} s)")


def _note(key: str, setting: str, settings: dict[str, Any], diverged: int) -> str:
    seeds = _seed_count(settings)
    parts = []
    if setting == DEFAULT_GAN:
        default = tasks.REGISTRY.get(key).training_defaults["steps"]
        steps = settings["default_gan_steps"] or default
        if steps != default:
            parts.append(f"{steps:,} of the task's default {default:,} steps")
        if seeds != FULL_SEEDS:
            parts.append(f"{seeds} seeds")
    else:
        if settings["steps"] != FULL_STEPS:
            epochs = settings["steps"] * settings["packs_per_batch"] / settings["dataset_size"]
            parts.append(f"{settings['steps']:,} of {FULL_STEPS:,} steps ({epochs:.3g} of "
                         f"400 epochs)")
        if seeds != FULL_SEEDS:
            parts.append(f"{seeds} of {FULL_SEEDS} seeds")
        if settings["dataset_size"] != EPOCH_POINTS:
            parts.append(f"data set of {settings['dataset_size']:,} points (published "
                         f"{EPOCH_POINTS:,})")
    if diverged:
        parts.append(f"{diverged} seed(s) diverged and are left out")
    return "; ".join(parts)
