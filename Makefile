# The two commands of the README: `make run` (the demo pipeline) and `make test` (the test suite).
# Both build .venv from nothing (only the package registries are needed) and reuse it afterwards.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
# Rules call the `vscn` command: the environment's programs go first on the PATH.
WITH_VENV := PATH="$(abspath $(BIN)):$$PATH"

CHROMIUM := /usr/bin/chromium

.PHONY: run test lint lock clean-venv

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	touch $@

# The report's browser check (tests/test_report_browser.py) needs Debian's chromium.
$(CHROMIUM):
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

run: $(STAMP)
	$(WITH_VENV) snakemake --cores $(CORES)

test: $(STAMP) $(CHROMIUM)
	$(WITH_VENV) python -m pytest

lint: $(STAMP)
	$(WITH_VENV) snakemake --lint

# Re-pin requirements.lock and environment.yml from the current .venv (after changing pyproject.toml).
lock: $(STAMP)
	$(BIN)/python scripts/lock.py

clean-venv:
	rm -rf $(VENV)
