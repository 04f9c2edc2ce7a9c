# The two commands of the README: `make run` (the demo pipeline) and `make test` (the test suite).
# Both build .venv from nothing (only the package registries are needed) and reuse it afterwards.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
# Rules call the `vscn` command: put the environment's programs first on the PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test lint lock clean-venv

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	touch $@

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/snakemake --lint

# Re-pin requirements.lock and environment.yml from the current .venv (after changing pyproject.toml).
lock: $(STAMP)
	$(BIN)/python scripts/lock.py

clean-venv:
	rm -rf $(VENV)
