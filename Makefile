# Set-up and the two entry points of the README. `make run` and `make test` each build the
# virtual environment first when it is missing or out of date. On a machine without torch,
# the pinned CPU build is installed first (constraints.txt) so that nothing pulls the
# CUDA build; to use your own (GPU) torch, install it into .venv before `make setup`, or
# run `pip install -e '.[dev]'` in an environment that already has it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The peer library of `make bench-peer` (storchastic, with pyro-ppl and entmax) stays out of
# the project's dependencies: its own environment, reusing the system torch.
PEER_VENV ?= .venv-peer
PEER_BIN := $(PEER_VENV)/bin

.PHONY: setup run demo test test-all check lint bench bench-peer clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet -c constraints.txt torch
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,ray]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/gangrad run quick
	$(BIN)/gangrad ask --all
	$(BIN)/gangrad report quick

demo: $(STAMP)
	$(BIN)/gangrad list
	$(BIN)/gangrad demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ''

# Committed results equal what the code computes: every quick answer, every reproduction
# and the quick report's tables are recomputed and compared (see gangrad/checks.py).
check: $(STAMP)
	$(BIN)/gangrad check questions reproductions quick

lint: $(STAMP)
	$(BIN)/ruff check gangrad tests benchmarks

# All benchmarks (the slow end-to-end one included): JSON and a Markdown table under
# reports/benchmarks/. On a GPU machine: make bench BENCH=gpu (CPU and CUDA both run).
BENCH ?= cpu
bench: $(STAMP)
	mkdir -p reports/benchmarks
	$(BIN)/python -m pytest benchmarks --benchmark-enable --benchmark-json=reports/benchmarks/$(BENCH).json -m ''
	$(BIN)/python -m benchmarks.table reports/benchmarks/$(BENCH).json > reports/benchmarks/$(BENCH).md

bench-peer:
	test -x $(PEER_BIN)/python || $(PYTHON) -m venv --system-site-packages $(PEER_VENV)
	$(PEER_BIN)/python -c "import storch" 2>/dev/null || $(PEER_BIN)/python -m pip install --quiet -c constraints.txt storchastic
	$(PEER_BIN)/python -c "import gangrad, pytest_benchmark" 2>/dev/null || $(PEER_BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	mkdir -p reports/benchmarks
	$(PEER_BIN)/python -m pytest benchmarks/test_peer.py --benchmark-enable --benchmark-json=reports/benchmarks/peer.json -m ''
	$(PEER_BIN)/python -m benchmarks.table reports/benchmarks/peer.json > reports/benchmarks/peer.md

clean:
	rm -rf $(VENV) $(PEER_VENV) build *.egg-info .pytest_cache .ruff_cache
