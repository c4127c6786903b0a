# One command each for the two things a new user does: see it work, run the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXAMPLES := $(sort $(wildcard examples/*/workflow.json))

.PHONY: demo test lint typecheck unit integration bench clean agent-clis

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# A real (non-editable) install: the tests run the package as a user gets it.
$(VENV)/.installed: $(BIN)/python pyproject.toml $(shell find striatum grammar schemas examples -type f -not -name '*.pyc')
	$(BIN)/python -m pip install --quiet '.[dev]'
	touch $@

# Check every example, then run code-change for real on the embedded PostgreSQL:
# first worked by striatum's own worker with fake agents, then driven by hand
# through the CLI verbs, the way an AI operator does.
demo: $(VENV)/.installed
	@for wf in $(EXAMPLES); do \
	  echo "== $$wf"; \
	  $(BIN)/striatum workflow lint --strict $$wf || exit $$?; \
	  $(BIN)/striatum workflow plan $$wf || exit $$?; \
	  $(BIN)/striatum workflow graph --format mermaid $$wf > /dev/null || exit $$?; \
	  echo; \
	done
	$(BIN)/python examples/demo.py
	$(BIN)/python examples/operator_demo.py

lint: $(VENV)/.installed
	$(BIN)/ruff check striatum tests bench examples

typecheck: $(VENV)/.installed
	$(BIN)/mypy

unit: $(VENV)/.installed
	$(BIN)/pytest -q

test: lint typecheck unit

# The integration tests alone (set STRIATUM_TEST_DSN to use a server of your own).
integration: $(VENV)/.installed
	$(BIN)/pytest -q tests/integration

# The real agent CLIs and the MCP Inspector, at the versions tests/agents/package.json
# pins, for the conformance tests (which skip, saying so, where they are absent).
AGENT_CLIS ?= .agent-clis
agent-clis: $(AGENT_CLIS)/.installed

$(AGENT_CLIS)/.installed: tests/agents/package.json
	mkdir -p $(AGENT_CLIS)
	cp tests/agents/package.json $(AGENT_CLIS)/package.json
	cd $(AGENT_CLIS) && npm install --no-audit --no-fund --loglevel=error
	touch $@

# Every figure in one table, the peers and the server's ceilings beside striatum's
# (bench/README.md); BENCH=--quick for the short form.
bench: $(VENV)/.installed
	$(BIN)/python -m bench all $(BENCH)

clean:
	rm -rf $(VENV) $(AGENT_CLIS) build dist .mypy_cache .ruff_cache .pytest_cache
