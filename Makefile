# The platform's entry points. `make demo` and `make test` work on a fresh machine with Python.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
VENV := .venv
BIN := $(VENV)/bin
# Use the machine's interpreter; never let uv download a Python build.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON_PREFERENCE := only-system
# uv from PATH, else `$(PYTHON) -m uv`, else a private copy (works on PEP 668 interpreters).
ENSURE_UV := PYTHON="$(PYTHON)" UV_VERSION=$(UV_VERSION) scripts/ensure-uv.sh

.PHONY: help install system-deps lint typecheck test test-fast demo config-docs

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml uv.lock service/pyproject.toml service/uv.lock
	@echo "make: installing the locked packages into $(VENV) (uv.lock)"
	@uv="$$($(ENSURE_UV))" && $$uv sync --quiet --frozen --python "$(PYTHON)"
	@touch $@ $(VENV)/.analyzer

# The demo needs only the analyzer: its own lock, installed into the same .venv without
# removing anything a full install put there.
$(VENV)/.analyzer: service/pyproject.toml service/uv.lock
	@echo "make: installing the analyzer into $(VENV) (service/uv.lock)"
	@uv="$$($(ENSURE_UV))" && UV_PROJECT_ENVIRONMENT="$(CURDIR)/$(VENV)" \
		$$uv sync --quiet --frozen --inexact --no-dev --project service --python "$(PYTHON)"
	@touch $@

install: $(VENV)/.installed ## Install the locked Python packages into .venv

system-deps: ## Install the Debian packages the tests drive (promtool, amtool, nginx...)
	@scripts/install-system-deps.sh

lint: install ## ruff (lint and format check); hadolint and actionlint run as tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install ## mypy
	$(BIN)/mypy

# pytest-xdist: most tests wait on processes they start (servers, Prometheus, the Pulumi engine),
# so two workers overlap the waits. `loadfile` keeps each test file on one worker, so a file's
# module fixtures start once and its tests run in order, as in a serial run. PYTEST_WORKERS=0
# runs serially.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL = -n $(PYTEST_WORKERS) --dist loadfile

test: install system-deps pulumi-cli lint typecheck ## Install everything and run every test, ruff and mypy
	$(BIN)/pytest $(PYTEST_PARALLEL)

test-fast: install ## pytest without the end-to-end run
	$(BIN)/pytest $(PYTEST_PARALLEL) -m "not e2e"

config-docs: $(VENV)/.analyzer ## Regenerate docs/analyzer/configuration.md from the analyzer's Settings
	@$(BIN)/python -m aiops_analyzer.core.config_reference --write docs/analyzer/configuration.md

demo: $(VENV)/.analyzer ## Start the analyzer offline, replay recorded alerts, print the analyses
	@$(BIN)/python scripts/demo.py

# ---- Pulumi: deploy a stack (STACK=local by default; STACK=gcp for Cloud Run) ---------------
STACK ?= local
.PHONY: up preview down preview-offline pulumi-cli

up: install ## Deploy the stack with Pulumi (STACK=local; logs in to a local backend if none)
	@STACK=$(STACK) scripts/pulumi-stack.sh up

preview: install ## Show what `make up` would change (STACK=local)
	@STACK=$(STACK) scripts/pulumi-stack.sh preview

down: install ## Destroy the stack's resources (STACK=local; named volumes go too)
	@STACK=$(STACK) scripts/pulumi-stack.sh down

pulumi-cli: ## Get the pinned Pulumi CLI: from PATH, else built once from the Go module proxy
	@scripts/pulumi-cli.sh >/dev/null

preview-offline: install ## Real `pulumi preview` of STACK with stand-in providers, no cloud or Docker
	@$(BIN)/python -m tests.engine.offline --stack $(STACK) --step preview
