# The suite's commands. On a fresh machine: `make demo`, then `make test`.
# Every target installs what it needs first (into .venv, pinned by constraints.txt).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SUITE := $(PY) -m tasks.cli
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

SEEDS ?= 0
NPROC ?= 1
# Run the suite directly, or under torchrun when NPROC > 1 (DDP; multi-node: pass torchrun
# flags yourself, see README).
ifeq ($(NPROC),1)
RUN := $(SUITE)
else
RUN := $(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC) -m tasks.cli
endif

.PHONY: help install test lint bench demo tables figures clean-runs

help:
	@echo "make demo      install, build the stand-in data, run every task's study, print the tables"
	@echo "make test      the test suite"
	@echo "make lint      ruff"
	@echo "make bench     engine benchmarks (results/bench/)"
	@echo "make tables    regenerate results/tables/ from results/runs/"

install: $(STAMP)

# Re-runs only when the venv is missing or the pins / project metadata changed.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check dsd tasks tests
	$(PY) -m ruff format --check dsd tasks tests

bench: $(STAMP)
	$(PY) -m dsd.bench

tables: $(STAMP)
	$(SUITE) tables

figures: $(STAMP)
	$(SUITE) figures
