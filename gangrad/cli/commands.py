"""The commands of ``gangrad``: one function per sub-command, ``args`` in, exit code out
(:data:`EXIT_CODES`)."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from gangrad.cli.args import (
    key_values,
    parse_estimator_list,
    schedules,
    sweep,
    writable_dir,
    writable_file,
)
from gangrad.cli.views import estimator_table, grad_stats_view, print_table, task_table

EXIT_WORKER_DIED = 4
EXIT_STORE_WRITE = 5
#: what each exit status of ``gangrad`` means
EXIT_CODES = {
    0: "done",
    1: "run: some cells failed (their tracebacks are stored; a re-run computes them again)",
    2: "refused before work: bad input, or a store, path or device that cannot be used",
    3: "train: the run diverged (its history is kept)",
    EXIT_WORKER_DIED: "run: a worker process died on a cell twice (killed by a signal, e.g. "
                      "the out-of-memory killer); the cell is stored as failed, the others ran",
    EXIT_STORE_WRITE: "run: the store could not be written mid-run (disk full, file-size "
                      "limit); every cell finished before is stored",
    130: "interrupted (Ctrl-C); every cell finished before is stored",
}


def cmd_list(args: argparse.Namespace) -> int:
    if args.what in ("all", "estimators"):
        print_table(estimator_table(), "Estimators")
    if args.what in ("all", "tasks"):
        print_table(task_table(), "Tasks")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gangrad import demo

    if args.replicates < 100:
        raise ValueError(f"--replicates must be at least 100, got {args.replicates}")
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


def cmd_train(args: argparse.Namespace) -> int:
    from gangrad import tasks
    from gangrad.train import TrainConfig, train

    task = tasks.create(args.task, **key_values(args.task_param, "--task-param"))
    steps = args.steps or task.training_defaults.get("steps")
    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr_g=args.lr_g, lr_d=args.lr_d,
        d_steps=args.d_steps, loss=args.loss, eval_every=args.eval_every,
        eval_samples=args.eval_samples, seed=args.seed, device=args.device,
        schedules=schedules(args.anneal, steps),
    )
    out = writable_dir(args.out or f"runs/train/{args.task}-{args.estimator}-seed{args.seed}",
                       "--out")

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

    hyper = key_values(args.param, "--param")
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


def cmd_grad_stats(args: argparse.Namespace) -> int:
    from gangrad import measure, tasks

    task = tasks.create(args.task, **key_values(args.task_param, "--task-param"))
    out = writable_file(args.out or f"runs/grad-stats/{task.name}"
                        + ("-sigma-sweep" if args.sigma_sweep else "") + ".csv", "--out")
    config = measure.GradStatsConfig(
        replicates=args.replicates, batch_size=args.batch_size, seed=args.seed,
        fresh_z=args.fresh_z, chunk_size=args.chunk_size, timing=not args.no_timing
    ).validated()
    say = lambda m: print(f"  {m}", flush=True)  # noqa: E731
    steps = None
    if args.at_steps:
        try:
            steps = sorted({int(s) for s in args.at_steps.split(",") if s.strip()})
        except ValueError:
            raise ValueError(f"--at-steps expects integers like 0,500,2000, got "
                             f"{args.at_steps!r}") from None
        if not steps or steps[0] < 0:
            raise ValueError(f"--at-steps expects non-negative integers, got {args.at_steps!r}")
    if args.sigma_sweep:
        if steps:
            raise ValueError("--sigma-sweep measures at initialisation; drop --at-steps")
        sigmas = sweep(args.sigma_sweep)
        names = {k for k, _ in parse_estimator_list(args.estimators)} if args.estimators else set()
        if names - {"smoothing", "score_function"}:
            raise ValueError("--sigma-sweep compares smoothing and score_function; "
                             f"drop {', '.join(sorted(names - {'smoothing', 'score_function'}))}")
        print(f"sigma sweep on {task.name}: {len(sigmas)} values from {sigmas[0]:.3g} to "
              f"{sigmas[-1]:.3g}")
        df = measure.sigma_sweep(task, sigmas, baseline=args.baseline, config=config,
                                 device=args.device, progress=say)
    else:
        if not args.estimators:
            raise ValueError("--estimators is required (or --sigma-sweep)")
        specs = parse_estimator_list(args.estimators)
        print(f"gradient statistics on {task.name}: {len(specs)} estimators, "
              f"{args.replicates} replicates, batch {args.batch_size}")
        if steps:
            df = _along_training(task, specs, steps, args, config, say)
        else:
            df = measure.gradient_stats(task, specs, config, device=args.device, progress=say)
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


def _along_training(task, specs, steps: list[int], args: argparse.Namespace,
                    config, say) -> pd.DataFrame:
    """Gradient statistics at ``steps`` of a run trained with ``--train-with``: a
    :class:`gangrad.measure.GradientProbe` as the run's checkpoint callback."""
    from gangrad.measure import GradientProbe
    from gangrad.train import train

    probe = GradientProbe(task, specs, config, device=args.device, progress=say)
    trainer = args.train_with

    def measure_at(step, state):
        say(f"checkpoint at step {step} (trained with {state.estimator.label})")
        probe(step, state)

    history = train(task, trainer, steps=max(steps[-1], 1), seed=args.seed,
                    device=args.device, checkpoint_steps=steps, on_checkpoint=measure_at)
    if history.attrs["status"] != "ok":
        measured = sorted(probe.frame()["step"].unique()) if probe.frames else []
        raise RuntimeError(f"the run trained with {trainer} diverged at step "
                           f"{history.attrs['diverged_at']} (measured checkpoints: "
                           f"{measured or 'none'})")
    return probe.frame()


