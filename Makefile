# Two entry points: `make search` (set up, then search CIFAR-10 on embedded defaults)
# and `make test` (set up, then run the test suite). Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Local dataset copies (the shared CIFAR-10 archive) when they sit beside the checkout.
export AUTOML_DATA_DIR ?= $(abspath ../shared/data)
SEARCH_ARGS ?= --timeout 20m

.PHONY: setup search test test-fast bench bench-quick lint clean

$(BIN)/automl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/automl

setup: $(BIN)/automl

search: setup
	$(BIN)/automl search cifar10 $(SEARCH_ARGS)

# The default suite, the slow end-to-end checks (pytest exits 5 if none exist), then
# every benchmark at smoke size (numbers not asserted; written to benchmarks/quick/).
# -rsa: the closing summary names every skip with its reason (s), and every other
# outcome but a pass (a). With CI=true a missing component the README promises
# (Chromium, PostgreSQL, ../shared/data's CIFAR-10, an MLflow server) fails instead.
test: test-fast
	$(BIN)/pytest -rsa -m slow || [ $$? -eq 5 ]
	$(MAKE) bench-quick

bench-quick: setup
	$(BIN)/python -m benchmarks run --quick

# The published figures: about an hour on 2 cores; rewrites benchmarks/RESULTS.md.
bench: setup
	$(BIN)/python -m benchmarks run --full

test-fast: lint
	$(BIN)/pytest -rsa -m "not slow"

# ruff, and the layers contract of pyproject.toml ([tool.importlinter]).
lint: setup
	$(BIN)/ruff check automl search_spaces tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf automl-out automl.db mlflow.db mlruns mlartifacts .pytest_cache
