#!/usr/bin/env bash
# Every benchmark on a GPU machine, in one call, from the working tree (no set-up: the
# machine's python3 has torch and the dependencies). Results under $OUT (default
# reports/benchmarks): gpu.json (pytest-benchmark) and gpu.md (the table).
set -euo pipefail
OUT=${OUT:-reports/benchmarks}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu-device.txt"
PYTHONPATH=. python3 -m pytest benchmarks --benchmark-enable -m '' -p no:cacheprovider \
    --benchmark-json="$OUT/gpu.json" "$@"
PYTHONPATH=. python3 -m benchmarks.table "$OUT/gpu.json" > "$OUT/gpu.md"
cat "$OUT/gpu.md"
