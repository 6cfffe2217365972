# Two entry points for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: demo test lint pytest venv bench clean ops-tools

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "installing checker and its dependencies into $(VENV) (first time: 1-3 minutes, quiet until done)"
	$(BIN)/pip install -q -e '.[dev]'
	@echo "installed: $$($(BIN)/pip list --format=freeze | wc -l) packages in $(VENV)"
	touch $(STAMP)

venv: $(STAMP)

# ruff (style), mypy (types), lint-imports (the package shape: layers, no cycles), file sizes.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python .ci/file_sizes.py

# Tools for tests/test_systemd.py and tests/test_prometheus_rules.py (required when CI=true).
ops-tools:
	@if [ "$$CI" = true ]; then \
		command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }; \
		command -v systemd-analyze >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; }; \
		command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; \
	fi

# CHECKER_TEST_PG_URL is set when a PostgreSQL server answers on 127.0.0.1:5432.
pytest: $(STAMP) ops-tools
	@if [ -z "$$CHECKER_TEST_PG_URL" ] && $(BIN)/python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 1).close()" 2>/dev/null; then \
		export CHECKER_TEST_PG_URL='$(PG_URL)'; echo "PostgreSQL found: CHECKER_TEST_PG_URL=$$CHECKER_TEST_PG_URL"; \
	fi; \
	$(BIN)/python -m pytest -q -n 4 --dist loadfile -m "not timing" tests && \
	$(BIN)/python -m pytest -q -m timing tests

test: lint pytest

demo: $(STAMP)
	$(BIN)/python -m checker.demo

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
