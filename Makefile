# TraceLedger: `make run` (install, migrate, seed the demo, serve on 127.0.0.1:8000 with
# no services: SQLite, in-process tasks) and `make test` (the whole suite).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run install system-deps migrate demo serve test test-services test-embedded bench bench-scale bench-quick check clean smoke

run: install migrate demo serve

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)
	@$(PY) -c "import weasyprint" 2>/dev/null || $(MAKE) system-deps

# Debian packages: Chromium for the browser tests, poppler for PDF checks, Pango for
# WeasyPrint. Installed only when missing.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v pdftoppm >/dev/null || missing="$$missing poppler-utils"; \
	ldconfig -p | grep -q libpango-1.0 || missing="$$missing libpango-1.0-0 libpangoft2-1.0-0"; \
	fc-list | grep -qi dejavu || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py demo

# DEBUG stays off (no debug page with settings and tracebacks); --insecure only lets
# runserver serve the static files (plotly.js, CSS) itself, as DEBUG would. DEBUG=1 make serve
# turns the debug page on for local development.
serve:
	$(PY) manage.py runserver --insecure 127.0.0.1:8000

# The whole suite: against PostgreSQL + Redis with a real Celery worker when
# DATABASE_URL/REDIS_URL are set (CI sets them), then the embedded SQLite path.
test: install system-deps
	@if [ -n "$$DATABASE_URL" ]; then $(MAKE) --no-print-directory test-services; fi
	$(MAKE) --no-print-directory test-embedded

# pytest exits 5 when nothing was collected (e.g. a -k filter); that is not a failure.
test-services:
	$(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

test-embedded:
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest -q -m embedded $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

# Every figure of the README's performance table: the median of three runs.
bench: install
	$(PY) manage.py bench all --runs 3 --json

# The dashboard at 10,000,000 predictions (issue 15's scale), median of three runs, each
# filled through the ingest writer: about 10 min a run and 15 GB of disk on PostgreSQL.
bench-scale: install
	$(PY) manage.py bench dashboard --size 10000000 --runs 3 --json

# Every benchmark in its quick form (seconds each) on a scratch database migrated
# here: PostgreSQL when DATABASE_URL is set, then the embedded SQLite default.
bench-quick: install
	@set -e; scratch=$$(mktemp -d); trap 'rm -rf "$$scratch"' EXIT; \
	if [ -n "$$DATABASE_URL" ]; then \
	  psql -q "$${DATABASE_URL%/*}/postgres" -c 'DROP DATABASE IF EXISTS traceledger_check WITH (FORCE)' \
	    -c 'CREATE DATABASE traceledger_check'; \
	  DATABASE_URL="$${DATABASE_URL%/*}/traceledger_check" TRACELEDGER_HOME="$$scratch/pg" $(PY) manage.py migrate --noinput -v 0; \
	  DATABASE_URL="$${DATABASE_URL%/*}/traceledger_check" TRACELEDGER_HOME="$$scratch/pg" $(PY) manage.py bench all --quick; \
	  psql -q "$${DATABASE_URL%/*}/postgres" -c 'DROP DATABASE IF EXISTS traceledger_check WITH (FORCE)'; \
	fi; \
	env -u DATABASE_URL -u REDIS_URL TRACELEDGER_HOME="$$scratch/lite" $(PY) manage.py migrate --noinput -v 0; \
	env -u DATABASE_URL -u REDIS_URL TRACELEDGER_HOME="$$scratch/lite" $(PY) manage.py bench all --quick

check: install
	$(PY) manage.py check
	SECRET_KEY=ci-check-$$(date +%s)-not-a-real-secret-but-long-enough-for-django-checks \
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/test ALLOWED_HOSTS=traceledger.example.com \
	DJANGO_SETTINGS_MODULE=compliance.project.settings_production $(PY) manage.py check --deploy --fail-level WARNING
	$(MAKE) --no-print-directory bench-quick

clean:
	rm -rf var

# The production path (tests/deploy): gunicorn, workers and beat as deploy/compose.yaml
# starts them, on PostgreSQL and Redis; backup and restore. Part of `make test` too.
smoke: install
	$(PY) -m pytest -q tests/deploy
