"""Settings of the reference service: module-level constants, each read from the environment
through `academy.env` (typed, with a default and a clear error for a value it cannot read).

`DATABASE_URL` (default: SQLite under .run/), `REDIS_URL` (default: the embedded Redis that
`make run` / `make test` started, see academy.embedded), `DJANGO_SECRET_KEY` (default: random
per installation, in .run/secret_key), `DEBUG`.
"""

from importlib.util import find_spec
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from academy import embedded, env, installation, sqs

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = BASE_DIR / ".run"

DEBUG = env.flag("DEBUG")
# Random per installation, kept in .run/secret_key, unless DJANGO_SECRET_KEY is set.
SECRET_KEY = env.optional_text("DJANGO_SECRET_KEY") or installation.secret_key(RUN_DIR)
ALLOWED_HOSTS = env.words("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")

INSTALLED_APPS = [
    # Django's admin at /admin/ for staff: tenants, memberships, videos and AI jobs, with the
    # cancel and retry actions (each app's admin.py).
    "django.contrib.admin",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",  # the API's OpenAPI schema at /api/schema/ (academy.schema)
    # Django's Tasks framework (AI_JOB_RUNNER=tasks): the backport's app on Django 5.2 only.
    *([] if find_spec("django.tasks") else ["django_tasks"]),
    "django_tasks_db",
    "jobbox",
    "academy.tenants",
    "academy.videos",
    "academy.ai",
    "academy.webhooks",
    "academy.demo",
    "academy.maintenance",
    "academy.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The page's static files (its script, hls.js) from the app's own process, under WSGI
    # and ASGI alike: no separate web server needed to run the service.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Uploads authenticated and their declared length checked before the body is read (the
    # WSGI half; academy.asgi wraps the ASGI app in the same checks).
    "academy.upload_guard.UploadGuardMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",  # the admin's notices
    "academy.tenants.middleware.TenantMiddleware",
    # /api/ answers in the asker's language: their choice, else Accept-Language, else Korean.
    "academy.api_language.ApiLanguageMiddleware",
    "jobbox.http.errors.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "academy.urls"
WSGI_APPLICATION = "academy.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": [
            "django.template.context_processors.request",
            # The admin's templates need the user and its notices.
            "django.contrib.auth.context_processors.auth",
            "django.contrib.messages.context_processors.messages",
        ]},
    }
]

DATABASE_URL = env.optional_text("DATABASE_URL")
if not DATABASE_URL:
    RUN_DIR.mkdir(exist_ok=True)  # the embedded default's SQLite file lives here
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL or f"sqlite:///{RUN_DIR / 'jobbox.sqlite3'}",
        # Persistent connections: reconnecting costs PostgreSQL ~4 ms CPU per request, as
        # measured on this project's benchmark host.
        conn_max_age=60,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory: worker processes started by the tests must see the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(RUN_DIR / "test.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {
        # WAL: readers (polls falling back, the reconciler) never block the writer nor it
        # them; NORMAL sync is WAL's safe setting (a power cut loses at most the last commit).
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        # Writers take the write lock when their transaction begins: a read-then-write
        # transaction (every transition) no longer fails at once with "database is locked"
        # when another process writes, it waits its turn.
        "transaction_mode": "IMMEDIATE",
        # How long a writer waits for that turn, in seconds: a transaction here lasts
        # milliseconds, so 20 s covers a burst of uploads and workers on one small host.
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Signed-cookie sessions: reading a session costs no SQL and no Redis
# (docs/explanation/invariants.md, invariant 1).
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = 12 * 60 * 60  # a working day; signed cookies cannot be revoked early

REDIS_URL = embedded.redis_url(RUN_DIR)

# The page's sign-in throttle (academy.login_throttle, docs/how-to/security.md), counted in
# Redis per 15-minute window. Ten wrong passwords for one account from one address is more
# than a person mistyping; 50 per address leaves room for a school behind one NAT while
# stopping a guesser that rotates usernames; 30 per account from every address together is
# the slower backoff against a guesser spread over addresses (a browser that signed in to the
# account before is exempt from it, so the owner is not locked out by a stranger).
LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS = env.integer("LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS", 10)
LOGIN_FAILURES_PER_ADDRESS = env.integer("LOGIN_FAILURES_PER_ADDRESS", 50)
LOGIN_FAILURES_PER_ACCOUNT = env.integer("LOGIN_FAILURES_PER_ACCOUNT", 30)
LOGIN_THROTTLE_WINDOW_SECONDS = env.integer("LOGIN_THROTTLE_WINDOW_SECONDS", 15 * 60)
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}

