# relaychat: `make run` serves it, `make test` checks everything. Both set up what is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
FRONTEND := frontend/dist/index.html
FRONTEND_SOURCES := $(wildcard frontend/src/*) frontend/index.html frontend/build.mjs frontend/package-lock.json frontend/package.json

.PHONY: help run run-cluster test test-centrifugo-v5 lock setup centrifugo nginx test-tools frontend frontend-check lint unit integration e2e bench clean

# The settings file `make run` reads (the environment overrides it); written on first run.
ENV_FILE ?= .env
# Where `make run` keeps nginx's rendered config, logs and pid, and the v5 Centrifugo config.
RUN_STATE_DIR ?= .cache/run

# `make` alone is `make run`; every target with a `## ` note: `make help`.
.DEFAULT_GOAL := run
help: ## this list
	@awk -F ':[^#]*## ' '/^[^\t#][^:=]*:[^=#]*## / { sub(/\$$\(ENV_FILE\)/, ".env", $$1); printf "  make %-20s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

run: setup $(ENV_FILE) ## the chat at http://localhost:9000: Centrifugo, the backend and nginx in the foreground
	$(BIN)/python -m scripts.run --env-file $(ENV_FILE) --state-dir $(RUN_STATE_DIR)

# Redis, two Centrifugo nodes and two backends on it, nginx balancing over them (docs/scaling.md).
run-cluster: setup $(ENV_FILE) ## Redis, two Centrifugo nodes, two backends and nginx (docs/scaling.md)
	@scripts/apt-install.sh redis-server redis-server
	$(BIN)/python -m scripts.run --cluster --env-file $(ENV_FILE) --state-dir $(RUN_STATE_DIR)

# Branch coverage of backend/ by the code the tests run in their own process: the unit tier,
# then the in-process parts of the others (the Redis registry is tested against a real Redis).
COVERAGE_FLOOR := 93

test: setup test-tools lint ## everything CI runs: lint, then the unit, integration and browser tiers with coverage
	$(BIN)/pytest -m unit --cov --cov-report=
	CENTRIFUGO_BIN="$$(scripts/centrifugo.sh)" $(BIN)/pytest -m "not unit" \
		--cov --cov-append --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR)

# The integration and browser tiers against the other Centrifugo this project runs, v5.4.9
# (built once per machine from its Go module), whichever `make test` got.
test-centrifugo-v5: setup test-tools ## the integration and browser tiers against Centrifugo v5.4.9
	CENTRIFUGO_BIN="$$(CENTRIFUGO_VERSION=5.4.9 scripts/centrifugo.sh)" $(BIN)/pytest -m "not unit"

unit: $(STAMP) ## the unit tier only (no servers)
	$(BIN)/pytest -m unit --cov --cov-report=term

integration: setup test-tools ## the integration tier (real Centrifugo, nginx, Redis)
	CENTRIFUGO_BIN="$$(scripts/centrifugo.sh)" $(BIN)/pytest -m integration

e2e: setup test-tools ## the browser tier (Debian chromium)
	CENTRIFUGO_BIN="$$(scripts/centrifugo.sh)" $(BIN)/pytest -m e2e

# Figures, not pass/fail (issue 13): relaychat's relay through Centrifugo (30 and 60 ms windows, 0),
# its /api/chat SSE route and a direct-SSE baseline (bench/direct_sse.py), 1 to 2,000 streams at
# once, one table. Loopback only, every workload timed out; ~6-8 minutes on 2 cores (`make bench
# BENCH_ARGS=--quick`: ~1-2 minutes; README "Benchmarks"). The older figures stay where they
# were: `.venv/bin/python -m bench.relay_throughput`, `.venv/bin/python -m bench.cluster_throughput`.
bench: setup ## the performance table (README "Benchmarks"; BENCH_ARGS=--quick)
	CENTRIFUGO_BIN="$$(scripts/centrifugo.sh)" $(BIN)/python -m bench.workloads $(BENCH_ARGS)

lint: $(STAMP) frontend-check ## ruff, ruff format --check, mypy and the page's checks
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The page's JS: type-checked (tsc on JSDoc, strict) and its pure functions tested (node --test).
frontend-check: $(FRONTEND) ## the page's JS type-checked (tsc) and its node tests
	cd frontend && npm run --silent check && npm test --silent

setup: $(STAMP) centrifugo nginx frontend ## .venv, Centrifugo, nginx and the page's build, whatever is missing

centrifugo: ## find or get Centrifugo (scripts/centrifugo.sh)
	@scripts/centrifugo.sh >/dev/null

nginx: ## install Debian's nginx if it is missing
	@scripts/apt-install.sh nginx nginx

# Debian's Chromium, driven by Playwright in the browser tests (Playwright's own browser
# download is not used), docker-compose to check the compose file without a Docker engine,
# Redis for the cluster tests, and busybox to run the nginx image's scripts as its shell does.
test-tools: ## install chromium, docker-compose, redis-server and busybox if missing
	@scripts/apt-install.sh chromium chromium docker-compose docker-compose redis-server redis-server busybox busybox

frontend: $(FRONTEND) ## build the page into frontend/dist

$(FRONTEND): $(FRONTEND_SOURCES)
	@command -v npm >/dev/null || { echo "needs Node.js 20+ with npm: apt-get install nodejs npm (Debian 13; Debian 12's is 18: take Node 20 from NodeSource)"; exit 1; }
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

# Run every time (it changes nothing once the secrets are set): a .env copied from .env.example
# by hand gets random secrets in place of its `change-me`.
$(ENV_FILE): FORCE ## write .env with fresh random secrets if there is none; fill in those that say change-me
	@scripts/ensure-env.sh $@
FORCE:

# Every package at the version tested (requirements-dev.lock), not whatever is newest that day.
$(STAMP): pyproject.toml requirements-dev.lock
	@command -v $(PYTHON) >/dev/null || { echo "needs Python >= 3.11: apt-get install python3 python3-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements-dev.lock -e '.[test]'
	@touch $@

# After a change of pyproject.toml's dependencies: both lock files again, each from a fresh
# environment (newest versions allowed by pyproject.toml's pins), then `make test`.
lock: ## write both lock files again after a change of pyproject.toml's dependencies
	rm -rf .cache/lock && mkdir -p .cache/lock
	$(PYTHON) -m venv .cache/lock/dev && .cache/lock/dev/bin/pip install --quiet -e '.[test]'
	{ sed -n '/^#/p' requirements-dev.lock; .cache/lock/dev/bin/pip freeze --exclude-editable; } > .cache/lock/dev.lock
	# The image's at the same versions as the tests'.
	$(PYTHON) -m venv .cache/lock/run && .cache/lock/run/bin/pip install --quiet -c .cache/lock/dev.lock .
	{ sed -n '/^#/p' requirements.lock; .cache/lock/run/bin/pip freeze | grep -v '^relaychat'; } > .cache/lock/run.lock
	mv .cache/lock/dev.lock requirements-dev.lock && mv .cache/lock/run.lock requirements.lock
	rm -rf .cache/lock

clean: ## delete .venv, .cache (run state, build links), the page's build and the tool caches
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache frontend/node_modules frontend/dist
