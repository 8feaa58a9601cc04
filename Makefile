# Agent Desk. `make run` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PORT ?= 5000
HOST ?= 127.0.0.1
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run tour test lint bench bench-quick serve assets deps deps-test browser clean help

help:
	@echo "make run    - install, migrate, create demo users, serve on http://$(HOST):$(PORT)"
	@echo "make test   - install what tests need (incl. Chromium) and run lint + the whole suite"
	@echo "make tour   - retake README's screenshots (docs/tour/) from a demo desk in Chromium"
	@echo "make serve  - the production server (gunicorn + gevent) with your DESK_ settings"
	@echo "make bench  - benchmarks, rewrites bench/RESULTS.md (ARGS=--quick: about a minute)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.deps-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.deps

deps: $(VENV)/.deps
deps-test: $(VENV)/.deps-test

# Front-end libraries come from npm (package-lock.json) and are copied into an ignored folder.
static/vendor/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/htmx-ext-ws/dist/ws.js static/vendor/
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css static/vendor/
	cp node_modules/@hubspot/calling-extensions-sdk/dist/main.js static/vendor/hubspot-calling-extensions.js
	@touch $@

assets: static/vendor/.stamp

# Browser tests drive Debian's Chromium (playwright is told where it is).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "Installing Debian's chromium for the browser tests..."; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

run: deps assets
	@PORT=$(PORT) HOST=$(HOST) BIN=$(BIN) scripts/run

# Screenshots for README's tour (docs/tour/*.png), from a demo desk the script starts.
tour: deps-test assets browser
	$(BIN)/python scripts/tour.py

# The production server (README, "Production deployment"), against your DESK_ environment.
serve: deps assets
	$(FLASK) db upgrade
	$(BIN)/gunicorn -k gevent -w $${WORKERS:-2} --worker-connections 5000 \
		-b $(HOST):$(PORT) --graceful-timeout 10 app:app

lint: deps-test
	$(BIN)/ruff check .
	$(BIN)/mypy

test: deps-test assets browser lint
	$(BIN)/python -m pytest

# Full run about 12 minutes on 2 cores; `make bench ARGS=--quick` (or `make bench-quick`)
# about a minute. Needs PostgreSQL and Redis (DESK_BENCH_POSTGRES_URL, DESK_BENCH_REDIS_URL).
# Rewrites bench/RESULTS.md.
$(VENV)/.deps-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	@touch $@ $(VENV)/.deps $(VENV)/.deps-test

bench: $(VENV)/.deps-bench assets
	$(BIN)/python bench/run.py $(ARGS)

bench-quick: $(VENV)/.deps-bench assets
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) node_modules static/vendor .pytest_cache .ruff_cache
