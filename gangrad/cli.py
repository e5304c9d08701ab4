"""The ``gangrad`` command line."""

from __future__ import annotations

import argparse
import sys
import textwrap

import pandas as pd

from gangrad import __version__, estimators
from gangrad._registry import hyperparameters
from gangrad.spaces import Continuous, Discrete


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


def _print_table(df: pd.DataFrame, title: str) -> None:
    print(f"\n{title}")
    if df.empty:
        print("  (none)")
        return
    with pd.option_context("display.max_colwidth", 80, "display.width", 250):
        print(df.to_string(index=False))


def cmd_list(args: argparse.Namespace) -> int:
    if args.what in ("all", "estimators"):
        _print_table(estimator_table(), "Estimators")
    if args.what in ("all", "tasks"):
        _print_table(task_table(), "Tasks")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gangrad import demo

    if args.replicates < 100:
        raise SystemExit("gangrad demo: --replicates must be at least 100")
    fmt = {"float_format": lambda v: f"{v:.4g}"}
    cont = demo.continuous_table(args.replicates, args.seed)
    print(f"\nContinuous: f(x) = (x - k)^2, x ~ N(1, 1); gradient w.r.t. the mean "
          f"({args.replicates} replicates, 95% intervals)")
    print(cont.to_string(index=False, **fmt))
    disc = demo.discrete_table(args.replicates, args.seed)
    print(f"\nDiscrete: x ~ Cat(softmax(theta)) over 5 symbols, f(x) = (c.x)^2; bias against "
          f"the enumerated gradient ({args.replicates} replicates, 95% intervals)")
    print(disc.to_string(index=False, **fmt))
    return 0


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _key_values(items: list[str], flag: str) -> dict:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"{flag} expects NAME=VALUE, got {item!r}")
        out[name] = _parse_value(value)
    return out


def _schedules(items: list[str], steps: int | None) -> dict:
    from gangrad.schedules import Schedule

    out = {}
    for item in items:
        name, sep, spec = item.partition("=")
        parts = spec.split(":")
        if not sep or len(parts) not in (2, 3):
            raise ValueError(f"--anneal expects NAME=START:END[:KIND], got {item!r}")
        try:
            start, end = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"--anneal: START and END must be numbers in {item!r}") from None
        kind = parts[2] if len(parts) == 3 else "geometric"
        out[name] = Schedule(start, end, steps or 1, kind)
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from gangrad import tasks
    from gangrad.train import TrainConfig, train

    task = tasks.create(args.task, **_key_values(args.task_param, "--task-param"))
    steps = args.steps or task.training_defaults.get("steps")
    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr_g=args.lr_g, lr_d=args.lr_d,
        d_steps=args.d_steps, loss=args.loss, eval_every=args.eval_every,
        eval_samples=args.eval_samples, seed=args.seed, device=args.device,
        schedules=_schedules(args.anneal, steps),
    )
    out = args.out or f"runs/train/{args.task}-{args.estimator}-seed{args.seed}"

    def show(row: dict) -> None:
        if args.quiet:
            return
        if row.get("status") == "diverged":
            print(f"  {row['message']}", flush=True)
            return
        cells = [f"step {row['step']:>6}", f"{row['elapsed_s']:7.1f}s"]
        cells += [f"{k} {v:.4g}" for k, v in row.items()
                  if k not in ("step", "elapsed_s") and isinstance(v, float)]
        print("  " + "  ".join(cells), flush=True)

    hyper = _key_values(args.param, "--param")
    print(f"training {args.task} with {args.estimator}"
          + (f" {hyper}" if hyper else "") + f", seed {args.seed} -> {out}")
    history = train(task, args.estimator, estimator_hyper=hyper, config=cfg, out_dir=out,
                    progress=show)
    status = history.attrs["status"]
    if status == "diverged":
        print(f"diverged at step {history.attrs['diverged_at']}; history kept in {out}")
        return 3
    print(f"done: {len(history)} evaluations in {history['elapsed_s'].iloc[-1]:.1f}s; "
          f"wrote {out}/history.csv, {out}/samples.png")
    return 0


def parse_estimator_list(text: str) -> list[tuple[str, dict]]:
    """``"a,b(x=1,y=z)"`` -> ``[("a", {}), ("b", {"x": 1, "y": "z"})]``."""
    items, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    out = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        key, _, rest = item.partition("(")
        if rest and not rest.endswith(")"):
            raise ValueError(f"bad estimator spec {item!r}; use key or key(name=value,...)")
        args = [a for a in rest[:-1].split(",") if a.strip()] if rest else []
        out.append((key.strip(), _key_values([a.strip() for a in args], "estimator spec")))
    if not out:
        raise ValueError("--estimators is empty")
    return out


