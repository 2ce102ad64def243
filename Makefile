# Two entry points: `make search` (set up, then search CIFAR-10 on embedded defaults)
# and `make test` (set up, then run the test suite). Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Local dataset copies (the shared CIFAR-10 archive) when they sit beside the checkout.
export AUTOML_DATA_DIR ?= $(abspath ../shared/data)
SEARCH_ARGS ?= --timeout 20m

.PHONY: setup setup-dev search test test-fast bench bench-quick lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The runtime only (no PostgreSQL driver, benchmarks or test tools): what `search` needs.
$(BIN)/automl: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(BIN)/automl

# Everything the tests and benchmarks use: pytest, ruff, Selenium, psycopg, AutoKeras...
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.dev $(BIN)/automl

setup: $(BIN)/automl

setup-dev: $(VENV)/.dev

search: setup
	$(BIN)/automl search cifar10 $(SEARCH_ARGS)

# The default suite, the slow end-to-end checks (pytest exits 5 if none exist), then
# every benchmark at smoke size (numbers not asserted; written to benchmarks/quick/).
# -rsa: the closing summary names every skip with its reason (s), and every other
# outcome but a pass (a). With CI=true a missing component the README promises
# (Chromium, PostgreSQL, ../shared/data's CIFAR-10, an MLflow server) fails instead.
test: test-fast
	$(BIN)/pytest -rsa --durations=30 -m slow || [ $$? -eq 5 ]
	$(MAKE) bench-quick

bench-quick: setup-dev
	$(BIN)/python -m benchmarks run --quick

# The published figures: about an hour on 2 cores; rewrites benchmarks/RESULTS.md.
bench: setup-dev
	$(BIN)/python -m benchmarks run --full

test-fast: lint
	$(BIN)/pytest -rsa --durations=30 -m "not slow"

# ruff, and the layers contract of pyproject.toml ([tool.importlinter]).
lint: setup-dev
	$(BIN)/ruff check automl search_spaces tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf automl-out automl.db mlflow.db mlruns mlartifacts .pytest_cache
