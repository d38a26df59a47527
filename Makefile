# The two commands of the README. Both create or refresh the virtual environment themselves.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test lint bench

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

## demo: place a call through the local emulators and watch it live (no credentials needed)
demo: $(VENV)/.installed
	$(BIN)/dialer demo

## test: lint and run the whole test suite (PostgreSQL and Redis tests need those services)
test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/capacity.py
