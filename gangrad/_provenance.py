"""Where a result came from, and the settings that make it repeat: the code's commit, the
torch build and the number of threads, recorded in stored runs, answers and reproductions.

Floating-point sums in torch's CPU kernels are split across its threads, so the same seed
gives slightly different numbers with 1 and 2 threads, and a GAN's training amplifies the
difference. Every computation whose numbers are stored or committed therefore runs with a
pinned thread count (:func:`pinned_threads`): :data:`RESULT_THREADS` for questions and
reproductions (``GANGRAD_THREADS`` overrides it), one thread per cell in suites (whose
workers use the other cores). With the thread count fixed, results repeat from a seed on
any machine with the same torch build and CPU instruction set; the provenance records all
three.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

__all__ = ["RESULT_THREADS", "git_commit", "pinned_threads", "provenance", "result_threads"]

#: torch threads for questions and reproductions unless ``GANGRAD_THREADS`` says otherwise
RESULT_THREADS = 2


def git_commit() -> str | None:
    """The commit of the checkout gangrad runs from, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def result_threads() -> int:
    """The pinned thread count for questions and reproductions: ``GANGRAD_THREADS`` or
    :data:`RESULT_THREADS`; ``ValueError`` for anything but a positive integer."""
    raw = os.environ.get("GANGRAD_THREADS", "")
    if not raw:
        return RESULT_THREADS
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"GANGRAD_THREADS must be a positive integer, got {raw!r}")
    return int(raw)


@contextlib.contextmanager
def pinned_threads(threads: int) -> Iterator[int]:
    """Run the block with torch's intra-op thread count set to ``threads``, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def provenance(threads: int | None = None) -> dict[str, Any]:
    """Commit, torch build, thread count and CPU: what a stored number depends on."""
    return {"commit": git_commit(), "torch": torch.__version__,
            "threads": threads if threads is not None else torch.get_num_threads(),
            "machine": platform.machine(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
