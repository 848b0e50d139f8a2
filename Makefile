# polyfleet — every target installs what it needs (uv is bootstrapped if missing).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH, else a private copy bootstrapped into .tools/ with the system Python.
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
PROTO_STAMP := $(VENV)/.synced

.PHONY: help setup uv kubectl browser proto proto-check lint typecheck test test-unit test-integration test-e2e demo dev bench clean

help: ## Show the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

uv: ## Install uv if it is missing
	@command -v $(UV) >/dev/null 2>&1 || { echo "bootstrapping uv into .tools/"; \
	  python3 -m venv .tools && .tools/bin/pip install --quiet uv; }

$(PROTO_STAMP): pyproject.toml uv.lock | uv
	$(UV) sync --frozen --all-extras
	@touch $@

setup: $(PROTO_STAMP) ## Create .venv from the lockfile

# The deploy tests render deploy/kubernetes with `kubectl kustomize`. Installed from Debian's
# packages when missing (as root, else with sudo); only when that fails is the reason left in
# .tools/kubectl.unavailable, and those tests skip with it (tests/kustomize.py).
kubectl: ## Install kubectl (Debian package) for the deploy tests if it is missing
	@command -v kubectl >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing kubectl (apt-get install kubectl)"; \
	  { $$sudo apt-get update -qq && $$sudo apt-get install -y -qq kubectl; } >/dev/null 2>&1 || { \
	    mkdir -p .tools; echo "apt-get install kubectl failed (no root, no sudo, or no package)" \
	      > .tools/kubectl.unavailable; echo "WARNING: kubectl could not be installed"; }; }
	@if command -v kubectl >/dev/null 2>&1; then rm -f .tools/kubectl.unavailable; fi

# The browser tests drive Debian's `chromium` with Playwright (never a browser Playwright downloads
# itself). Installed like kubectl; only when that fails is the reason left in
# .tools/chromium.unavailable, and those tests skip with it (tests/browser.py).
browser: ## Install chromium (Debian package) for the browser tests if it is missing
	@command -v chromium >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing chromium (apt-get install chromium)"; \
	  { $$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium; } >/dev/null 2>&1 || { \
	    mkdir -p .tools; echo "apt-get install chromium failed (no root, no sudo, or no package)" \
	      > .tools/chromium.unavailable; echo "WARNING: chromium could not be installed"; }; }
	@if command -v chromium >/dev/null 2>&1; then rm -f .tools/chromium.unavailable; fi

proto: setup ## Regenerate polyfleet/v1 from protos/
	$(VENV)/bin/buf lint protos
	scripts/gen_protos.sh

proto-check: setup ## Fail when the generated code is stale or buf lint fails
	$(VENV)/bin/buf lint protos
	@tmp=$$(mktemp -d); scripts/gen_protos.sh $$tmp >/dev/null 2>&1; \
	if diff -r -x __pycache__ $$tmp/polyfleet/v1 polyfleet/v1; then echo "generated code is up to date"; rm -rf $$tmp; \
	else echo "polyfleet/v1 is stale: run 'make proto'"; rm -rf $$tmp; exit 1; fi

lint: setup ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup ## mypy --strict on hand-written code
	$(VENV)/bin/mypy

test: setup kubectl browser proto-check lint typecheck ## Lint, typecheck and run every test (unit, integration, e2e)
	$(VENV)/bin/pytest

test-unit: setup kubectl ## Unit tests only
	$(VENV)/bin/pytest tests/unit

test-integration: setup kubectl browser ## Integration tests (real Temporal dev server, LMDB, gRPC)
	$(VENV)/bin/pytest tests/integration

test-e2e: setup ## End-to-end tests (the whole fleet as processes; the installed wheel)
	$(VENV)/bin/pytest tests/e2e

demo: setup ## Start the fleet, run the example agent and workflow live, stop everything
	$(VENV)/bin/polyfleet demo

dev: setup ## Run the fleet until Ctrl-C
	$(VENV)/bin/polyfleet dev

clean: ## Remove the venv and local data
	rm -rf $(VENV) .tools .polyfleet .pytest_cache .mypy_cache .ruff_cache

bench: setup ## Benchmarks against a baseline measured in the same run -> docs/benchmarks.md
	$(VENV)/bin/python -m bench.bench_store
	$(VENV)/bin/python -m bench.bench_runner
	$(VENV)/bin/python -m bench.bench_latency
	$(VENV)/bin/python -m bench.bench_observability
	$(VENV)/bin/python -m bench.bench_fleet
