# Agent Desk. `make run` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PORT ?= 5000
HOST ?= 127.0.0.1
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run tour test lint lock bench bench-quick serve assets deps deps-test browser sip-server clean help \
	i18n-extract i18n-update i18n-compile

help:
	@echo "make run    - install, migrate, create demo users, serve on http://$(HOST):$(PORT)"
	@echo "make test   - install what tests need (incl. Chromium) and run lint + the whole suite"
	@echo "make tour   - retake README's screenshots (docs/tour/) from a demo desk in Chromium"
	@echo "make serve  - the production server (gunicorn + gevent) with your DESK_ settings"
	@echo "make bench  - benchmarks, rewrites bench/RESULTS.md (ARGS=--quick: about a minute)"
	@echo "make lock   - recompile requirements/*.lock from pyproject.toml (ARGS=--upgrade)"
	@echo "make i18n-update - new strings into the catalogues; make i18n-compile after translating"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Dependencies come from the hash-pinned locks in requirements/ (pip refuses any file whose
# hash is not in the lock), then the desk itself without dependencies. `pip check` stops here
# when pyproject.toml asks for something the lock lacks: run `make lock`.
define install_lock
	$(BIN)/pip install --quiet --require-hashes -r $(1)
	$(BIN)/pip install --quiet --no-deps -e .
	@$(BIN)/pip check >/dev/null || { $(BIN)/pip check; \
		echo "$(1) does not match pyproject.toml: run make lock"; exit 1; }
endef

$(VENV)/.deps: requirements/runtime.lock pyproject.toml | $(BIN)/python
	$(call install_lock,requirements/runtime.lock)
	@touch $@

$(VENV)/.deps-test: requirements/test.lock pyproject.toml | $(BIN)/python
	$(call install_lock,requirements/test.lock)
	@touch $@ $(VENV)/.deps

deps: $(VENV)/.deps
deps-test: $(VENV)/.deps-test

# Front-end libraries come from npm (package-lock.json) and are copied into an ignored folder.
# devDependencies stay in node_modules: axe-core, which tests/test_a11y_browser.py injects.
static/vendor/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/htmx-ext-ws/dist/ws.js static/vendor/
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css static/vendor/
	cp node_modules/@hubspot/calling-extensions-sdk/dist/main.js static/vendor/hubspot-calling-extensions.js
	rm -rf static/vendor/sip.js && mkdir -p static/vendor/sip.js
	cd node_modules/sip.js/lib && find . -name '*.js' -exec cp --parents {} ../../../static/vendor/sip.js/ \;
	@touch $@

assets: static/vendor/.stamp

# Browser tests drive Debian's Chromium (playwright is told where it is).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "Installing Debian's chromium for the browser tests..."; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# The softphone tests (tests/test_softphone_browser.py) run a private kamailio as SIP server.
sip-server:
	@{ command -v kamailio >/dev/null 2>&1 || [ -x /usr/sbin/kamailio ]; } && \
	ls /usr/lib/*/kamailio/modules/websocket.so /usr/lib*/kamailio/modules/websocket.so \
		2>/dev/null | grep -q . || { \
		echo "Installing Debian's kamailio (+ websocket modules) for the softphone tests..."; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
			kamailio kamailio-websocket-modules >/dev/null; }

run: deps assets
	@PORT=$(PORT) HOST=$(HOST) BIN=$(BIN) scripts/run

# Screenshots for README's tour (docs/tour/*.png), from a demo desk the script starts.
tour: deps-test assets browser
	$(BIN)/python scripts/tour.py

# The production server (README, "Production deployment"), against your DESK_ environment.
# gunicorn.conf.py refuses more than one worker without DESK_REDIS_URL (WORKERS=1 for one).
serve: deps assets
	$(FLASK) db upgrade
	$(BIN)/gunicorn -c gunicorn.conf.py -k gevent -w $${WORKERS:-2} --worker-connections 5000 \
		-b $(HOST):$(PORT) --graceful-timeout 10 app:app

lint: deps-test
	$(BIN)/ruff check .
	$(BIN)/mypy

test: deps-test assets browser sip-server lint
	$(BIN)/python -m pytest

# Full run about 12 minutes on 2 cores; `make bench ARGS=--quick` (or `make bench-quick`)
# about a minute. Needs PostgreSQL and Redis (DESK_BENCH_POSTGRES_URL, DESK_BENCH_REDIS_URL).
# Rewrites bench/RESULTS.md.
$(VENV)/.deps-bench: requirements/bench.lock pyproject.toml | $(BIN)/python
	$(call install_lock,requirements/bench.lock)
	@touch $@ $(VENV)/.deps $(VENV)/.deps-test

bench: $(VENV)/.deps-bench assets
	$(BIN)/python bench/run.py $(ARGS)

bench-quick: $(VENV)/.deps-bench assets
	$(BIN)/python bench/run.py --quick

# The locks, compiled by pip-tools from pyproject.toml with every file's hash: runtime alone
# (what production installs), runtime + test, runtime + test + bench. Each is constrained by
# the one before, so tests run the versions production gets. Existing pins are kept unless
# asked: `make lock ARGS=--upgrade` (everything) or `ARGS='--upgrade-package flask'`.
# Compiled on CPython 3.11 for Linux, the Python the desk's machines and CI run.
PIP_TOOLS := $(VENV)/pip-tools
COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(PIP_TOOLS)/bin/pip-compile --quiet \
	--generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links

$(PIP_TOOLS)/bin/pip-compile:
	$(PYTHON) -m venv $(PIP_TOOLS)
	$(PIP_TOOLS)/bin/pip install --quiet pip-tools==7.6.2

lock: $(PIP_TOOLS)/bin/pip-compile
	mkdir -p requirements
	$(COMPILE) $(ARGS) -o requirements/runtime.lock pyproject.toml
	$(COMPILE) $(ARGS) --extra test -c requirements/runtime.lock -o requirements/test.lock \
		pyproject.toml
	$(COMPILE) $(ARGS) --extra test --extra bench -c requirements/test.lock \
		-o requirements/bench.lock pyproject.toml

# The translation catalogues (desk/translations, README "Languages and time zones"):
# extract every marked string into templates (.pot), merge them into each language's .po
# (then translate what is new), compile each .po into the .mo the desk reads. The .mo are
# committed, so an install from the repository needs no build step; `make test` fails
# (tests/test_i18n.py) when a catalogue lags the code or a .mo its .po.
i18n-extract: deps
	$(BIN)/python scripts/i18n.py extract

i18n-update: deps
	$(BIN)/python scripts/i18n.py update

i18n-compile: deps
	$(BIN)/python scripts/i18n.py compile

clean:
	rm -rf $(VENV) node_modules static/vendor .pytest_cache .ruff_cache
