# Every target runs inside .venv (created by `make setup`).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint typecheck check bench

setup: $(BIN)/orchestrator
	@bash scripts/bootstrap.sh
	@$(BIN)/python -c "from orchestrator.local.dynamodb_local import install; install()"

$(BIN)/orchestrator: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

# The README's first command: a stub change-management API on :8765, and a gate that bakes
# for 10 minutes and then waits for change 42's approval, rehearsed 60 times faster.
demo: setup
	@$(BIN)/python examples/itsm_stub.py --port 8765 & stub=$$!; \
	trap 'kill $$stub' EXIT; sleep 0.5; \
	$(BIN)/orchestrator run examples/change-gate.json --speed 60

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

test: setup
	$(BIN)/python -m pytest

check: lint typecheck test

# Benchmarks, reported as ratios against a floor measured in the same run (docs/BENCHMARKS.md).
# Not part of `check`: prints the tables and writes build/bench.json in a few minutes.
bench: setup
	$(BIN)/python -m bench.run

# The Lambda package, as `sam build` makes it (template.yaml: BuildMethod makefile). sam runs
# `build-OrchestratorFunction` with ARTIFACTS_DIR set; `build` makes the same package without
# sam into build/lambda/ and build/orchestrator-lambda.zip and prints its sizes. Both need
# only python3 with pip (the runtime dependencies are downloaded as python3.13 arm64 wheels).
# ApprovalFunction (the approval endpoint) is built from the very same package.
.PHONY: build build-OrchestratorFunction build-ApprovalFunction
build:
	$(PY) scripts/build_lambda.py

build-OrchestratorFunction:
	$(PY) scripts/build_lambda.py --artifacts-dir "$(ARTIFACTS_DIR)" --no-zip

build-ApprovalFunction:
	$(PY) scripts/build_lambda.py --artifacts-dir "$(ARTIFACTS_DIR)" --no-zip