def _sweep(text: str) -> list[float]:
    import numpy as np

    parts = text.split(":")
    try:
        lo, hi, n = float(parts[0]), float(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        raise ValueError(f"--sigma-sweep expects LOW:HIGH:COUNT, got {text!r}") from None
    if not (0 < lo < hi) or n < 2:
        raise ValueError(f"--sigma-sweep needs 0 < LOW < HIGH and COUNT >= 2, got {text!r}")
    return [float(v) for v in np.logspace(np.log10(lo), np.log10(hi), n)]


def _ci(df: pd.DataFrame, col: str) -> pd.Series:
    def fmt(v: float) -> str:
        return f"{v:.3g}"

    return df.apply(lambda r: f"{fmt(r[col])} [{fmt(r[col + '_lo'])}, {fmt(r[col + '_hi'])}]",
                    axis=1)


def grad_stats_view(df: pd.DataFrame, layers: bool = False) -> pd.DataFrame:
    """The printed form: value [95% CI] per statistic."""
    rows = df if layers else df[df["layer"] == "total"]
    view = rows[[c for c in ("step", "sigma", "estimator", "layer") if c in rows]].copy()
    if not layers:
        view = view.drop(columns="layer")
    for col in ("bias", "variance", "mse", "snr", "cosine", "sign_agreement"):
        view[col] = _ci(rows, col)
    view["time_ms"] = rows["time_ms"].map(lambda v: f"{v:.3g}")
    view["peak_mb"] = rows["peak_mem_mb"].map(lambda v: f"{v:.3g}")
    view["var_x_time"] = rows["var_x_time"].map(lambda v: f"{v:.3g}")
    return view


def cmd_grad_stats(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gangrad import measure, tasks

    task = tasks.create(args.task, **_key_values(args.task_param, "--task-param"))
    common = dict(replicates=args.replicates, batch_size=args.batch_size, seed=args.seed,
                  fresh_z=args.fresh_z, device=args.device, chunk_size=args.chunk_size,
                  timing=not args.no_timing, progress=lambda m: print(f"  {m}", flush=True))
    if args.at_steps:
        try:
            steps = [int(s) for s in args.at_steps.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"--at-steps expects integers like 0,500,2000, got "
                             f"{args.at_steps!r}") from None
        common.update(at_steps=steps, train_with=args.train_with)
    if args.sigma_sweep:
        sigmas = _sweep(args.sigma_sweep)
        names = {k for k, _ in parse_estimator_list(args.estimators)} if args.estimators else set()
        if names - {"smoothing", "score_function"}:
            raise ValueError("--sigma-sweep compares smoothing and score_function; "
                             f"drop {', '.join(sorted(names - {'smoothing', 'score_function'}))}")
        print(f"sigma sweep on {task.name}: {len(sigmas)} values from {sigmas[0]:.3g} to "
              f"{sigmas[-1]:.3g}")
        df = measure.sigma_sweep(task, sigmas, baseline=args.baseline, **common)
    else:
        if not args.estimators:
            raise ValueError("--estimators is required (or --sigma-sweep)")
        specs = parse_estimator_list(args.estimators)
        print(f"gradient statistics on {task.name}: {len(specs)} estimators, "
              f"{args.replicates} replicates, batch {args.batch_size}")
        df = measure.gradient_stats(task, specs, **common)
    out = Path(args.out or f"runs/grad-stats/{task.name}"
               + ("-sigma-sweep" if args.sigma_sweep else "") + ".csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    ref = df["reference"].iloc[0]
    print(f"\nreference: {ref}; values are value [95% CI]; variance is the trace over "
          "G's parameters")
    with pd.option_context("display.width", 250, "display.max_columns", 30,
                           "display.max_colwidth", 60):
        print(grad_stats_view(df, args.layers).to_string(index=False))
    print(f"\nwrote {out}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from gangrad.runner import load_suite, run_suite

    suite = load_suite(args.suite)  # validates the whole file before anything runs
    print(f"suite {suite.name}: {len(suite.cells)} cells"
          + (f" — {suite.description}" if suite.description else ""))
    workers = args.workers
    if workers is None:  # one per core on the CPU; one process drives a GPU
        import os

        import torch

        on_gpu = (args.device or ("cuda" if torch.cuda.is_available() else "cpu")) != "cpu"
        workers = 1 if on_gpu else min(os.cpu_count() or 1, 8)
    summary = run_suite(suite, store=args.store, run=args.run, workers=workers,
                        backend=args.backend, address=args.address, fresh=args.fresh,
                        device=args.device, progress=not args.quiet,
                        batch_seeds=not args.no_batch_seeds)
    print(summary)
    for line in summary.failures:
        print(f"  failed: {line}")
    if summary.interrupted:
        return 130
    return 1 if summary.failed else 0


def cmd_runs(args: argparse.Namespace) -> int:
    from gangrad.runner import Store

    with Store(args.store) as db:
        df = db.runs()
    if df.empty:
        print(f"no runs in {args.store or 'the default store'}")
        return 0
    with pd.option_context("display.width", 200):
        print(df.to_string(index=False))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gangrad.runner import load

    out = Path(args.out or f"runs/{args.run}.{args.format}")
    if args.format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ValueError("parquet export needs pyarrow: pip install 'gangrad[parquet]'") \
                from None
    df = load(args.run, args.store)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "csv":
        df.to_csv(out, index=False)
    else:
        df.to_parquet(out, index=False)
    print(f"wrote {len(df)} rows to {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from gangrad.report import build_report
    from gangrad.runner import Store

    run = args.run
    if run is None:
        with Store(args.store) as db:
            runs = db.runs()
        if runs.empty:
            raise ValueError("no runs in the store; run a suite first (gangrad run quick)")
        run = str(runs["run"].iloc[-1])
    report = build_report(run, args.store, args.out_dir)
    if report.missing:
        print(f"note: {len(report.missing)} of {report.expected} cells are not stored yet; "
              "the report shows what is there")
    print(f"report of run {run!r}: {len(report.figures)} figures")
    print(f"  {report.markdown}")
    print(f"  {report.html.resolve()}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    import time

    from gangrad.questions import ORIGINS, QUESTIONS, ask, save

    if args.list or (not args.names and not args.all):
        rows = [{"question": name, "answers": ORIGINS[name],
                 "asks": " ".join(m.QUESTION.split()[:14]) + " …"}
                for name, m in QUESTIONS.items()]
        with pd.option_context("display.max_colwidth", 90, "display.width", 250):
            print(pd.DataFrame(rows).to_string(index=False))
        return 0
    names = list(QUESTIONS) if args.all else args.names
    unknown = [n for n in names if n not in QUESTIONS]
    if unknown:
        raise ValueError(f"unknown question(s) {', '.join(unknown)}; available: "
                         f"{', '.join(QUESTIONS)}")
    for name in names:
        print(f"{name} ({'full' if args.full else 'quick'}): {QUESTIONS[name].QUESTION}",
              flush=True)
        start = time.perf_counter()
        answer = ask(name, full=args.full, seed=args.seed)
        paths = save(answer, args.out_dir)
        print(f"  verdict: {answer.verdict}")
        print(f"  figure: {paths['png']} ({time.perf_counter() - start:.0f}s)\n", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gangrad",
        description="Compare gradient estimators for training GAN generators.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.dedent("""\
            examples:
              gangrad list                 estimators and tasks
              gangrad demo                 bias/variance of every estimator on closed forms
              gangrad train --task ring8 --estimator pathwise --steps 5000 --seed 0
              gangrad train --task gaussian1d --estimator smoothing --anneal sigma=1:0.01
              gangrad grad-stats --task categorical --estimators score_function,gumbel_softmax
              gangrad grad-stats --task gaussian1d --sigma-sweep 1e-3:1:13
              gangrad run quick --workers 2  run the quick suite into runs/gangrad.sqlite
              gangrad runs; gangrad export quick --format csv
              gangrad report quick         reports/quick/index.html and report.md
              gangrad ask --list; gangrad ask smoothing-limit
            """),
    )
    parser.add_argument("--version", action="version", version=f"gangrad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list estimators and tasks")
    p.add_argument("what", nargs="?", default="all", choices=["all", "estimators", "tasks"])
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("demo", help="bias/variance table of the estimators on closed-form problems")
    p.add_argument("--replicates", type=int, default=100_000, help="estimates per cell")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train a GAN with an estimator for the generator step",
                       description="Train G and D on a task; G's gradient comes from the "
                       "estimator. Unset options take the task's training defaults.")
    p.add_argument("--task", required=True, help="task key (gangrad list tasks)")
    p.add_argument("--estimator", required=True, help="estimator key (gangrad list estimators)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="estimator hyper-parameter, e.g. -p sigma=0.5 (repeatable)")
    p.add_argument("--task-param", action="append", default=[], metavar="NAME=VALUE",
                   help="task hyper-parameter, e.g. --task-param classes=20")
    p.add_argument("--steps", type=int, help="generator updates")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr-g", type=float, help="generator learning rate (Adam)")
    p.add_argument("--lr-d", type=float, help="discriminator learning rate (Adam)")
    p.add_argument("--d-steps", type=int, help="discriminator updates per generator update")
    p.add_argument("--loss", choices=["nonsaturating", "minimax"], default="nonsaturating")
    p.add_argument("--eval-every", type=int, help="steps between evaluations")
    p.add_argument("--eval-samples", type=int, default=2500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--anneal", action="append", default=[], metavar="NAME=START:END[:KIND]",
                   help="anneal a hyper-parameter over training, e.g. sigma=1:0.001 "
                   "(kind: geometric (default), linear, cosine, constant)")
    p.add_argument("--out", help="output folder (default runs/train/TASK-ESTIMATOR-seedN)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "grad-stats", help="bias, variance and cost of estimators' generator gradients",
        description="Measure each estimator's gradient of G's parameters on the same G and "
        "frozen D, z held fixed: bias against a reference gradient, variance, MSE, SNR, "
        "cosine and sign agreement, with 95%% intervals, and time per estimate.")
    p.add_argument("--task", required=True)
    p.add_argument("--task-param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--estimators", help="comma list: key or key(name=value,...), e.g. "
                   "score_function(baseline=mean),gumbel_softmax(temperature=0.5)")
    p.add_argument("--replicates", type=int, default=1000, help="estimates per estimator")
    p.add_argument("--batch-size", type=int, default=64, help="rows of the fixed z batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--at-steps", help="measure at these training steps, e.g. 0,500,2000")
    p.add_argument("--train-with", default="pathwise", help="estimator that trains G and D "
                   "between checkpoints (default pathwise)")
    p.add_argument("--fresh-z", action="store_true", help="a new z batch per replicate "
                   "(total variance) instead of common random numbers")
    p.add_argument("--sigma-sweep", metavar="LOW:HIGH:COUNT", help="sweep smoothing's sigma "
                   "(log-spaced) beside the score function of the same smoothed objective")
    p.add_argument("--baseline", default="mean", help="score-function baseline in the sweep")
    p.add_argument("--chunk-size", type=int, help="replicates per vmap chunk (memory bound)")
    p.add_argument("--no-timing", action="store_true", help="skip the cost measurement")
    p.add_argument("--layers", action="store_true", help="print every layer, not only total")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--out", help="CSV path (default runs/grad-stats/TASK.csv)")
    p.set_defaults(func=cmd_grad_stats)

    p = sub.add_parser("run", help="run a suite of cells into the results store",
                       description="Run a built-in suite (quick, full) or a suite TOML file. "
                       "Cells already stored for the run are skipped; Ctrl-C stops after "
                       "saving what finished.")
    p.add_argument("suite", help="quick, full, or a path to a suite .toml")
    p.add_argument("--store", help="SQLite file (default $GANGRAD_STORE or "
                   "runs/gangrad.sqlite)")
    p.add_argument("--run", help="run name in the store (default: the suite's name)")
    p.add_argument("--workers", type=int, help="local worker processes (default: one per CPU "
                   "core, at most 8; 1 on a GPU)")
    p.add_argument("--backend", choices=["local", "ray"], default="local")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--fresh", action="store_true", help="discard the run's stored cells first")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-batch-seeds", action="store_true",
                   help="train every cell on its own (by default the cells that differ only "
                   "in their seed train together as one batched model, with the same "
                   "numbers)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("runs", help="list the runs in the results store")
    p.add_argument("--store")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("export", help="export a run's tidy metrics")
    p.add_argument("run")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv")
    p.add_argument("--store")
    p.add_argument("--out", help="output file (default runs/RUN.FORMAT)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help="write the HTML/Markdown report of a stored run",
                       description="Write reports/RUN/index.html (self-contained), "
                       "reports/RUN/report.md and the tables as CSV. Works on a partial run.")
    p.add_argument("run", nargs="?", help="run name (default: the most recent run)")
    p.add_argument("--store")
    p.add_argument("--out-dir", default="reports", help="parent folder (default reports)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("ask", help="answer a named question with an experiment",
                       description="Run a question's experiment, print its verdict (computed "
                       "from the data) and write its figure, table and verdict under "
                       "reports/questions/.")
    p.add_argument("names", nargs="*", help="question names (see --list)")
    p.add_argument("--list", action="store_true", help="list the questions")
    p.add_argument("--all", action="store_true", help="answer every question")
    p.add_argument("--full", action="store_true", help="the GPU-sized experiment")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="reports/questions")
    p.set_defaults(func=cmd_ask)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (KeyError, ValueError, RuntimeError) as exc:
        print(f"gangrad {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gangrad {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
