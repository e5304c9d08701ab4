"""The ``gangrad`` command line: :func:`main` is the entry point.

Modules: :mod:`~gangrad.cli.parser` (sub-commands and options),
:mod:`~gangrad.cli.commands` (what each does), :mod:`~gangrad.cli.args` (parsing
``NAME=VALUE`` lists, estimator specs, schedules), :mod:`~gangrad.cli.views` (the tables
it prints).
"""

from __future__ import annotations

import sys

from gangrad.cli.args import parse_estimator_list
from gangrad.cli.parser import build_parser
from gangrad.cli.views import estimator_table, grad_stats_view, task_table

__all__ = ["build_parser", "estimator_table", "grad_stats_view", "main",
           "parse_estimator_list", "task_table"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (KeyError, ValueError, RuntimeError, OSError) as exc:
        print(f"gangrad {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gangrad {args.command}: interrupted", file=sys.stderr)
        return 130

