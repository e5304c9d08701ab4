r"""PacGAN's Table 1 (Lin et al., 2018): mode collapse of a GAN and of PacGAN2 on the 2-D
ring and grid, reproduced.

Protocol (the paper, §5.1, and its released code, github.com/fjxmlzn/PacGAN,
``synthetic_data_experiments/2D{Ring,Grid}_GAN&PacGAN/{config,pacgan_task}.py`` and
``PacGAN/pacgan/{bricks,datasets,streams,extensions}.py``), in gangrad's terms:

- task: ``ring8`` / ``grid25`` with ``arch="pacgan"`` (G: ``z ~ N(0, I_2)``, 4×400 ReLU with
  batch norm, linear output; D: 3 maxout layers of 200 units × 5 pieces, linear output;
  weights ``N(0, 0.02²)``), ``pack=1`` (GAN) or ``pack=2`` (PacGAN2), a data set of 100,000
  points (``dataset_size``) and the code's batch norm (``batch_norm="pacgan"``);
- training: the non-saturating GAN with plain backprop (``pathwise``), 100 packs per batch
  (``batch_size = 100·pack`` samples), 400 epochs of 1,000 batches = 400,000 steps, one D
  update per G update, both computed from the same state (``update_order="simultaneous"``,
  the code's ``ali_algorithm``: one ``GradientDescent`` over both losses), Adam with
  learning rate 1e-4 and β₂ = 0.999;
- evaluation: at the end of training, 2,500 generator samples; ``modes``,
  ``high_quality`` (reported in percent, as the paper does) and ``reverse_kl`` by the
  released ``MetricLogger``'s rule (:mod:`gangrad.tasks._mixture`).

Each point below was settled against the released code; the evidence is stated with it.

- **One batch of fakes for both losses** (``fakes="shared"``). ``PacGAN.compute_losses``
  (``bricks.py``) builds ``x̃ = G(z)`` once per slot and returns the discriminator's and the
  generator's loss from the same predictions on it; ``ali_algorithm`` takes both gradients
  from that one graph. gangrad's default draws fresh latents for G's step.
- **Batch norm as the code computes it** (``batch_norm="pacgan"``,
  :class:`gangrad.tasks._pacgan.BlocksBatchNorm`). In training, ``compute_losses`` runs G
  once per pack slot (``for z in zs``), so each slot of 100 latents is normalised with its
  own statistics, ``σ = √(var + 10⁻⁴)``. ``create_models`` averages the slots' minibatch
  estimates (``pop_update_merges``) and adds ``bn_updates = [(p, m·0.05 + p·0.95)]`` to the
  training algorithm: running averages updated once per step. The samples the metrics are
  computed on come from ``GraphLogger``, which applies ``gan.decoder`` outside the
  ``batch_normalization`` context, i.e. in Blocks' inference mode, normalising with those
  running averages (the population statistics start at mean 0, std 1). gangrad's
  evaluation runs G in ``eval()`` mode, which reads them.
- **Real data in shuffled epochs** (``data_order="epochs"``, :class:`gangrad.train.step.Epochs`).
  ``GaussianPackingMixture`` draws the 100,000 points once, then for each pack slot a
  bootstrap index array (``np.random.randint(0, N, N)``) fixing the packs;
  ``ShuffledScheme(N, batch_size=100)`` serves them in a fresh permutation every epoch.
  Departure kept: the code drew a data set per run; here each task has one data set per
  table (drawn from the reproduction's seed) and each run bootstraps its packs from it with
  its own stream, so the seeds of a configuration train as one batched model
  (:func:`gangrad.train.train_seeds`; each seed the run it would be alone, to float32
  rounding per step at 100 packs, see :mod:`gangrad.train.seeds`).
- **Adam's β₁.** The code passes ``Adam(learning_rate=1e-4, beta1=0.8)`` to Blocks and
  leaves ``beta2`` at its default; the paper reports "β₁ = 0.8". Which β₁ this is in the
  usual (torch) convention depends on the Blocks the code ran on. Blocks' Adam weighted
  the *new* gradient by ``beta1`` (``mean_t = beta_1t·g + (1 − beta_1t)·mean``, defaults
  ``beta1=0.1, beta2=0.001``, the first arXiv version of Kingma & Ba) until commit
  aa064519 (24 January 2017, "Updated moment parametrization to v8 of the adam paper"),
  which switched to the standard form and defaults ``0.9, 0.999``; β₂ is 0.999 either way.
  Blocks' last release, 0.2 (February 2016, the ``stable`` branch), has the old form; the
  commit is on ``master`` only. For the old reading: the settings come verbatim from ALI's
  ``experiments/gan_mixture.py`` (github.com/IshmaelBelghazi/ALI, May–June 2016, same
  sizes, ``BETA1 = 0.8``, learning rate 1e-4, batch 100), tuned under the old form, and
  the ALI paper's hyper-parameter tables write "β₂ = 10⁻³", the old form's notation. For
  the new: ALI's README requires Blocks' "development version" and PacGAN's README says to
  install ALI as it instructs; PacGAN's code is from January 2018 (first commit 28 January
  2018), a year after the switch, and the Blocks APIs it calls exist in both. Neither
  settles it: its first commit's ``.theanorc`` (ALI's, with ``device = gpu3``; removed 7
  February 2018) selects Theano's old GPU back-end, deprecated in Theano 0.9 (March 2017)
  and dropped after it, so the environment predates autumn 2017, which both readings
  allow. The evidence stays split, so both readings run as rows: ``beta1=0.8`` (the
  paper's number in torch's convention, the likelier) and ``beta1=0.2`` (Blocks before
  2017).

Remaining differences, each small by construction: the packed G-gradient is ``1/pack`` of
the code's, which Adam's update does not see (:mod:`gangrad.tasks._pacgan`); Blocks ran in
Theano's float32 like torch here; the evaluation latents are each run's own draws (the
code's ``GraphLogger`` used one fixed set of 2,500).

Budgets (``gangrad reproduce pacgan-table1 [--full | --budget cpu]``):

- ``full``: the published protocol, both Adam readings, 10 seeds, both tasks; its rows
  get verdicts against the published numbers, with margins declared below.
- ``cpu``: about 30 minutes on 2 CPU cores: grid25 only, GAN and PacGAN2 at
  ``beta1=0.8``, 10 seeds, the first :data:`CPU_STEPS` steps of the published protocol
  (4 of its 400 epochs; nothing else changed), the two configurations in two processes.
  It decides the paper's qualitative claim on grid25, that PacGAN2 covers more modes with
  a lower reverse KL than the GAN, by paired comparisons over the seeds
  (:func:`gangrad.stats.compare_paired`, Holm over the two metrics): at that point of
  training, which is what a CPU can reach. Rows are *scaled*. (Short runs showed both
  generators still spread between the modes at 2,000 steps, with 1–2% high-quality
  samples, at learning rates 1e-4 and 1e-3 alike: a larger learning rate would not buy
  convergence within the budget, so the protocol's is kept.)
- ``quick`` (the default): a few minutes on 2 cores, 300 steps, 3 seeds, both tasks at
  ``beta1=0.8``; rows are *scaled*: a smoke test of the whole pipeline, not a result.

The seeds of each (task, pack, reading) train as one batched model; the configurations
run in ``workers`` processes at once (on one GPU for ``full``: its steps are short kernels
that leave the device idle between launches, so several processes fill it).

Rows. For each task, metric and configuration, the published mean ± standard error over
10 runs beside the measured mean over seeds with its 95% Student-t interval (kept inside
the metric's range); ``se`` is the seeds' standard error with ``n − 1`` degrees of freedom.
The claim rows ``PacGAN2 − GAN, modes`` and ``…, reverse KL`` set the paired mean difference
over seeds beside the difference of the published means (its error the two published
errors in quadrature), and their notes give the paired comparison's outcome. Comparison
rows: gangrad's own default GAN on each task (the task's MLPs, fresh samples, its
``training_defaults``, Adam betas (0.5, 0.999), alternating updates), as a user gets it
with ``gangrad.train.train(key, "pathwise")``.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

import numpy as np
import pandas as pd

from gangrad import tasks
from gangrad._provenance import result_threads
from gangrad.reproductions._base import AbstractReproduction, Margin, Row, verdict_counts
from gangrad.stats import compare_paired, holm, mean_ci
from gangrad.train import TrainConfig, train_seeds

__all__ = ["CPU_STEPS", "PUBLISHED", "READINGS", "PacGANTable1", "claim"]

TASKS = ("ring8", "grid25")
METRICS = ("modes", "high_quality", "reverse_kl")
QUANTITY = {"modes": "modes", "high_quality": "high-quality %", "reverse_kl": "reverse KL"}
PACKS = {"GAN": 1, "PacGAN2": 2}
#: Adam's β₁ in torch's convention -> how a row names it (module doc: "Adam's β₁")
READINGS = {0.8: "beta1=0.8", 0.2: "beta1=0.2 (Blocks before 2017)"}
DEFAULT_GAN = "gangrad default MLP GAN"
CLAIM = "PacGAN2 − GAN"
CLAIM_METRICS = ("modes", "reverse_kl")
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
#: the training options that make the code's protocol (module doc)
ORIGINAL = {"fakes": "shared", "data_order": "epochs", "update_order": "simultaneous"}
#: the cpu budget's steps: PacGAN2's 10 seeds, batched, take about 40 ms of one core per
#: seed-step (the GAN's 30 ms), so its process ends within 30 minutes on one of the two
#: cores, the GAN's on the other (CPU time measured under load; to be confirmed on a quiet
#: machine)
CPU_STEPS = 4_000


class PacGANTable1(AbstractReproduction):
    """Table 1 of PacGAN: GAN and PacGAN2 on ring8 and grid25; gangrad's default GAN beside."""

    name = "pacgan-table1"
    title = "PacGAN's Table 1: mode collapse on the 2-D ring and grid, GAN vs PacGAN2"
    source = ("Lin, Khetan, Fanti & Oh (2018), \"PacGAN: The power of two samples in "
              "generative adversarial networks\", NeurIPS, §5.1 and Table 1; released code "
              "github.com/fjxmlzn/PacGAN (synthetic_data_experiments)")
    error_kind = "standard error over 10 trials"
    published_dof = FULL_SEEDS - 1
    margins = {"modes": Margin(1.0), "high-quality %": Margin(5.0),
               "reverse KL": Margin(0.1), f"{CLAIM}, modes": Margin(1.0),
               f"{CLAIM}, reverse KL": Margin(0.1)}
    full = {"seeds": FULL_SEEDS, "steps": FULL_STEPS, "tasks": list(TASKS),
            "beta1": list(READINGS), "beta2": 0.999, "dataset_size": EPOCH_POINTS,
            "packs_per_batch": 100, "lr": 1e-4, "eval_samples": 2500, "evaluations": 20,
            "default_gan_steps": None, "workers": 8}
    quick = {**full, "seeds": 3, "steps": 300, "beta1": [0.8], "evaluations": 3,
             "default_gan_steps": 1000, "workers": 2}
    budgets = {"cpu": {**full, "steps": CPU_STEPS, "tasks": ["grid25"], "beta1": [0.8],
                       "evaluations": 10, "default_gan_steps": 0, "workers": 2}}

    def measure(self, settings: dict[str, Any], seed: int,
                progress: Callable[[str], None]) -> tuple[list[Row], pd.DataFrame]:
        jobs = _jobs(settings, seed)
        records = []
        for done in _run(jobs, settings["workers"], progress):
            records += done
            for r in done:
                if r["step"] == r["steps"] or r["status"] != "ok":
                    progress(_line(r))
        data = pd.DataFrame(records).sort_values(  # the same order whichever job ends first
            ["task", "setting", "beta1", "seed", "step"], kind="stable").reset_index(drop=True)
        final = _finals(data)
        rows = []
        for key in settings["tasks"]:
            for metric in METRICS:
                for beta1 in settings["beta1"]:
                    rows += [self._row(final, key, setting, beta1, metric, settings)
                             for setting in PACKS]
                if _default_steps(key, settings):
                    rows.append(self._row(final, key, DEFAULT_GAN, None, metric, settings))
            for beta1 in settings["beta1"]:
                rows += claim_rows(final, key, beta1, settings)
        return rows, data

    def _row(self, final: pd.DataFrame, key: str, setting: str, beta1: float | None,
             metric: str, settings: dict[str, Any]) -> Row:
        runs = final[(final["task"] == key) & (final["setting"] == setting)
                     & ((final["beta1"] == beta1) if beta1 is not None else True)]
        done = runs[runs["status"] == "ok"]
        scale = 100.0 if metric == "high_quality" else 1.0
        low, high = _range(key, metric)
        m, lo, hi = (scale * v for v in mean_ci(done[metric], low=low, high=high))
        n = len(done)
        se = scale * float(done[metric].std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
        published, error = PUBLISHED.get((key, setting), {}).get(metric, (None, None))
        note = _note(key, setting, settings, len(runs) - n)
        label = setting if beta1 is None else f"{setting}, {READINGS[beta1]}"
        return Row(f"{QUANTITY[metric]} ({key})", label, published, error, m, lo, hi,
                   note=note, se=se, dof=max(n - 1, 1),
                   verdict="scaled" if published is not None and _scaled(settings) else None)

    def summary(self, rows: list[Row], settings: dict[str, Any]) -> str:
        published = [r for r in rows if r.published is not None]
        share = settings["steps"] / FULL_STEPS
        scope = ("the published protocol" if not _scaled(settings) else
                 f"{settings['steps']:,} of {FULL_STEPS:,} steps ({100 * share:.2g}%), "
                 f"{settings['seeds']} seeds")
        claims = "; ".join(dict.fromkeys(r.note.split(" — ")[0] for r in rows
                                         if r.quantity.startswith(CLAIM)))
        return (f"{len(published)} published numbers at {scope}: "
                f"{verdict_counts(published)}. The paper's claim (PacGAN2 vs GAN, paired "
                f"over seeds): {claims}.")

    def figure(self, rows: list[Row], data: pd.DataFrame, settings: dict[str, Any]):
        from gangrad.plotting import new_figure, palette

        keys = settings["tasks"]
        fig, axes = new_figure(len(keys), len(METRICS), width=12.0,
                               height=3.2 * len(keys) + 0.4)
        axes = np.asarray(axes, dtype=object).reshape(len(keys), len(METRICS))
        labels = [f"{s}, {READINGS[b]}" for b in settings["beta1"] for s in PACKS]
        colours = palette([*labels, DEFAULT_GAN])
        for i, key in enumerate(keys):
            for j, metric in enumerate(METRICS):
                ax = axes[i][j]
                shown = [r for r in rows if r.quantity == f"{QUANTITY[metric]} ({key})"]
                for x, row in enumerate(shown):
                    if row.published is not None:
                        ax.errorbar(x - 0.12, row.published, yerr=1.96 * row.published_error,
                                    fmt="s", color="k", capsize=3,
                                    label="published ± 1.96 s.e." if x == 0 else None)
                    if math.isfinite(row.measured):
                        yerr = np.array([[row.measured - row.lo], [row.hi - row.measured]])
                        ax.errorbar(x + 0.12, row.measured,
                                    yerr=yerr if np.isfinite(yerr).all() else None,
                                    fmt="o", color=colours[row.setting], capsize=3,
                                    label="measured, 95% CI" if x == 0 else None)
                ax.set_xticks(range(len(shown)),
                              [r.setting.replace(", ", "\n", 1) for r in shown], fontsize=6)
                ax.set_title(f"{key}: {QUANTITY[metric]}", fontsize=9)
                if i == 0 and j == 0:
                    ax.legend(fontsize=7)
        fig.tight_layout()
        share = settings["steps"] / FULL_STEPS
        caption = (f"Published (black squares, ± 1.96 standard errors over 10 runs) and "
                   f"measured (circles, 95% interval over {settings['seeds']} seeds) mode "
                   f"coverage, high-quality samples and reverse KL of the mode histogram, "
                   f"after {settings['steps']:,} training steps ({100 * share:.2g}% of the "
                   f"published 400 epochs), for each reading of Adam's beta1; gangrad's "
                   f"default MLP GAN beside, where run.")
        return fig, caption


# -- the runs ---------------------------------------------------------------------------------
def _seed_count(settings: dict[str, Any]) -> int:
    seeds = settings["seeds"]
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ValueError(f"pacgan-table1: seeds must be an integer >= 2 (an interval needs "
                         f"two), got {seeds!r}")
    return seeds


def _jobs(settings: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """One job per configuration: its seeds train as one batched model."""
    seeds = [seed + i for i in range(_seed_count(settings))]
    unknown = sorted(set(settings["tasks"]) - set(TASKS))
    if unknown or not settings["tasks"]:
        raise ValueError(f"pacgan-table1: tasks must be among {', '.join(TASKS)}, got "
                         f"{settings['tasks']!r}")
    bad = [b for b in settings["beta1"] if b not in READINGS]
    if bad or not settings["beta1"]:
        raise ValueError(f"pacgan-table1: beta1 must be among {list(READINGS)}, got "
                         f"{settings['beta1']!r}")
    if isinstance(settings["workers"], bool) or not (isinstance(settings["workers"], int)
                                                    and settings["workers"] >= 1):
        raise ValueError(f"pacgan-table1: workers must be an integer >= 1, got "
                         f"{settings['workers']!r}")
    jobs = []
    for key in settings["tasks"]:
        for setting, pack in PACKS.items():
            for beta1 in settings["beta1"]:
                jobs.append({"task": key, "setting": setting, "pack": pack, "beta1": beta1,
                             "seeds": seeds, "dataset_seed": seed, "settings": settings})
        if _default_steps(key, settings):
            jobs.append({"task": key, "setting": DEFAULT_GAN, "pack": 1, "beta1": None,
                         "seeds": seeds, "settings": settings})
    return jobs


def _run(jobs: list[dict[str, Any]], workers: int, progress: Callable[[str], None]):
    """Each job's records, as the jobs finish: in this process, or ``workers`` at once in
    their own processes, each with its share of the pinned result threads
    (:func:`gangrad._provenance.result_threads`, at least one), so that the numbers do not
    depend on the machine's core count; their progress lines pass through a queue."""
    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            yield run_job(job, progress=progress)
        return
    workers = min(workers, len(jobs))
    threads = max(1, result_threads() // workers)
    context = multiprocessing.get_context("spawn")  # a CUDA-safe start
    with context.Manager() as manager, ProcessPoolExecutor(workers,
                                                            mp_context=context) as pool:
        lines = manager.Queue()
        pending = {pool.submit(run_job, job, threads, lines) for job in jobs}
        while pending:
            finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            while not lines.empty():
                progress(lines.get())
            for future in finished:
                yield future.result()


def run_job(job: dict[str, Any], threads: int | None = None, lines=None,
            progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Train one configuration's seeds as one batched model (on ``threads`` CPU threads,
    if given); one record per seed and evaluation. Progress lines go to ``progress`` or
    onto the queue ``lines``."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    say = progress if progress is not None else (lines.put if lines is not None else None)
    s, key = job["settings"], job["task"]
    if job["setting"] == DEFAULT_GAN:
        task = tasks.create(key)
        steps = _default_steps(key, s)
        cfg = TrainConfig(steps=steps, eval_every=steps, eval_samples=s["eval_samples"])
    else:
        task = tasks.create(key, arch="pacgan", pack=job["pack"],
                            dataset_size=s["dataset_size"], dataset_seed=job["dataset_seed"],
                            batch_norm="pacgan")
        steps = s["steps"]
        cfg = TrainConfig(steps=steps, batch_size=s["packs_per_batch"] * job["pack"],
                          lr_g=s["lr"], lr_d=s["lr"], d_steps=1, beta1=job["beta1"],
                          beta2=s["beta2"], eval_every=max(1, steps // s["evaluations"]),
                          eval_samples=s["eval_samples"], **ORIGINAL)
    name = f"{key} {job['setting']}" + ("" if job["beta1"] is None else
                                         f" beta1={job['beta1']}")

    def report(row: dict[str, Any]) -> None:
        if say is not None and "modes" in row and 0 < row["step"] < steps:
            say(f"{name} seed {row['seed']}: step {row['step']:,}/{steps:,}, modes "
                f"{row['modes']:.0f}, reverse KL {row['reverse_kl']:.3f} "
                f"({row['elapsed_s']:.0f} s)")

    start = time.perf_counter()
    histories = train_seeds(task, "pathwise", job["seeds"], config=cfg, progress=report)
    wall = time.perf_counter() - start
    out = []
    for seed, h in zip(job["seeds"], histories, strict=True):
        for row in h.itertuples():
            out.append({"task": key, "setting": job["setting"], "beta1": job["beta1"],
                        "seed": seed, "step": int(row.step), "steps": steps,
                        "status": h.attrs["status"],
                        **{m: float(getattr(row, m)) for m in METRICS},
                        "wall_s": round(wall, 2)})
        if h.attrs["status"] != "ok":
            out.append({"task": key, "setting": job["setting"], "beta1": job["beta1"],
                        "seed": seed, "step": h.attrs["diverged_at"], "steps": steps,
                        "status": h.attrs["status"], **{m: math.nan for m in METRICS},
                        "wall_s": round(wall, 2)})
    return out


def _finals(data: pd.DataFrame) -> pd.DataFrame:
    """Each run's last record: its final metrics (NaN for a diverged run)."""
    last = data.sort_values("step").groupby(["task", "setting", "beta1", "seed"],
                                            dropna=False).tail(1)
    return last.reset_index(drop=True)


def _default_steps(key: str, settings: dict[str, Any]) -> int:
    """The default GAN's steps (0: no comparison rows)."""
    steps = settings["default_gan_steps"]
    return tasks.REGISTRY.get(key).training_defaults["steps"] if steps is None else steps


def _range(key: str, metric: str) -> tuple[float, float]:
    spec = tasks.REGISTRY.get(key).metric(metric)
    k = len(tasks.create(key).centres)  # modes <= K and reverse KL <= log K
    return spec.low, {"modes": k, "reverse_kl": math.log(k)}.get(metric, spec.high)


def _scaled(settings: dict[str, Any]) -> bool:
    """Whether ``settings`` depart from the published protocol (either Adam reading)."""
    keep = ("seeds", "steps", "beta2", "dataset_size", "packs_per_batch", "lr",
            "eval_samples")
    return any(settings[k] != PacGANTable1.full[k] for k in keep)


# -- the paper's claim ------------------------------------------------------------------------
def claim(final: pd.DataFrame, key: str, beta1: float) -> dict[str, Any]:
    """PacGAN2 against GAN on ``key`` (``beta1`` reading), paired over the seeds both
    finished: for modes (higher is better) and reverse KL (lower), the paired comparison
    (:func:`gangrad.stats.compare_paired`, margin as the table's), Holm-adjusted over the
    two metrics and decided at 5%; ``verdict`` is ``supported`` when PacGAN2 is better on
    both, ``contradicted`` when it is worse or equivalent on either, else ``undetermined``.
    """
    ok = final[(final["task"] == key) & (final["beta1"] == beta1) & (final["status"] == "ok")]
    values = {s: ok[ok["setting"] == s].set_index("seed") for s in PACKS}
    comparisons = {}
    for metric in CLAIM_METRICS:
        margin = PacGANTable1.margins[QUANTITY[metric]].value
        comparisons[metric] = compare_paired(values["PacGAN2"][metric].to_dict(),
                                             values["GAN"][metric].to_dict(),
                                             higher_is_better=metric == "modes",
                                             margin=margin, names=("PacGAN2", "GAN"))
    p_diff = holm([c.p_difference for c in comparisons.values()])
    p_eq = holm([c.p_equivalence for c in comparisons.values()])
    outcomes = {}
    for (metric, c), pd_, pe in zip(comparisons.items(), p_diff, p_eq, strict=True):
        if pd_ == pd_ and pd_ < 0.05:
            ahead = c.difference > 0 if metric == "modes" else c.difference < 0
            outcomes[metric] = "better" if ahead else "worse"
        elif pe == pe and pe < 0.05:
            outcomes[metric] = "equivalent"
        else:
            outcomes[metric] = "undetermined"
    verdict = ("supported" if all(o == "better" for o in outcomes.values()) else
               "contradicted" if any(o in ("worse", "equivalent") for o in outcomes.values())
               else "undetermined")
    return {"verdict": verdict, "outcomes": outcomes, "comparisons": comparisons,
            "p_difference": dict(zip(CLAIM_METRICS, p_diff, strict=True))}


def claim_rows(final: pd.DataFrame, key: str, beta1: float,
               settings: dict[str, Any]) -> list[Row]:
    """The claim's rows: PacGAN2 − GAN per metric, paired over seeds, beside the difference
    of the published means."""
    decided = claim(final, key, beta1)
    rows = []
    for metric in CLAIM_METRICS:
        c = decided["comparisons"][metric]
        (gan, gan_e), (pac, pac_e) = (PUBLISHED[(key, s)][metric] for s in PACKS)
        ok = final[(final["task"] == key) & (final["beta1"] == beta1)
                   & (final["status"] == "ok")]
        wide = ok.pivot(index="seed", columns="setting", values=metric).dropna()
        d = (wide["PacGAN2"] - wide["GAN"]).to_numpy() if len(wide) else np.array([])
        se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.inf
        note = (f"{key}, {READINGS[beta1]}: claim {decided['verdict']} (PacGAN2 "
                f"{decided['outcomes']['modes']} on modes, "
                f"{decided['outcomes']['reverse_kl']} on reverse KL; Holm p "
                f"{decided['p_difference']['modes']:.2g}, "
                f"{decided['p_difference']['reverse_kl']:.2g}) — paired over "
                f"{c.seeds} seeds")
        if _scaled(settings):
            note += f"; {_note(key, 'PacGAN2', settings, 0)}"
        rows.append(Row(f"{CLAIM}, {QUANTITY[metric]} ({key})", READINGS[beta1], pac - gan,
                        math.hypot(pac_e, gan_e), c.difference, c.lo, c.hi, note=note,
                        se=se, dof=max(len(d) - 1, 1),
                        verdict="scaled" if _scaled(settings) else None))
    return rows


def _line(record: dict[str, Any]) -> str:
    beta = "" if record["beta1"] is None else f" beta1={record['beta1']}"
    return (f"{record['task']} {record['setting']}{beta} seed {record['seed']}: "
            f"{record['status']}, modes {record['modes']:.0f}, high quality "
            f"{100 * record['high_quality']:.1f}%, reverse KL {record['reverse_kl']:.3f} "
            f"({record['wall_s']:.0f} s for the batch)")


def _note(key: str, setting: str, settings: dict[str, Any], diverged: int) -> str:
    seeds = _seed_count(settings)
    parts = []
    if setting == DEFAULT_GAN:
        default = tasks.REGISTRY.get(key).training_defaults["steps"]
        steps = _default_steps(key, settings)
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
        for name in ("packs_per_batch", "lr", "beta2", "eval_samples"):
            if settings[name] != PacGANTable1.full[name]:
                parts.append(f"{name} {settings[name]} (published "
                             f"{PacGANTable1.full[name]})")
    if diverged:
        parts.append(f"{diverged} seed(s) diverged and are left out")
    return "; ".join(parts)