def cmd_run(args: argparse.Namespace) -> int:
    from gangrad.runner import check_device, check_run_name, load_suite, run_suite

    suite = load_suite(args.suite)  # validates the whole file before anything runs
    if args.seeds is not None:
        if args.seeds < 1:
            raise ValueError(f"--seeds must be an integer >= 1, got {args.seeds}")
        suite = suite.with_seeds(args.seeds)
    if args.until_decided is not None:
        if args.until_decided <= len(suite.seeds):
            raise ValueError(f"--until-decided is the most seeds a task may take, so it must "
                             f"be more than the {len(suite.seeds)} seeds the suite starts "
                             f"with, got {args.until_decided}")
        suite = suite.with_sequential(args.until_decided)
    check_device(args.device)
    try:
        check_run_name(args.run if args.run is not None else suite.name)
    except ValueError as exc:
        raise ValueError(f"--run: {exc}" if args.run is not None else
                         f"{exc}; name the run with --run") from None
    print(f"suite {suite.name}: {len(suite.cells)} cells, {len(suite.seeds)} seeds"
          + (f" — {suite.description}" if suite.description else ""))
    if suite.sequential is not None:
        seq = suite.sequential
        print(f"sequential: {seq.batch} more seeds per look to tasks still undetermined, up "
              f"to {seq.max_seeds}; decisions at level {1 - seq.level:.4g} over {seq.looks} "
              "looks")
    workers = args.workers
    if workers is None:  # one per core on the CPU; one process drives a GPU
        import os

        import torch

        on_gpu = (args.device or ("cuda" if torch.cuda.is_available() else "cpu")) != "cpu"
        workers = 1 if on_gpu else min(os.cpu_count() or 1, 8)
    summary = run_suite(suite, store=args.store, run=args.run, workers=workers,
                        backend=args.backend, address=args.address, fresh=args.fresh,
                        device=args.device, progress=not args.quiet,
                        batch_seeds=not args.no_batch_seeds, retry_failed=not args.no_retry)
    print(summary)
    for line in summary.failures:
        print(f"  failed: {line}")
    if summary.interrupted:
        return 130
    if summary.lost:
        return EXIT_WORKER_DIED
    return 1 if summary.failed else 0


def cmd_runs(args: argparse.Namespace) -> int:
    from gangrad.runner import Store

    with Store(args.store, readonly=True) as db:
        df, damage = db.runs(), db.damage
    if damage:  # the listing read, but the store is damaged elsewhere
        print(f"gangrad runs: warning: {damage}", file=sys.stderr)
    if df.empty:
        print(f"no runs in {args.store or 'the default store'}")
        return 0
    with pd.option_context("display.width", 200):
        print(df.to_string(index=False))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from gangrad.runner import check_run_name, load

    check_run_name(args.run)
    out = writable_file(args.out or f"runs/{args.run}.{args.format}", "--out")
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
    from gangrad.runner import Store, check_run_name

    run = args.run
    if run is None:
        with Store(args.store, readonly=True) as db:
            runs = db.runs()
        if runs.empty:
            raise ValueError("no runs in the store; run a suite first (gangrad run quick)")
        run = str(runs["run"].iloc[-1])
    check_run_name(run)
    writable_dir(args.out_dir, "--out-dir")
    report = build_report(run, args.store, args.out_dir)
    if report.missing:
        print(f"note: {len(report.missing)} of {report.expected} cells are not stored yet; "
              "the report shows what is there")
    print(f"report of run {run!r}: {len(report.figures)} figures")
    print(f"  {report.markdown}")
    print(f"  {report.html.resolve()}")
    return 0


def _print_list(rows: list[dict]) -> None:
    with pd.option_context("display.max_colwidth", 90, "display.width", 250):
        print(pd.DataFrame(rows).to_string(index=False))


def _chosen(args: argparse.Namespace, names: list[str], what: str) -> list[str]:
    """The names ``--all`` or the positional arguments pick, every one known."""
    chosen = names if args.all else args.names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise ValueError(f"unknown {what}(s) {', '.join(unknown)}; available: "
                         f"{', '.join(names)}")
    return chosen


