# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck pytest system-deps bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@sh tools/ensure-python-venv.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: install
	$(BIN)/helpdesk init
	$(BIN)/helpdesk serve

# The servers the tests start privately (Dovecot, PostgreSQL, Postfix); installed when missing and we are root.
system-deps:
	@sh tools/ensure-test-servers.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install system-deps
	$(BIN)/pytest

test: install system-deps lint typecheck pytest

bench: install
	$(BIN)/python -m bench.ingest_throughput

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
