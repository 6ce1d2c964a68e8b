# City help pipeline — see README.md.
#   make run    set up, start Kafka, the database and the four services (Ctrl-C stops all)
#   make test   set up, start a fresh test Kafka and database, run ruff, mypy and pytest
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help setup lock tools helm infra run test lint unit stop status chaos bench clean contracts redrive replay capacity

help:
	@sed -n '2,4p' Makefile

# Every package from requirements-dev.lock (pinned, hash-checked), then the project itself.
$(BIN)/.installed: pyproject.toml requirements-dev.lock
	@$(PYTHON) -m tools.lockcheck
	@echo "[setup] creating the Python environment in $(VENV) and installing the locked packages..."
	@$(PYTHON) -m venv $(VENV) || { echo "[setup] ERROR: '$(PYTHON) -m venv' failed; install Python 3.11+ with venv (Debian: apt-get install -y python3-venv)"; exit 1; }
	@$(BIN)/pip install --disable-pip-version-check -q --upgrade pip
	@$(BIN)/pip install --disable-pip-version-check --progress-bar off --require-hashes -r requirements-dev.lock 2>&1 | grep -E '^(Collecting|Successfully|ERROR|error)' | sed 's/^/[setup] /' ; test $${PIPESTATUS[0]} -eq 0
	@$(BIN)/pip install --disable-pip-version-check -q --no-deps -e . 2>&1 | grep -E '^(ERROR|error)' | sed 's/^/[setup] /' ; test $${PIPESTATUS[0]} -eq 0
	@touch $@
	@echo "[setup] Python environment ready"

setup: $(BIN)/.installed

# Regenerate requirements-dev.lock and requirements.lock from pyproject.toml (with hashes).
lock:
	@deploy/local/lock.sh

# helm for the chart's tests, built from the Go module proxy and cached in ~/.cache/cityhelp
# (the first build takes about 4 minutes on 2 cores).
helm:
	@deploy/local/helm.sh >/dev/null

# Partitions, replicas and cores per stage for 5,560 requests/s on 3 brokers; writes
# docs/capacity.md (from bench/results.json when present, else deploy/capacity.toml's figures).
capacity: setup
	@$(BIN)/python -m tools.capacity

# promtool, prometheus and kcat from Debian's packages (installed only when missing).
tools:
	@deploy/local/tools.sh

# JSON Schemas, AsyncAPI and OpenAPI documents under contracts/, generated from the code.
contracts: setup
	@$(BIN)/python -m tools.contracts

infra: setup
	@deploy/local/stack.sh start
	@$(BIN)/python -m tools.topics_cli

run: tools infra
	@deploy/local/run.sh

test: setup tools helm
	@deploy/local/test.sh

# A surge with crashes and outages, bad input and bad credentials on a fresh stack of its own;
# prints a table and `accepted=… lost=… duplicate_effects=…` (deploy/local/chaos.sh).
chaos: setup tools
	@deploy/local/chaos.sh $(CHAOS_ARGS)

lint: setup
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy

unit: setup tools
	@$(BIN)/pytest -m unit -q

stop:
	@deploy/local/stack.sh stop

status:
	@deploy/local/stack.sh status

clean: stop
	rm -rf .run $(VENV)

# Re-drive a stage's dead letters to their origin topics: make redrive SERVICE=route [ARGS='--dry-run'].
redrive: setup
	@test -n "$(SERVICE)" || { echo "usage: make redrive SERVICE=intake|verify|route|notify [ARGS='--reason <code> --limit N --dry-run']"; exit 2; }
	@$(BIN)/python -m tools.redrive --service $(SERVICE) $(ARGS)

# Rebuild a request's timeline from the topics and compare it with the stored one; without
# REQUEST, every request (python -m tools.replay --all). Exits 1 on a difference.
replay: setup
	@$(BIN)/python -m tools.replay $(if $(REQUEST),$(REQUEST),--all)

# Ceilings of Kafka and the database, the pipeline at fixed offered loads (wrk) and P1 behind a
# backlog, on a fresh stack of its own; a table, bench/results.json, bench/*.png and one line
# `bench: e2e_per_s=… …` (deploy/local/bench.sh). Short run: make bench BENCH_ARGS='--seconds 10'.
# Where the time goes: BENCH_ARGS='--profile bench/profile' (py-spy of every service).
bench: setup tools
	@deploy/local/bench.sh $(BENCH_ARGS)
