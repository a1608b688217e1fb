# batchwire: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench install install-dev services clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## The simulated plant end to end: simulator -> edge agent -> MQTT -> historian -> HTTP API.
## Options go in ARGS, e.g. make demo ARGS="--port 8080 --broker mqtt://127.0.0.1:1883"
ARGS ?=
demo: install
	$(VENV)/bin/batchwire demo $(ARGS)

## Everything, including the slow fault-injection tests. Starts PostgreSQL and Mosquitto if down.
test: install services
	$(PY) -m pytest $(PYTEST_ARGS)

## Skip the slow fault-injection and soak tests.
test-fast: install services
	$(PY) -m pytest -m 'not slow' $(PYTEST_ARGS)

## Benchmarks: each figure printed as a ratio to a baseline measured in the same run.
bench: install services
	$(PY) -m tests.bench

services:
	@bash deploy/dev/ensure-services.sh

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
