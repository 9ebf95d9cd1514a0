# Every target runs inside .venv (created by `make setup`).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo-setup demo test lint typecheck check bench scan screenshots template

# Two installs in the one .venv: `make demo` needs only the CLI (the `cli` extra), `make
# check` the dev extra on top (pytest, mypy, ruff, cfn-lint, selenium, ...). Each long step
# says what it does before it starts.
CLI_INSTALLED := $(VENV)/.installed-cli
DEV_INSTALLED := $(VENV)/.installed-dev
DYNAMODB_LOCAL := $(BIN)/python -c "from orchestrator.local.dynamodb_local import install; install()"

setup: $(DEV_INSTALLED)
	@bash scripts/bootstrap.sh
	@$(DYNAMODB_LOCAL)

demo-setup: $(CLI_INSTALLED)
	@bash scripts/bootstrap.sh --demo
	@$(DYNAMODB_LOCAL)

$(BIN)/python:
	@echo "setup: creating the virtual environment $(VENV) ($(PY) -m venv)"
	@$(PY) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip

$(CLI_INSTALLED): pyproject.toml | $(BIN)/python
	@echo "setup: installing the orchestrator CLI (pip install -e '.[cli]': boto3, typer, rich, moto, ...)"
	@$(BIN)/pip install -q -e '.[cli]'
	@touch $@

$(DEV_INSTALLED): pyproject.toml | $(BIN)/python
	@echo "setup: installing the CLI and the dev tools (pip install -e '.[dev]': pytest, mypy, ruff, cfn-lint, selenium, ...)"
	@$(BIN)/pip install -q -e '.[dev]'
	@touch $@ $(CLI_INSTALLED)

# The README's first command: a stub change-management API, and a gate that bakes for 10
# minutes and then waits for change 42's approval, rehearsed 60 times faster. The stub
# listens on :8765, the gate's URL; when that port is taken, on a free one, which a copy of
# the gate then polls. The stub writes its port once it listens: no port, no rehearsal.
demo: demo-setup
	@tmp=$$(mktemp -d); trap 'kill $$stub 2>/dev/null; rm -rf "$$tmp"' EXIT; \
	$(BIN)/python examples/itsm_stub.py --port 8765 --any-port --port-file "$$tmp/port" & stub=$$!; \
	for i in $$(seq 100); do { [ -s "$$tmp/port" ] || ! kill -0 $$stub 2>/dev/null; } && break; sleep 0.1; done; \
	[ -s "$$tmp/port" ] || { echo "demo: the stub change-management API did not start (see above)" >&2; exit 1; }; \
	port=$$(cat "$$tmp/port"); gate=examples/change-gate.json; \
	if [ "$$port" != 8765 ]; then \
	  echo "demo: port 8765 is taken: the stub listens on $$port, and a copy of the gate polls it"; \
	  gate="$$tmp/change-gate.json"; \
	  sed "s/127.0.0.1:8765/127.0.0.1:$$port/" examples/change-gate.json > "$$gate"; \
	fi; \
	echo "demo: orchestrator run $$gate --speed 60"; \
	$(BIN)/orchestrator run "$$gate" --speed 60

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

test: setup
	$(BIN)/python -m pytest

check: lint typecheck test

# template.yaml's IAM statements (both roles), written from orchestrator/cdk/permissions.py,
# the source the CDK construct builds its statements from too; the rest of the file is
# written by hand. `test` fails when they are stale (tests/package/test_permissions.py).
template: $(CLI_INSTALLED)
	$(BIN)/python -m scripts.template

# The template's scanners (checkov, `sam validate --lint`), each in its own venv under
# build/tools/ (installed at a pinned version on first use). `test` runs them too
# (tests/package/test_scanners.py); this runs them alone.
screenshots: setup  # the approval pages in docs/images/ (docs/APPROVALS.md), taken again
	ORCHESTRATOR_SCREENSHOTS=docs/images $(BIN)/python -m pytest tests/browser -q -p no:randomly

scan:
	$(PY) scripts/scanners.py

# Benchmarks, reported as ratios against a floor measured in the same run (docs/BENCHMARKS.md).
# Not part of `check`: prints the tables and writes build/bench.json in a few minutes.
bench: setup
	$(BIN)/python -m bench.run

# The Lambda package, as `sam build` makes it (template.yaml: BuildMethod makefile). sam runs
# `build-OrchestratorFunction` with ARTIFACTS_DIR set; `build` makes the same package without
# sam into build/lambda/ and build/orchestrator-lambda.zip and prints its sizes. Both need
# only python3 with pip (the runtime dependencies are downloaded as python3.13 arm64 wheels).
# ApprovalFunction (the approval endpoint) is built from the very same package.
.PHONY: build build-OrchestratorFunction build-ApprovalFunction lock
build:
	$(PY) scripts/build_lambda.py

# requirements-lambda.txt anew: pyproject.toml's runtime ranges resolved for the Lambda
# platform (from PyPI), one version and wheel hash each; the README's list with it.
lock:
	$(PY) scripts/build_lambda.py --lock

build-OrchestratorFunction:
	$(PY) scripts/build_lambda.py --artifacts-dir "$(ARTIFACTS_DIR)" --no-zip

build-ApprovalFunction:
	$(PY) scripts/build_lambda.py --artifacts-dir "$(ARTIFACTS_DIR)" --no-zip
