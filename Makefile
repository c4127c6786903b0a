# One command each for the two things a new user does: see it work, run the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXAMPLES := $(sort $(wildcard examples/*/workflow.json))

.PHONY: demo test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# A real (non-editable) install: the tests run the package as a user gets it.
$(VENV)/.installed: $(BIN)/python pyproject.toml $(shell find striatum grammar schemas examples -type f -not -name '*.pyc')
	$(BIN)/python -m pip install --quiet '.[dev]'
	touch $@

demo: $(VENV)/.installed
	@for wf in $(EXAMPLES); do \
	  echo "== $$wf"; \
	  $(BIN)/striatum workflow validate $$wf || exit $$?; \
	  $(BIN)/striatum workflow lint --strict $$wf || exit $$?; \
	  $(BIN)/striatum workflow plan $$wf || exit $$?; \
	  $(BIN)/striatum workflow graph --format mermaid $$wf || exit $$?; \
	  echo; \
	done

lint: $(VENV)/.installed
	$(BIN)/ruff check striatum tests bench

typecheck: $(VENV)/.installed
	$(BIN)/mypy

unit: $(VENV)/.installed
	$(BIN)/pytest -q

test: lint typecheck unit

bench: $(VENV)/.installed
	$(BIN)/python bench/compile_scaling.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
