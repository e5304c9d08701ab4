"""End-to-end wall time of a whole suite, as a user runs it: ``gangrad run quick`` on the
CPU (target ≤ 5 min on 2 cores) and ``gangrad run full`` on one GPU (target ≤ 30 min),
each in a fresh process and a fresh store, start-up included.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from benchmarks.conftest import machine

CASES = [("quick", "cpu", 300.0)] + ([("full", "cuda", 1800.0)]
                                     if torch.cuda.is_available() else [])


@pytest.mark.slow
@pytest.mark.parametrize(("suite", "device", "target_s"), CASES,
                         ids=[f"{s}-{d}" for s, d, _ in CASES])
def test_suite_wall_time(benchmark, tmp_path, suite, device, target_s):
    cmd = [sys.executable, "-m", "gangrad.cli", "run", suite, "--store",
           str(tmp_path / "store.sqlite"), "--device", device, "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    start = time.perf_counter()
    out = benchmark.pedantic(subprocess.run, args=(cmd,), kwargs={
        "capture_output": True, "text": True, "check": False, "env": env}, rounds=1)
    wall = time.perf_counter() - start
    assert out.returncode == 0, out.stdout + out.stderr
    summary = out.stdout.strip().splitlines()[-1]
    benchmark.group = f"end to end, gangrad run {suite}, {device}"
    benchmark.extra_info.update({"suite": suite, "device": device, "wall_s": wall,
                                 "target_s": target_s, "summary": summary,
                                 "cpu_count": os.cpu_count(), "machine": machine(device)})
    assert " 0 failed" in summary, summary
    assert wall <= target_s, f"gangrad run {suite}: {wall:.0f}s > {target_s:.0f}s"