def cmd_ask(args: argparse.Namespace) -> int:
    import time

    from gangrad import questions

    names = questions.available()
    if args.list or (not args.names and not args.all):
        _print_list([{"question": name, "answers": (q := questions.create(name)).origin,
                      "asks": " ".join(q.question.split()[:14]) + " …"} for name in names])
        return 0
    chosen = _chosen(args, names, "question")
    writable_dir(args.out_dir, "--out-dir")
    for name in chosen:
        print(f"{name} ({'full' if args.full else 'quick'}): "
              f"{questions.create(name).question}", flush=True)
        start = time.perf_counter()
        answer = questions.ask(name, full=args.full, seed=args.seed)
        paths = questions.save(answer, args.out_dir)
        print(f"  verdict: {answer.verdict}")
        print(f"  figure: {paths['png']} ({time.perf_counter() - start:.0f}s)\n", flush=True)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    import sys
    import time
    import traceback

    from gangrad import reproductions

    names = reproductions.available()
    if args.list or (not args.names and not args.all):
        _print_list([{"reproduction": name, "title": (rep := reproductions.create(name)).title,
                      "budgets": ", ".join(rep.protocols()), "source": rep.source}
                     for name in names])
        return 0
    chosen = _chosen(args, names, "reproduction")
    if args.full and args.budget not in (None, "full"):
        raise ValueError(f"--full and --budget {args.budget} are two protocols; give one")
    mode = args.budget or ("full" if args.full else "quick")
    lacking = [name for name in chosen if mode not in reproductions.create(name).protocols()]
    if lacking:
        raise ValueError(f"--budget {mode}: not offered by {', '.join(lacking)} (budgets: "
                         + "; ".join(f"{name}: {', '.join(reproductions.create(name).protocols())}"
                                     for name in lacking) + ")")
    out = writable_dir(args.out, "--out")
    failed = []
    for name in chosen:
        print(f"{name} ({mode}): {reproductions.create(name).title}", file=sys.stderr,
              flush=True)
        start = time.perf_counter()

        def say(message: str, name: str = name, start: float = start) -> None:
            print(f"  [{name} {time.perf_counter() - start:5.0f}s] {message}", file=sys.stderr,
                  flush=True)

        try:
            rep = reproductions.reproduce(name, seed=args.seed, progress=say, budget=mode)
        except Exception as exc:
            if not args.all:
                raise
            traceback.print_exc(file=sys.stderr)
            print(f"gangrad reproduce: {name} failed: {exc}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        paths = reproductions.save(rep, out)
        print(f"{name}: {rep.summary}")
        print(reproductions.rows_markdown(rep.rows))
        print(f"  {paths['md']} ({time.perf_counter() - start:.0f}s)\n", flush=True)
    if failed:
        print(f"gangrad reproduce: {len(failed)} of {len(chosen)} failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    import sys

    from gangrad import checks, questions, reproductions
    from gangrad.runner import BUILTIN_SUITES

    targets = args.targets or ["questions", "reproductions"]
    known = {"questions", "reproductions", *BUILTIN_SUITES}
    unknown = [t for t in targets if t not in known]
    if unknown:
        raise ValueError(f"unknown check target(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(sorted(known))}")
    names = {"questions": questions.available(), "reproductions": reproductions.available()}
    only = set(args.only)
    if only:
        wanted = {n for t in targets if t in names for n in names[t]}
        if not only <= wanted:
            raise ValueError(f"--only: unknown name(s) {', '.join(sorted(only - wanted))}; "
                             f"available: {', '.join(sorted(wanted))}")

    def say(message: str) -> None:
        print(message, flush=True)

    results = []
    for target in targets:
        if target == "questions":
            results += checks.check_questions([n for n in names[target] if not only or n in only],
                                              args.questions_dir, say)
        elif target == "reproductions":
            results += checks.check_reproductions(
                [n for n in names[target] if not only or n in only], args.reproductions_dir,
                say)
        else:
            from pathlib import Path

            results.append(checks.check_report(target, Path(args.reports_dir) / target,
                                               args.workers, say))
    bad = [r for r in results if not r.ok]
    if not bad:
        print(f"gangrad check: all {len(results)} committed results match the code")
        return 0
    fixes = {"question": "gangrad ask NAME", "reproduction": "gangrad reproduce NAME "
             "(with the budget it was committed with)", "report": "gangrad run SUITE --fresh "
             "&& gangrad report SUITE"}
    print(f"gangrad check: {len(bad)} of {len(results)} committed results are stale or "
          f"missing: {', '.join(f'{r.kind} {r.name}' for r in bad)}; regenerate with "
          + "; ".join(sorted({fixes[r.kind] for r in bad})), file=sys.stderr)
    return 1
