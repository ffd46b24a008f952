# The two commands of the README: `make demo` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PORT    ?= 8000

# Test services started by .ci/services (PostgreSQL, Redis, MariaDB on loopback).
TEST_ENV := DATABASE_URL=$${DATABASE_URL:-postgres://tooljet:tooljet@127.0.0.1:5432/tooljet} \
	TELEMETRY_DATABASE_URL=$${TELEMETRY_DATABASE_URL:-postgres://tooljet:tooljet@127.0.0.1:5432/tooljet_telemetry} \
	TEST_REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/15} \
	TEST_POSTGRES_PLUGIN_URL=$${TEST_POSTGRES_PLUGIN_URL:-postgres://tooljet:tooljet@127.0.0.1:5432/tooljet_plugin_data} \
	TEST_MYSQL_URL=$${TEST_MYSQL_URL:-mysql://tooljet:tooljet@127.0.0.1:3306/tooljet_plugin_data}

.PHONY: install services test lint demo migrate seed clean bench

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $@

services:
	bash .ci/services

test: install services
	$(TEST_ENV) $(VENV)/bin/pytest $(PYTEST_ARGS)

# Lint (ruff), import contracts (import-linter, pyproject.toml) and types (mypy on telemetry/).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

migrate: install
	@# The telemetry alias first: the platform's migrate already records its statements there.
	$(PY) manage.py migrate --noinput -v 0 --database telemetry
	$(PY) manage.py migrate --noinput -v 0

seed: migrate
	$(PY) manage.py seed_demo

# Web, worker and beat share one prometheus-client multiprocess directory, emptied at start.
# The demo's planted seq scan takes ~100 ms on a million PostgreSQL rows: a lower slow
# threshold makes it a slow statement with a plan and index advice (override to change).
TELEMETRY_SLOW_QUERY_MS ?= 50
# demo_traffic serves the demo REST API there; the settings allowlist exactly it (and the
# PostgreSQL sample database) for the demo's data sources.
DEMO_REST_PORT ?= $(shell expr $(PORT) + 1)
demo: export TELEMETRY_SLOW_QUERY_MS := $(TELEMETRY_SLOW_QUERY_MS)
demo: export DEMO_REST_PORT := $(DEMO_REST_PORT)
demo: seed
	@echo "Platform: http://127.0.0.1:$(PORT)/   admin: http://127.0.0.1:$(PORT)/admin/   (Ctrl-C stops everything)"
	export PROMETHEUS_MULTIPROC_DIR=$${PROMETHEUS_MULTIPROC_DIR:-$${VAR_DIR:-$(CURDIR)/var}/prometheus-multiproc}; \
	rm -rf "$$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$$PROMETHEUS_MULTIPROC_DIR" && \
	PORT=$(PORT) $(VENV)/bin/honcho start -f platform/Procfile -d .

clean:
	rm -rf var/*.sqlite3* var/celery var/celerybeat-schedule* var/prometheus-multiproc
