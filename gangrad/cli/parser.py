"""The ``gangrad`` argument parser: every sub-command, its options and help."""

from __future__ import annotations

import argparse
import textwrap

from gangrad import __version__
from gangrad.cli import commands
from gangrad.measure import GradStatsConfig

__all__ = ["build_parser"]

GRAD = GradStatsConfig()  # the defaults shared with gradient_stats and suites


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
              gangrad reproduce --list; gangrad reproduce bernoulli-toy
            """),
    )
    parser.add_argument("--version", action="version", version=f"gangrad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _list(sub)
    _demo(sub)
    _train(sub)
    _grad_stats(sub)
    _run(sub)
    _runs(sub)
    _export(sub)
    _report(sub)
    _ask(sub)
    _reproduce(sub)
    _check(sub)
    return parser


def _list(sub) -> None:
    p = sub.add_parser("list", help="list estimators and tasks")
    p.add_argument("what", nargs="?", default="all", choices=["all", "estimators", "tasks"])
    p.set_defaults(func=commands.cmd_list)


def _demo(sub) -> None:
    p = sub.add_parser("demo", help="bias/variance table of the estimators on closed-form problems")
    p.add_argument("--replicates", type=int, default=100_000, help="estimates per cell")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=commands.cmd_demo)


def _train(sub) -> None:
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
    p.add_argument("--loss", choices=["nonsaturating", "minimax", "probability"],
                   default="nonsaturating", help="G's cost through D (probability: −D(x), "
                   "SeqGAN's reward)")
    p.add_argument("--eval-every", type=int, help="steps between evaluations")
    p.add_argument("--eval-samples", type=int, default=2500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--anneal", action="append", default=[], metavar="NAME=START:END[:KIND]",
                   help="anneal a hyper-parameter over training, e.g. sigma=1:0.001 "
                   "(kind: geometric (default), linear, cosine, constant, or RelGAN's "
                   "inverse_linear, inverse_quad, inverse_sqrt, inverse_log, "
                   "inverse_sigmoid: see gangrad.schedules)")
    p.add_argument("--out", help="output folder (default runs/train/TASK-ESTIMATOR-seedN)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=commands.cmd_train)


def _grad_stats(sub) -> None:
    p = sub.add_parser(
        "grad-stats", help="bias, variance and cost of estimators' generator gradients",
        description="Measure each estimator's gradient of G's parameters on the same G and "
        "frozen D, z held fixed: bias against a reference gradient, variance, MSE, SNR, "
        "cosine and sign agreement, with 95% intervals, and time per estimate.")
    p.add_argument("--task", required=True)
    p.add_argument("--task-param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--estimators", help="comma list: key or key(name=value,...), e.g. "
                   "score_function(baseline=mean),gumbel_softmax(temperature=0.5)")
    p.add_argument("--replicates", type=int, default=GRAD.replicates,
                   help=f"estimates per estimator (default {GRAD.replicates})")
    p.add_argument("--batch-size", type=int, default=GRAD.batch_size,
                   help=f"rows of the fixed z batch (default {GRAD.batch_size})")
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
    p.set_defaults(func=commands.cmd_grad_stats)


def _run(sub) -> None:
    codes = [textwrap.fill(meaning, 79, initial_indent=f"  {code:>3}  ",
                           subsequent_indent=" " * 7)
             for code, meaning in commands.EXIT_CODES.items()]
    p = sub.add_parser("run", help="run a suite of cells into the results store",
                       description=textwrap.fill(
                           "Run a built-in suite (quick; frontier, every discrete estimator "
                           "at equal cost; frontier-seq, SeqGAN's roll-outs and the GAN "
                           "estimators on oracle_seq; full, for one GPU) or a suite TOML "
                           "file. Cells "
                           "already stored for the run are skipped; Ctrl-C stops after saving "
                           "what finished.", 79),
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="exit status:\n" + "\n".join(codes))
    p.add_argument("suite", help="quick, frontier, frontier-seq, full, or a path to a "
                   "suite .toml")
    p.add_argument("--store", help="SQLite file (default $GANGRAD_STORE or "
                   "runs/gangrad.sqlite)")
    p.add_argument("--run", help="run name in the store (default: the suite's name)")
    p.add_argument("--workers", type=int, help="local worker processes (default: one per CPU "
                   "core, at most 8; 1 on a GPU)")
    p.add_argument("--backend", choices=["local", "ray"], default="local")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--fresh", action="store_true", help="discard the run's stored cells first")
    p.add_argument("--no-retry", action="store_true",
                   help="keep the cells that failed in an earlier run as they are (by "
                   "default they are computed again; diverged cells are results and kept)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-batch-seeds", action="store_true",
                   help="train every cell on its own (by default the cells that differ only "
                   "in their seed train together as one batched model, with the same "
                   "numbers)")
    p.add_argument("--seeds", type=int, metavar="N",
                   help="run every cell on N seeds: the suite's own, then the next unused "
                   "ones (a report's 'seeds needed' tells how many would likely decide "
                   "its undetermined comparisons; the cells already stored are kept)")
    p.add_argument("--until-decided", type=int, metavar="MAX",
                   help="sequential allocation: after the suite's seeds, add as many again "
                   "to each task while a comparison with its best is undetermined, up to MAX "
                   "seeds per task; every decision is then made at level 0.05/K over the K "
                   "looks, so the false-decision rate stays below 0.05")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=commands.cmd_run)


def _runs(sub) -> None:
    p = sub.add_parser("runs", help="list the runs in the results store")
    p.add_argument("--store")
    p.set_defaults(func=commands.cmd_runs)


def _export(sub) -> None:
    p = sub.add_parser("export", help="export a run's tidy metrics")
    p.add_argument("run")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv")
    p.add_argument("--store")
    p.add_argument("--out", help="output file (default runs/RUN.FORMAT)")
    p.set_defaults(func=commands.cmd_export)


def _report(sub) -> None:
    p = sub.add_parser("report", help="write the HTML/Markdown report of a stored run",
                       description="Write reports/RUN/index.html (self-contained), "
                       "reports/RUN/report.md and the tables as CSV. Works on a partial run.")
    p.add_argument("run", nargs="?", help="run name (default: the most recent run)")
    p.add_argument("--store")
    p.add_argument("--out-dir", default="reports", help="parent folder (default reports)")
    p.set_defaults(func=commands.cmd_report)


def _ask(sub) -> None:
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
    p.set_defaults(func=commands.cmd_ask)


def _reproduce(sub) -> None:
    p = sub.add_parser("reproduce", help="reproduce a published table side by side",
                       description="Run a published protocol (quick: scaled for 2 CPU cores; "
                       "--full: as published, one GPU; --budget NAME: another protocol the "
                       "reproduction offers), set each published number beside gangrad's "
                       "measurement with its 95% interval and a verdict (agrees, differs, "
                       "inconclusive, or scaled for a cut-down protocol), and write "
                       "NAME.json, NAME.md and NAME.png under reports/reproductions/.")
    p.add_argument("names", nargs="*", help="reproduction names (see --list)")
    p.add_argument("--list", action="store_true", help="list the reproductions")
    p.add_argument("--all", action="store_true", help="run every reproduction; one that "
                   "fails is reported, the others still run (exit status 1 if any failed)")
    p.add_argument("--full", action="store_true", help="the published protocol (GPU-sized)")
    p.add_argument("--budget", metavar="NAME", default=None,
                   help="a protocol by name: quick (the default), full (as --full), or one "
                   "the reproduction offers, e.g. pacgan-table1's cpu (its paired GAN vs "
                   "PacGAN2 test within 30 minutes on 2 cores); --list shows each "
                   "reproduction's budgets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="reports/reproductions",
                   help="output folder (default reports/reproductions)")
    p.set_defaults(func=commands.cmd_reproduce)


def _check(sub) -> None:
    p = sub.add_parser("check", help="recompute the committed results and compare",
                       description="Recompute committed results with the current code and "
                       "compare: every quick answer under reports/questions/, every "
                       "reproduction under reports/reproductions/ (at the budget and seed each "
                       "was committed with) and, when named, a suite's report tables "
                       "(reports/SUITE/tables/, by running the suite into a temporary store). "
                       "Numbers must agree to a relative 1e-6, texts and outcomes exactly; "
                       "wall-clock times and provenance are left out. Exit status 1 lists "
                       "every stale file and the command that regenerates it.")
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="questions, reproductions, or a suite whose report to check "
                   "(quick, frontier); default: questions and reproductions")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="check only these questions or reproductions (repeatable)")
    p.add_argument("--questions-dir", default="reports/questions")
    p.add_argument("--reproductions-dir", default="reports/reproductions")
    p.add_argument("--reports-dir", default="reports",
                   help="parent folder of the committed suite reports (default reports)")
    p.add_argument("--workers", type=int, help="worker processes for a suite report check")
    p.set_defaults(func=commands.cmd_check)
