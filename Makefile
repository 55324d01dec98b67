# relaychat: `make run` serves it, `make test` checks everything. Both set up what is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test setup centrifugo lint unit integration clean

run: setup .env
	scripts/run.sh

test: setup lint
	CENTRIFUGO_BIN="$$(scripts/centrifugo.sh)" $(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest -m unit

integration: setup
	CENTRIFUGO_BIN="$$(scripts/centrifugo.sh)" $(BIN)/pytest -m integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

setup: $(STAMP) centrifugo

centrifugo:
	@scripts/centrifugo.sh >/dev/null

.env:
	scripts/ensure-env.sh

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs Python >= 3.11: apt-get install python3 python3-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