JOBBOX = {
    "KEY_PREFIX": env.text("JOBBOX_KEY_PREFIX", ""),
    "REDIS_CLUSTER": env.flag("REDIS_CLUSTER"),
    "REDIS_MAX_CONNECTIONS": env.integer("JOBBOX_REDIS_MAX_CONNECTIONS", 100),
    "TENANT_RESOLVER": "academy.tenants.services.tenant_id_for_user",
    "TENANT_RESOLVER_MANY": "academy.tenants.services.tenant_ids_for_users",
    "PRINCIPAL_MODELS": ["tenants.Membership"],
    "METRICS_TOKEN": env.optional_text("METRICS_TOKEN"),
    "STREAM_HEARTBEAT_SECONDS": env.number("JOBBOX_STREAM_HEARTBEAT_SECONDS", 15.0),
    "STREAMS_PER_PERSON": env.integer("JOBBOX_STREAMS_PER_PERSON", 8),
    "STREAM_RECHECK_SECONDS": env.number("JOBBOX_STREAM_RECHECK_SECONDS", 3.0),
    "STREAM_MAX_SECONDS": env.integer("JOBBOX_STREAM_MAX_SECONDS", 600),
    "STREAM_SEND_TIMEOUT_SECONDS": env.number("JOBBOX_STREAM_SEND_TIMEOUT_SECONDS", 30.0),
}

