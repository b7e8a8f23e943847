# SalesIQ Supervisor — `make demo` and `make test` set up everything they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help demo test bench lint format chromium clean

VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
CHROMIUM_PATH ?= /usr/bin/chromium
DEMO_HOST ?= 127.0.0.1
DEMO_PORT ?= 8000
SIM_PORT  ?= 8765

help:
	@echo "make demo   start the SalesIQ simulator and the dashboard, print the URL and a login"
	@echo "make test   run every test (browser tests in headless Chromium included)"
	@echo "make bench  measure event to screen, ingest, render, memory, API economy (QUICK=1: shorter)"
	@echo "make lint   ruff check and format check"

# A virtualenv on Python >= 3.12 (Django 6 needs it), rebuilt when pyproject.toml changes.
$(STAMP): pyproject.toml
	@set -e; \
	want='import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'; \
	root="$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)"; \
	py=""; \
	for c in $${PYTHON:-} python3.13 python3.12 $$(ls -d $$root/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV) python3; do \
	  if command -v "$$c" >/dev/null 2>&1 && "$$c" -c "$$want" 2>/dev/null; then py="$$c"; break; fi; \
	done; \
	if [ -z "$$py" ]; then \
	  echo "make: no Python 3.12 or newer found (tried python3.13, python3.12, pyenv versions, python3); install one or run 'make PYTHON=/path/to/python3.12 …'" >&2; exit 1; \
	fi; \
	if [ ! -x $(PY) ] || ! $(PY) -c "$$want" 2>/dev/null; then \
	  echo "Creating $(VENV) with $$py ($$($$py --version))"; rm -rf $(VENV); "$$py" -m venv $(VENV); \
	fi; \
	echo "Installing dependencies into $(VENV) …"; \
	$(PY) -m pip install -qq --upgrade pip; \
	$(PY) -m pip install -qq -e '.[dev]'; \
	touch $@

# Chromium for the browser tests: Debian's package where apt is available.
chromium:
	@if [ -x "$(CHROMIUM_PATH)" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make: Chromium is missing at $(CHROMIUM_PATH) and there is no apt-get here; install Chromium and run 'make test CHROMIUM_PATH=/path/to/chromium'" >&2; exit 1; \
	fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else \
	  echo "make: Chromium is missing and installing it needs root: run 'apt-get install -y chromium' as root" >&2; exit 1; fi; \
	echo "Installing Chromium (Debian package) …"; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null; \
	[ -x "$(CHROMIUM_PATH)" ] || { echo "make: installed chromium but $(CHROMIUM_PATH) is still missing" >&2; exit 1; }

test: $(STAMP) chromium
	CHROMIUM_PATH=$(CHROMIUM_PATH) $(PY) -m pytest

# The bench's own extras (websockets, psutil) on top of the test setup.
$(BENCH_STAMP): $(STAMP)
	@echo "Installing the bench extras into $(VENV) …"
	@$(PY) -m pip install -qq -e '.[dev,bench]'
	@touch $@

# About 6 minutes (the API economy run is 5); QUICK=1 for about 3. Figures: docs/benchmarks.md.
bench: $(BENCH_STAMP) chromium
	CHROMIUM_PATH=$(CHROMIUM_PATH) $(PY) -m bench $(if $(QUICK),--quick) $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Local secrets for the demo: generated once, git-ignored.
var/demo.env:
	@mkdir -p var
	@$(PY) -c "import secrets; from cryptography.fernet import Fernet; \
	print('SECRET_KEY=' + secrets.token_urlsafe(50)); \
	print('TOKEN_ENCRYPTION_KEYS=' + Fernet.generate_key().decode()); \
	print('DEMO_ADMIN_PASSWORD=' + secrets.token_urlsafe(9))" > $@
	@chmod 600 $@
	@echo "Wrote local demo secrets to $@"

demo: $(STAMP) var/demo.env
	@set -a; . var/demo.env; set +a; \
	export ZOHO_CLIENT_ID=1000.SIMULATOR ZOHO_CLIENT_SECRET=sim-secret; \
	export SIQ_EXTRA_DATA_CENTERS='{"sim": {"name": "Simulator", "accounts_url": "http://127.0.0.1:$(SIM_PORT)/dc/sim/accounts", "api_url": "http://127.0.0.1:$(SIM_PORT)/dc/sim"}, "sim-eu": {"name": "Simulator (EU)", "accounts_url": "http://127.0.0.1:$(SIM_PORT)/dc/sim-eu/accounts", "api_url": "http://127.0.0.1:$(SIM_PORT)/dc/sim-eu"}}'; \
	$(PY) manage.py migrate --no-input -v 0 && \
	exec $(PY) manage.py demo --host $(DEMO_HOST) --port $(DEMO_PORT) --sim-port $(SIM_PORT)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
