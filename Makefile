# Quick start: `make demo` serves a demo clinic; `make test` runs the whole suite.
# Both set everything up first (a virtualenv in .venv, packages, browser assets, database).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 5000
VENDOR := outcomes/static/vendor
PLOTLY_JS := $(VENDOR)/plotly.min.js
# The demo's worker appends audit checkpoints here (instance/ is git-ignored), as production's
# does to its AUDIT_CHECKPOINT_PATH; `flask audit verify` with the same setting reads them.
# Reminders and alert notifications link to PUBLIC_BASE_URL (their jobs run only where it is
# set); development's outbox takes them, so nothing leaves the machine.
DEMO_ENV := OUTCOMES_ENV=development AUDIT_CHECKPOINT_PATH=instance/audit-checkpoints.jsonl \
	PUBLIC_BASE_URL=http://127.0.0.1:$(PORT)

.PHONY: demo test install install-test assets db clean

demo: install assets db
	@$(DEMO_ENV) $(PY) -m flask --app wsgi seed-demo --if-empty
	@echo
	@echo "Outcomes demo: http://127.0.0.1:$(PORT)/  (Ctrl-C stops it and its worker)"
	@echo
	@# The worker runs the scheduled jobs beside the web server (docs/jobs.md); the trap stops
	@# it, letting its run in progress finish, whichever way the server ends.
	@$(DEMO_ENV) $(PY) -m flask --app wsgi worker & worker=$$!; \
	  trap 'kill -TERM $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	  $(DEMO_ENV) $(PY) -m flask --app wsgi run --host 127.0.0.1 --port $(PORT)

test: install-test assets
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

install: $(VENV)/.runtime-installed
install-test: $(VENV)/.test-installed

$(VENV)/bin/python:
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime-installed: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.test-installed: requirements-test.txt requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $(VENV)/.runtime-installed $@

# plotly.js is served from this site (never a CDN). The basic partial bundle (scatter, bar,
# pie: all the charts use) comes from the npm registry when npm is here, pinned by
# package-lock.json; without npm, the full bundle from the installed plotly package serves.
assets: $(PLOTLY_JS)
$(PLOTLY_JS): package.json package-lock.json requirements.txt | $(VENV)/bin/python
	mkdir -p $(VENDOR)
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error && \
	  cp node_modules/plotly.js-basic-dist-min/plotly-basic.min.js $(PLOTLY_JS); \
	else \
	  echo "npm not found: serving plotly's full bundle from the Python package instead"; \
	  $(PY) -c 'import plotly' 2>/dev/null || $(PY) -m pip install --quiet -r requirements.txt; \
	  $(PY) -c 'import plotly, pathlib, shutil; shutil.copyfile(pathlib.Path(plotly.__file__).parent / "package_data" / "plotly.min.js", "$(PLOTLY_JS)")'; \
	fi
	$(PY) -c 'import whitenoise' 2>/dev/null || $(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m whitenoise.compress --quiet $(VENDOR)

db: install
	@$(DEMO_ENV) $(PY) -m flask --app wsgi db upgrade

clean:
	rm -rf $(VENV) $(VENDOR) node_modules .pytest_cache