# Celery: Redis broker by default (the same server), SQS or RabbitMQ by CELERY_BROKER_URL.
CELERY_BROKER_URL = env.text("CELERY_BROKER_URL", REDIS_URL)
# Late acknowledgement: a job whose worker dies is delivered again, not lost.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # long jobs: a worker takes one at a time
CELERY_TASK_IGNORE_RESULT = True  # results live in the database; no result backend
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {
    # Redis/SQS redeliver an unacknowledged message after this long (a dead worker's job).
    "visibility_timeout": env.integer("CELERY_VISIBILITY_TIMEOUT_SECONDS", 60 * 60),
}
# Amazon SQS (CELERY_BROKER_URL=sqs://, SQS_ENDPOINT_URL for a local or VPC endpoint): its
# region, queue prefix and polling (academy.sqs). SQS has no broadcast: no remote control.
SQS_ENDPOINT_URL = env.optional_text("SQS_ENDPOINT_URL")
if sqs.is_sqs(CELERY_BROKER_URL):
    # Celery lets the CELERY_BROKER_URL variable win over the setting; the read and write
    # URLs carry the endpoint instead.
    CELERY_BROKER_READ_URL = CELERY_BROKER_WRITE_URL = sqs.broker_url(
        CELERY_BROKER_URL, SQS_ENDPOINT_URL)
    CELERY_BROKER_TRANSPORT_OPTIONS = sqs.transport_options(
        endpoint_url=SQS_ENDPOINT_URL,
        visibility_timeout_seconds=CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"])
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
# Periodic work (reapers, reconcilers) is added here by the apps that need it.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}
# Lost cache writes repaired every 30 s (docs/explanation/invariants.md, invariant 8); a run
# missed while the workers are busy expires rather than piling up.
CELERY_BEAT_SCHEDULE["jobbox-reconcile-snapshots"] = {
    "task": "academy.maintenance.reconcile_job_snapshots",
    "schedule": 30.0,
    "options": {"expires": 30.0},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "jobbox.auth.drf.CachedTokenAuthentication",
        "jobbox.auth.drf.CachedSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "jobbox.http.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The OpenAPI schema (drf-spectacular) served at /api/schema/; the tests fuzz the API with it.
SPECTACULAR_SETTINGS = {
    "TITLE": "Jobbox academy API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,  # the schema's own route is not part of the API
    "COMPONENT_SPLIT_REQUEST": True,  # uploads described as binary in requests
}

STATIC_URL = "static/"
# Uploaded files and generated reports (Django's storage API); workers share this directory.
MEDIA_ROOT = env.text("MEDIA_ROOT", str(RUN_DIR / "media"))

# AI jobs: upload limits and the result's size in Redis. A score sheet of a whole academy
# (thousands of rows) is a few hundred KiB; 5 MiB leaves room for formatting while keeping
# uploads cheap to hold and to check.
AI_UPLOAD_MAX_BYTES = env.integer("AI_UPLOAD_MAX_BYTES", 5 * 1024 * 1024)
# An .xlsx is a zip: what it expands to is bounded too (a zip bomb is refused, not read).
AI_UPLOAD_MAX_UNCOMPRESSED_BYTES = env.integer("AI_UPLOAD_MAX_UNCOMPRESSED_BYTES",
                                               50 * 1024 * 1024)
# Data rows (after the header) a sheet may hold: a worker grades 10,000 rows in seconds and
# the result stays a few MiB.
AI_MAX_ROWS = env.integer("AI_MAX_ROWS", 10_000)
# A result whose JSON fits rides in the Redis snapshot, so a DONE poll costs zero SQL
# (docs/explanation/invariants.md, invariant 1); larger ones stay out of Redis to keep its
# memory predictable.
AI_RESULT_INLINE_MAX_BYTES = env.integer("AI_RESULT_INLINE_MAX_BYTES", 64 * 1024)
# A result too large for Redis is read from the database at most once per this window per
# process; clients poll about once a second, so 30 s turns 30 reads into one.
AI_RESULT_WINDOW_SECONDS = env.number("AI_RESULT_WINDOW_SECONDS", 30.0)
# A result over the inline limit travels as a summary: each long list (students, bad rows)
# cut to this many items, the rest read page by page. 20 is one screen of a table.
AI_RESULT_PREVIEW_ITEMS = env.integer("AI_RESULT_PREVIEW_ITEMS", 20)
# Items per page of `GET /api/ai/jobs/<id>/result/<section>/`, and the most a client may ask
# for: 500 rows of 50 subjects stay around 100 KiB of JSON.
AI_RESULT_PAGE_SIZE = env.integer("AI_RESULT_PAGE_SIZE", 100)
AI_RESULT_PAGE_SIZE_MAX = env.integer("AI_RESULT_PAGE_SIZE_MAX", 500)
# The .xlsx package, judged from its parts before any parse (academy.ai.uploads).
# Zip entries: a workbook has a dozen parts, a few hundred with many sheets and images.
AI_XLSX_MAX_PARTS = env.integer("AI_XLSX_MAX_PARTS", 1000)
# Shared strings: at most one per cell read (10,001 rows of 52 columns is 520,052), rounded
# up; ten million empty ones would cost a gigabyte once parsed.
AI_XLSX_SHARED_STRINGS_MAX_ENTRIES = env.integer("AI_XLSX_SHARED_STRINGS_MAX_ENTRIES", 600_000)
# A whole academy's names and subjects are a few hundred KB of shared strings; 16 MiB is
# dozens of times that and parses within the reader's memory budget.
AI_XLSX_SHARED_STRINGS_MAX_BYTES = env.integer("AI_XLSX_SHARED_STRINGS_MAX_BYTES",
                                               16 * 1024 * 1024)
# One worksheet part: 10,001 rows of 52 cells at about 40 bytes of XML each is ~21 MB.
AI_XLSX_SHEET_MAX_BYTES = env.integer("AI_XLSX_SHEET_MAX_BYTES", 32 * 1024 * 1024)
# Styles: a heavily formatted workbook's are a few hundred KB.
AI_XLSX_STYLES_MAX_BYTES = env.integer("AI_XLSX_STYLES_MAX_BYTES", 4 * 1024 * 1024)
# The sheet's parse, on the worker in a child process (academy.ai.sheet_reader): CPU seconds
# (a 10,000-row sheet parses in a few; 60 leaves room on a busy box), wall-clock seconds
# before the child is killed, and its address space (Python and openpyxl take ~150 MB, a full
# sheet ~100 MB more; 1 GiB refuses the gigabyte a shared-strings bomb would take).
AI_SHEET_READ_CPU_SECONDS = env.integer("AI_SHEET_READ_CPU_SECONDS", 60)
AI_SHEET_READ_TIMEOUT_SECONDS = env.integer("AI_SHEET_READ_TIMEOUT_SECONDS", 180)
AI_SHEET_READ_MEMORY_BYTES = env.integer("AI_SHEET_READ_MEMORY_BYTES", 1024 * 1024 * 1024)
# What runs AI jobs: "celery" (the default; the worker `make run` starts for videos too) or
# "tasks": Django's Tasks framework on django-tasks-db's database backend, run by its
# `manage.py db_worker` (academy.ai.runner). The job, its API, box and stream are the same.
AI_JOB_RUNNERS = ("celery", "tasks")
AI_JOB_RUNNER = env.text("AI_JOB_RUNNER", "celery")
if AI_JOB_RUNNER not in AI_JOB_RUNNERS:
    raise ImproperlyConfigured(f"AI_JOB_RUNNER must be one of {AI_JOB_RUNNERS}")
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# A running AI job's worker renews its lease every third of AI_LEASE_SECONDS (a heartbeat);
# the reaper, every AI_REAP_INTERVAL_SECONDS, re-queues a job whose lease ran out (its worker
# died), or fails it after AI_MAX_ATTEMPTS: 20 s + 10 s finds a dead worker within 30 s, as
# BullMQ's stalled-job check. Jobs grade in seconds, so a renewal is rare work.
AI_LEASE_SECONDS = env.integer("AI_LEASE_SECONDS", 20)
AI_REAP_INTERVAL_SECONDS = env.number("AI_REAP_INTERVAL_SECONDS", 10.0)
AI_MAX_ATTEMPTS = env.integer("AI_MAX_ATTEMPTS", 3)
# A PENDING job last sent longer ago than this is sent again (the send may have been lost
# after commit). Longer than a normal queue wait: a duplicate of a job another worker runs is
# left alone (its live lease), one of a PENDING job only starts it.
AI_RESEND_AFTER_SECONDS = env.integer("AI_RESEND_AFTER_SECONDS", 120)
CELERY_BEAT_SCHEDULE["reap-ai-jobs"] = {
    "task": "ai.reap_ai_jobs",
    "schedule": AI_REAP_INTERVAL_SECONDS,
    "options": {"expires": AI_REAP_INTERVAL_SECONDS},  # a missed run expires, not piles up
}

# Served from the apps' static folders as they are (no collectstatic step to run the page).
WHITENOISE_USE_FINDERS = True
LANGUAGE_CODE = "ko"
# The job-box page: Korean by default, English on request (academy.web).
LANGUAGES = [("ko", "한국어"), ("en", "English")]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.text("LOG_LEVEL", "WARNING")},
}

