# PyProject: `make run` serves the blog, `make test` runs the whole suite.
# Both set everything up on a fresh machine that has Python 3.11 and make.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: run serve-dev test lint format bench clean setup

run: $(VENV)/.runtime .env ## set up, migrate, serve with gunicorn on http://127.0.0.1:8000, and run the job worker
	$(PY) main.py prepare
	exec $(BIN)/honcho start -f Procfile -p "$$($(PY) main.py setting PORT)"

serve-dev: $(VENV)/.runtime .env ## the standard library's development server
	$(PY) main.py serve

setup: $(VENV)/.dev .env

# Two workers (pytest-xdist), each taking whole files, so a module's shared server or
# browser stays on one worker; TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2

test: $(VENV)/.dev ## set up, then run every test
	$(PY) -m pytest --durations=25 $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

lint: $(VENV)/.dev ## ruff (lint and format check) and bandit
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/bandit -q -ll -c pyproject.toml -r pyproject main.py

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.dev ## load benchmarks (see bench/README.md)
	$(PY) bench/run.py
	$(PY) bench/mailing.py
	$(PY) bench/media.py
	$(PY) bench/porting.py
	$(PY) bench/federation.py
	$(PY) bench/stats.py

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	touch $@

$(VENV)/.runtime: requirements.txt $(VENV)/.created
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# A first run gets its own .env with a fresh SECRET_KEY, so sessions survive restarts.
.env: | .env.example
	sed "s/^SECRET_KEY=.*/SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_hex(32))')/" .env.example > $@
	@echo "Wrote .env with a new SECRET_KEY (edit it to change settings)."

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

# Lighthouse on a fresh, seeded gunicorn (bench/audit.py): needs Node.js, npm and Chromium.
.PHONY: audit
audit: $(VENV)/.dev node_modules/.package-lock.json ## Lighthouse scores of the home page, a post, a page and a series page
	$(PY) bench/audit.py

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
