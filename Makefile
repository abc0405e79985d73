# Template developer tasks. `make test` is the README's test command.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test unit venv bake clean

test: venv  ## every test: bake, hooks, generated unit tests, docker e2e, interop with the real orchestrator
	$(BIN)/python -m pytest

unit: venv  ## the tests that need neither Docker nor the real orchestrator
	$(BIN)/python -m pytest -m "not docker and not interop"

venv:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt

bake: venv  ## generate the default project into ./inventory-worker (overwriting it)
	$(BIN)/cookiecutter --no-input --overwrite-if-exists .

clean:
	rm -rf $(VENV) inventory-worker
