"""Benchmarks run with `make bench` (pytest-benchmark; JSON saved under reports/)."""
