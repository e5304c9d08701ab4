"""The ``gangrad`` command line: :func:`main` is the entry point.

Modules: :mod:`~gangrad.cli.parser` (sub-commands and options),
:mod:`~gangrad.cli.commands` (what each does), :mod:`~gangrad.cli.args` (parsing
``NAME=VALUE`` lists, estimator specs, schedules), :mod:`~gangrad.cli.views` (the tables
it prints).
"""

from __future__ import annotations

import sqlite3
import sys

from gangrad.cli.args import parse_estimator_list
from gangrad.cli.commands import EXIT_CODES, EXIT_STORE_WRITE
from gangrad.cli.parser import build_parser
from gangrad.cli.views import estimator_table, grad_stats_view, task_table

__all__ = ["EXIT_CODES", "build_parser", "estimator_table", "grad_stats_view", "main",
           "parse_estimator_list", "task_table"]


def main(argv: list[str] | None = None) -> int:
    from gangrad.runner.store import StoreWriteError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StoreWriteError as exc:
        print(f"gangrad {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_STORE_WRITE
    except (KeyError, ValueError, RuntimeError, OSError, sqlite3.Error) as exc:
        print(f"gangrad {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gangrad {args.command}: interrupted", file=sys.stderr)
        return 130

