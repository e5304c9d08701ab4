"""The performance table, from pytest-benchmark JSON files.

    python -m benchmarks.table reports/benchmarks/cpu.json [reports/benchmarks/peer.json]

Prints Markdown: the headline ratios (overhead, replicates, seeds, end to end, roofline,
peer) and the time per gradient estimate for every (task, estimator) pair.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path


def _rows(paths: list[str]) -> list[dict]:
    rows = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        for bench in data["benchmarks"]:
            rows.append({"name": bench["name"], "median_s": bench["stats"]["median"],
                         **bench["extra_info"]})
    return rows


def _find(rows, prefix):
    return [r for r in rows if r["name"].startswith(prefix)]


def headline(rows: list[dict]) -> list[str]:
    out = ["| measurement | setting | result | target |", "|---|---|---|---|"]
    for r in _find(rows, "test_overhead_ratio"):
        out.append(f"| training-step overhead ({r['device']}) | ring8, pathwise, batch 256: "
                   f"gangrad {r['gangrad_ms']:.3f} ms vs hand-written "
                   f"{r['hand_written_ms']:.3f} ms | **{r['ratio']:.3f}×** | ≤ {r['target']} |")
    for r in _find(rows, "test_batched_not_slower_than_loop"):
        out.append(f"| replicate gradients ({r['device']}) | ring8, R={r['R']}: batched "
                   f"{r['batched_ms']:.1f} ms vs loop {r['loop_ms']:.1f} ms | "
                   f"**{r['speedup']:.1f}× faster** | ≥ 1 |")
    for r in _find(rows, "test_seeds_speedup"):
        same = "identical histories" if r["same_histories"] else "histories differ"
        what = r.get("task", "ring8") + (f", {r['estimator']}" if "estimator" in r else "")
        out.append(f"| vectorized seeds ({r['device']}) | {what}, S={r['S']}, {r['steps']} "
                   f"steps: batched {r['batched_s']:.1f} s vs sequential "
                   f"{r['sequential_s']:.1f} s, {same} | **{r['speedup']:.2f}×** | "
                   f"≥ {r['target']} |")
    for r in _find(rows, "test_pacgan_seeds_speedup"):
        same = "identical histories" if r["same_histories"] else "histories differ"
        out.append(f"| vectorized seeds through batch norm ({r['device']}) | PacGAN "
                   f"protocol, grid25, pack {r['pack']}, {r['packs_per_batch']} packs, "
                   f"S={r['S']}, {r['steps']} steps: batched {r['batched_s']:.1f} s vs "
                   f"sequential {r['sequential_s']:.1f} s "
                   f"({r['ms_per_seed_step_batched']:.1f} vs "
                   f"{r['ms_per_seed_step_sequential']:.1f} ms per seed-step), {same} | "
                   f"**{r['speedup']:.2f}×** | ≥ {r['target']} |")
    for r in _find(rows, "test_pacgan_full_protocol_projection"):
        out.append(f"| PacGAN full protocol ({r['device']}) | {r['configurations']} "
                   f"configurations × {r['seeds']} batched seeds in {r['workers']} processes, "
                   f"{r['steps']:,} steps: slowest {r['ms_per_step_slowest']:.1f} ms per step, "
                   f"projected to 400,000 steps | **{r['projected_full_h']:.2f} h** | "
                   f"≤ {r['target_h']:g} h |")
    for r in _find(rows, "test_suite_wall_time"):
        counts = dict((k, v) for v, k in re.findall(r"(\d+) (ok|failed|cells)",
                                                    r["summary"].replace("of ", "")))
        out.append(f"| end to end ({r['device']}) | `gangrad run {r['suite']}`: "
                   f"{counts.get('cells', '?')} cells, {counts.get('ok', '?')} ok, "
                   f"{counts.get('failed', '?')} failed | "
                   f"**{r['wall_s']:.0f} s** | ≤ {r['target_s']:.0f} s |")
    for r in _find(rows, "test_roofline"):
        out.append(f"| roofline ({r['device']}) | replicate engine R={r['R']}: "
                   f"{r['achieved_gflops']:.1f} GFLOP/s vs float32 matmul "
                   f"{r['matmul_gflops']:.1f} GFLOP/s | **{100 * r['fraction_of_matmul']:.0f}% "
                   f"of matmul** | – |")
    for r in _find(rows, "test_time_ratio"):
        out.append(f"| peer: storchastic ({r['estimator']}) | categorical, time per "
                   f"estimate: gangrad {r['gangrad_ms']:.2f} ms vs storchastic "
                   f"{r['storchastic_ms']:.2f} ms | **{r['ratio_peer_over_gangrad']:.1f}× "
                   f"faster** | – |")
    for r in _find(rows, "test_variance_and_mean_agree"):
        lo, hi = r["var_ratio_ci"]
        out.append(f"| peer: variance check ({r['estimator']}) | {r['N']} replicates each: "
                   f"variance ratio storchastic/gangrad | **{r['var_ratio_peer_over_gangrad']:.3f}"
                   f"** [{lo:.3f}, {hi:.3f}] | CI contains 1 |")
    return out


def estimates(rows: list[dict]) -> list[str]:
    table: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    devices: list[str] = []
    for r in _find(rows, "test_gradient_estimate"):
        table[r["task"], r["estimator"]][r["device"]] = r["median_s"] * 1e3
        if r["device"] not in devices:
            devices.append(r["device"])
    if not table:
        return []
    out = ["| task | estimator | " + " | ".join(f"ms per estimate ({d})" for d in devices)
           + " |", "|---|---|" + "---|" * len(devices)]
    for (task, est), times in sorted(table.items()):
        out.append(f"| {task} | {est} | " + " | ".join(
            f"{times[d]:.2f}" if d in times else "–" for d in devices) + " |")
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    rows = _rows(argv)
    machines = sorted({r["machine"] for r in rows if "machine" in r})
    print("Machine: " + "; ".join(machines) + "\n")
    print("\n".join(headline(rows)))
    est = estimates(rows)
    if est:
        print("\nTime per gradient estimate (default hyper-parameters, the task's batch):\n")
        print("\n".join(est))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