# Videos (docs/reference/service.md): uploads and HLS output go through Django's storage API. The
# default is the local MEDIA_ROOT under .run/; S3 by configuration: install the `s3` extra
# and set DJANGO_STORAGE_BACKEND=storages.backends.s3.S3Storage plus AWS_STORAGE_BUCKET_NAME
# (credentials come from the usual AWS_* environment variables).
MEDIA_URL = "media/"
STORAGES = {
    "default": {
        "BACKEND": env.text("DJANGO_STORAGE_BACKEND",
                            "django.core.files.storage.FileSystemStorage"),
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
AWS_STORAGE_BUCKET_NAME = env.optional_text("AWS_STORAGE_BUCKET_NAME")
# An upload larger than this is refused before it is probed or stored (2 GiB: a long lecture
# in 1080p; raise it for longer sources).
VIDEO_MAX_UPLOAD_BYTES = env.integer("VIDEO_MAX_UPLOAD_BYTES", 2 * 1024**3)
# A worker holds a video this long and renews the lease every third of it while ffmpeg
# reports progress; a dead worker's video is re-queued once the lease has run out.
VIDEO_LEASE_SECONDS = env.integer("VIDEO_LEASE_SECONDS", 5 * 60)
# How often the reaper looks for expired leases: a dead worker's video waits at most
# lease + this long before another worker picks it up.
VIDEO_REAP_INTERVAL_SECONDS = env.number("VIDEO_REAP_INTERVAL_SECONDS", 60.0)
# A video still UPLOADED this long after its transcode message was sent gets another one
# (the send may have been lost after commit; a duplicate is harmless). Longer than a normal
# wait in the queue, so a busy queue is not flooded with duplicates.
VIDEO_RESEND_AFTER_SECONDS = env.integer("VIDEO_RESEND_AFTER_SECONDS", 30 * 60)
# Attempts (lease expiries included) before a video ends FAILED instead of being re-queued.
VIDEO_MAX_ATTEMPTS = env.integer("VIDEO_MAX_ATTEMPTS", 3)
# The HLS ladder, "WIDTHxHEIGHT:VIDEO_KBPS" comma-separated (360p and 720p by default).
VIDEO_HLS_LADDER = env.text("VIDEO_HLS_LADDER", "640x360:800,1280x720:2800")
# x264 preset: "veryfast" trades a little size for a lot of CPU on small hosts.
VIDEO_X264_PRESET = env.text("VIDEO_X264_PRESET", "veryfast")
# Input read speed as a multiple of real time (0 = as fast as the CPU allows); a positive
# value caps the CPU one transcode takes on a shared host.
VIDEO_FFMPEG_READRATE = env.number("VIDEO_FFMPEG_READRATE", 0.0)
# Threads per ffmpeg process (0 = ffmpeg decides from the core count).
VIDEO_FFMPEG_THREADS = env.integer("VIDEO_FFMPEG_THREADS", 0)
# A transcode of one rendition that takes longer than this is killed and the video fails.
VIDEO_FFMPEG_TIMEOUT_SECONDS = env.integer("VIDEO_FFMPEG_TIMEOUT_SECONDS", 2 * 60 * 60)
# What one video may be, measured from its streams (academy.videos.media_limits;
# docs/how-to/limits.md). Four hours holds the longest lecture; 4K (3840x2160) is the largest
# frame a camera here records, and its decode fits the memory budget below; 120 frames/s is
# the fastest common capture rate.
VIDEO_MAX_DURATION_SECONDS = env.number("VIDEO_MAX_DURATION_SECONDS", 4 * 3600.0)
VIDEO_MAX_PIXELS = env.integer("VIDEO_MAX_PIXELS", 3840 * 2160)
VIDEO_MAX_FRAME_RATE = env.number("VIDEO_MAX_FRAME_RATE", 120.0)
# Address space of one ffmpeg process: x264 at 720p with its threads ran in 800 MiB here; a
# 4K decode adds a few hundred MiB. Raise it with VIDEO_FFMPEG_THREADS on many-core hosts.
VIDEO_FFMPEG_MEMORY_BYTES = env.integer("VIDEO_FFMPEG_MEMORY_BYTES", 2 * 1024**3)
# A probe copies every packet (no decoding) and decodes two frames: a 2 GiB upload scans in
# seconds, so 30 s of CPU and 60 s of wall clock leave room on a busy host and no more.
VIDEO_PROBE_CPU_SECONDS = env.integer("VIDEO_PROBE_CPU_SECONDS", 30)
VIDEO_PROBE_TIMEOUT_SECONDS = env.integer("VIDEO_PROBE_TIMEOUT_SECONDS", 60)
# CPU budget of one rendition's transcode: a base for start-up plus this much per second of
# probed media (veryfast x264 at 720p uses about 0.5 CPU-s per media second; 4x is room for
# slow hosts and 1080p sources, not for a file that lies about its length).
VIDEO_FFMPEG_CPU_BASE_SECONDS = env.integer("VIDEO_FFMPEG_CPU_BASE_SECONDS", 30)
VIDEO_FFMPEG_CPU_SECONDS_PER_MEDIA_SECOND = env.number(
    "VIDEO_FFMPEG_CPU_SECONDS_PER_MEDIA_SECOND", 4.0)
CELERY_BEAT_SCHEDULE["reap-expired-video-leases"] = {
    "task": "academy.videos.tasks.reap_expired_video_leases",
    "schedule": VIDEO_REAP_INTERVAL_SECONDS,
}


# --- Webhooks (academy.webhooks; docs/how-to/webhooks.md) ---
# `host:port` pairs a webhook may reach even though they resolve to loopback or private
# addresses (a local receiver, an on-premises system); comma-separated in the environment.
WEBHOOK_ALLOWED_HOSTS = env.words("WEBHOOK_ALLOWED_HOSTS", "")
# Each transition writes one row per subscribed endpoint: this bounds that, and the API.
WEBHOOK_MAX_ENDPOINTS_PER_ACADEMY = env.integer("WEBHOOK_MAX_ENDPOINTS_PER_ACADEMY", 10)
# Deliveries of one academy being sent at once: a hanging endpoint holds this many sending
# threads for up to their timeout, and no more, whatever the backlog.
WEBHOOK_MAX_IN_FLIGHT_PER_ACADEMY = env.integer("WEBHOOK_MAX_IN_FLIGHT_PER_ACADEMY", 4)
# Threads one delivery round sends with (each waits on a receiver, not on the CPU).
WEBHOOK_SEND_THREADS = env.integer("WEBHOOK_SEND_THREADS", 8)
# A delivery is retried for a day; an endpoint whose every delivery failed that long is
# disabled (its administrators see why, and can enable it again).
WEBHOOK_RETRY_FOR_SECONDS = env.integer("WEBHOOK_RETRY_FOR_SECONDS", 24 * 60 * 60)
# Beat's round: picks up retries that came due and anything a lost queue send left waiting.
WEBHOOK_ROUND_SECONDS = env.number("WEBHOOK_ROUND_SECONDS", 5.0)
CELERY_BEAT_SCHEDULE["deliver-webhooks"] = {
    "task": "academy.webhooks.deliver_due",
    "schedule": WEBHOOK_ROUND_SECONDS,
}
