# The two commands that matter: `make up` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# uv from PATH, else as a module of the Python that `make install` puts it in.
UV ?= $(shell command -v uv >/dev/null 2>&1 && echo uv || echo python3 -m uv)
PY := .venv/bin/python

.PHONY: help install up down clean status test lint typecheck unit corpus integration scenarios schemas demo bench chaos

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: ## install the Python dependencies (uv, from the lock file)
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

up: ## start Kafka, PostgreSQL and the services; returns when all answer /readyz
	@deploy/stack.sh up

down: ## stop everything (data stays under .run/)
	@deploy/stack.sh down

clean: ## stop everything and delete .run/
	@deploy/stack.sh clean

status: ## what is running
	@deploy/stack.sh status

lint: install ## ruff
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check .

typecheck: install ## mypy --strict
	@$(UV) run --frozen mypy shared/src services/ingest/src services/assessor/src services/notifier/src services/sandbox/src services/console/src

unit: install ## unit tests (no infrastructure)
	@$(UV) run --frozen pytest tests/unit -q

corpus: install ## free-text corpus: red-flag precision/recall, false flags, grades, every miss
	@$(UV) run --frozen python -m tools.corpus

integration: install ## integration, end-to-end tests, scenarios and the PostgreSQL-outage drill on the real stack
	@deploy/chromium.sh
	@deploy/npm-assets.sh
	@deploy/prometheus.sh
	@deploy/with-stack.sh sh -c '$(PY) -m pytest tests/integration tests/e2e -q && $(PY) -m tools.scenarios && $(PY) -m tools.chaos --only postgres --per-drill 20 && $(PY) -m tools.chaos_paging --only inbound,provider --texts 6 --kafka-down 15'


schemas: install ## re-export the events' JSON Schemas into docs/schemas
	@$(UV) run --frozen python -m shared.schemas docs/schemas

test: lint typecheck unit corpus integration ## everything CI runs

scenarios: install ## play every scenarios/*.toml through the running stack (simulated clock)
	@deploy/with-stack.sh $(PY) -m tools.scenarios

demo: install ## a synthetic cohort of 200 through a simulated year, printed
	@SIMULATED_CLOCK=1 SWITCH_MODE=1 deploy/stack.sh up
	@$(PY) -m tools.demo

bench: install ## benchmarks against the running stack; writes .run/bench.json and prints a table
	@deploy/wrk.sh
	@$(PY) -m tools.bench
	@$(PY) -m tools.console_bench
	@$(PY) -m tools.erasure_bench

chaos: install ## fault drills against the running stack (~14 min); exit 1 if a drill fails
	@$(PY) -m tools.chaos && deploy/with-stack.sh $(PY) -m tools.chaos_paging
