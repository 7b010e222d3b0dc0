# The project's virtualenv lives in .venv/ (the installed command is .venv/bin/kube-oidc-proxy).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all venv test lint typecheck unit integration e2e drills fuzz demo cluster tools bench soak lock clean

all: test

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# Everything: lint, types, unit, integration and end-to-end tests (the e2e suite builds a real
# kube-apiserver from Go modules on first use: ~10 minutes, then cached in ~/.cache/kube-oidc-proxy/e2e).
test: lint typecheck cluster tools
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

e2e: cluster
	$(BIN)/pytest tests/e2e

# The fault drills alone (tests/e2e/drills: components killed and clients misbehaving under real traffic),
# with the figure each observed.
drills: cluster
	$(BIN)/pytest tests/e2e/drills

# The fuzz targets of tests/fuzz for FUZZ_SECONDS in all, shared equally, with a fresh random seed
# (`make test` runs them for ~24 s with fixed seeds); a summary gives each target's examples.
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/pytest tests/fuzz

# A real local cluster (kube-apiserver, Keycloak) with the proxy in front; writes demo/kubeconfig.
demo: $(STAMP)
	$(BIN)/python -m tests.e2e.cluster --kubeconfig-dir demo

# Only build (or find in the cache) the cluster's binaries.
cluster: $(STAMP)
	$(BIN)/python -m tests.e2e.cluster.build

# helm and actionlint for the deployment tests, built from pinned Go modules (cached in ~/.cache/kube-oidc-proxy/tools).
tools: $(STAMP)
	$(BIN)/python -m tests.deploy.tools

# Benchmarks need Go, wrk and taskset (see docs/benchmarks.md); they are not tests.
bench: $(STAMP)
	$(BIN)/python bench/run.py

# A soak of SOAK_MINUTES (default 30) of mixed traffic against the e2e cluster: the proxy's memory, fds, tasks
# and upstream connections every 5 s into bench/results/soak-*.csv and .png; fails if any of them grows.
SOAK_MINUTES ?= 30
soak: cluster
	$(BIN)/python -m pip install --quiet -e '.[dev,soak]'
	$(BIN)/python bench/soak.py --minutes $(SOAK_MINUTES)

# requirements.lock: the runtime dependencies pinned with hashes, for the image (needs the dev extra's uv).
lock: $(STAMP)
	cp deploy/image/lock-header.txt requirements.lock
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --no-header \
		--custom-compile-command "make lock" >> requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist src/*.egg-info
