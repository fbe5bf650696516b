# crm-pipeline: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: install browser demo test test-fast ui serve run lint format bench clean

## install: create .venv and install the pinned dependencies (only when pyproject.toml changed)
install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

## demo: generate the demo data (up to yesterday; never over your own files) and run the pipeline
demo: install
	@if [ ! -f data/landing/orders.csv ] || [ -f data/landing/.crm-demo ]; then \
		$(BIN)/crm demo-data --out data/landing; fi
	$(BIN)/crm run --landing data/landing

## browser: Debian's chromium for the browser tests (apt-get, once; CHROMIUM_PATH skips it)
browser:
	@bash scripts/ensure_chromium.sh

## test: unit + integration + browser tests (and ruff)
test: install browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

## test-fast: unit tests only
test-fast: install
	$(BIN)/python -m pytest -q -m "not integration"

## ui: the Dagster UI on http://127.0.0.1:3000
ui: install
	$(BIN)/crm ui

## serve: the marketing portal on http://127.0.0.1:8000 (first: .venv/bin/crm users add NAME --role marketer)
serve: install
	$(BIN)/crm serve

## bench: benchmarks (writes docs/benchmarks.md)
bench: install
	$(BIN)/python bench/run_bench.py $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf data/warehouse.duckdb* data/exports data/dagster_home dbt_project/target dbt_project/logs
