# Two commands do all the set-up: `make demo` (the main job) and `make test` (the whole suite).
# Both create or reuse .venv, install torch first (CPU works; the local store has these), then s5cli.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.s5cli-installed

.PHONY: install test lint demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check s5cli s5cli_tests benchmarks examples
	$(BIN)/ruff format --check s5cli s5cli_tests benchmarks examples

test: $(STAMP)
	$(BIN)/ruff check s5cli s5cli_tests benchmarks examples
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/s5 demo --workdir s5-demo --overwrite

clean:
	rm -rf $(VENV) s5-demo
