# Set-up and the two entry points of the README. `make run` and `make test` each build the
# virtual environment first when it is missing or out of date. On a machine without torch,
# the pinned CPU build is installed first (constraints.txt) so that nothing pulls the
# CUDA build; to use your own (GPU) torch, install it into .venv before `make setup`, or
# run `pip install -e '.[dev]'` in an environment that already has it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run demo test test-all lint bench clean

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

lint: $(STAMP)
	$(BIN)/ruff check gangrad tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-enable --benchmark-json=reports/benchmarks.json -m ''

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
