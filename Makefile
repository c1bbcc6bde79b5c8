# vaenmf: one entry point for set-up, the study, tests and benchmarks.
# Every target creates or reuses .venv by itself; `make install` is idempotent (stamp file keyed on pyproject.toml).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vaenmf-installed
OUT ?= outputs/reproduce
# Seeds of `make reproduce`: every job of every sweep runs once per seed (SEEDS=0,1,2); the report aggregates.
SEEDS ?= 0
# Extra overrides for scripts/reproduce.py, e.g. ARGS="speech:data.n_test_utterances=4 seed=1".
ARGS ?=
PYTEST_ARGS ?=
# Test processes (pytest-xdist): the suite's tests are mostly single-threaded subprocesses, so one per core; 0 runs
# them in this process.
TEST_WORKERS ?= 2
# Options of scripts/studies.py (`make studies`), e.g. STUDIES_ARGS="--only drnn_epochs --seeds 0,1" or "--list".
STUDIES_ARGS ?=

export WANDB_ERROR_REPORTING := false

.PHONY: install reproduce studies test test-slow test-realdata test-cluster bench lint format clean help

help:
	@echo "make reproduce   run the whole study on the demo corpora (or DATA_ROOT=/path for the real corpora) -> $(OUT)"
	@echo "                 SEEDS=0,1,2: every job once per seed; ARGS='--dry-run' prints the commands only"
	@echo "make studies     every study that chooses a default, scored on the validation split / held-out repetitions"
	@echo "                 -> outputs/studies/<name>/table.md; STUDIES_ARGS='--list', '--only NAME', '--seeds 0,1'"
	@echo "make test        fast test suite (CPU, a few minutes)"
	@echo "make test-slow   slow statistical and end-to-end tests"
	@echo "make test-cluster  launcher=slurm on a throwaway single-node SLURM cluster (root; installs slurm-wlm, munge)"
	@echo "make bench       benchmarks -> outputs/bench/{nmf,vae_nmf,synergy}.json"
	@echo "make lint        ruff"
	@echo "make clean       remove outputs and caches (keeps .venv)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

reproduce: $(STAMP)
	$(BIN)/python scripts/reproduce.py --out $(OUT) --seeds $(SEEDS) $(ARGS)

studies: $(STAMP)
	$(BIN)/python scripts/studies.py $(STUDIES_ARGS)

test: $(STAMP)
	WANDB_MODE=disabled $(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-slow: $(STAMP)
	WANDB_MODE=disabled $(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m slow $(PYTEST_ARGS)

# Starts munged, slurmctld and slurmd in a temporary folder (tests/cluster/local_slurm.py), runs the tests marked
# `cluster` against them, stops exactly those daemons. Installs slurm-wlm and munge with apt-get when missing.
test-cluster: $(STAMP)
	VAENMF_REQUIRE_CLUSTER=1 WANDB_MODE=disabled $(BIN)/python -m pytest -q -m cluster tests/cluster $(PYTEST_ARGS)

test-realdata: $(STAMP)
	WANDB_MODE=disabled $(BIN)/python -m pytest -q -m realdata $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python scripts/bench/nmf.py --out outputs/bench/nmf.json
	$(BIN)/python scripts/bench/vae_nmf.py --out outputs/bench/vae_nmf.json
	$(BIN)/python scripts/bench/synergy.py --out outputs/bench/synergy.json

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

format: $(STAMP)
	$(BIN)/ruff format src tests scripts

clean: $(STAMP)
	rm -rf outputs/* .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +
