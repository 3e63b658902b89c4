"""Settings of the reference service, from the environment (DESIGN.md, "Stack").

`DATABASE_URL` (default: SQLite under .run/), `REDIS_URL` (default: the embedded Redis that
`make run` / `make test` started, see academy.embedded), `DJANGO_SECRET_KEY` (default: random
per installation, in .run/secret_key), `DEBUG`.
"""

import os
from pathlib import Path

import dj_database_url

from academy import embedded, installation

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = BASE_DIR / ".run"

DEBUG = os.environ.get("DEBUG", "") == "1"
# Random per installation, kept in .run/secret_key, unless DJANGO_SECRET_KEY is set.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or installation.secret_key(RUN_DIR)
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

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
    "jobbox",
    "academy.tenants",
    "academy.videos",
    "academy.ai",
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

if not os.environ.get("DATABASE_URL"):
    RUN_DIR.mkdir(exist_ok=True)  # the embedded default's SQLite file lives here
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{RUN_DIR / 'jobbox.sqlite3'}",
        # Persistent connections: reconnecting costs PostgreSQL ~4 ms CPU per request
        # (DESIGN.md, "What we measured").
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

# Signed-cookie sessions: reading a session costs no SQL and no Redis (DESIGN.md, invariant 1).
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = 12 * 60 * 60  # a working day; signed cookies cannot be revoked early

REDIS_URL = embedded.redis_url(RUN_DIR)

# The page's sign-in throttle (academy.login_throttle), counted in Redis. Ten wrong passwords
# in 15 minutes is more than a person mistyping; 50 per address leaves room for a school
# behind one NAT while stopping a guesser that rotates usernames.
LOGIN_FAILURES_PER_ACCOUNT = int(os.environ.get("LOGIN_FAILURES_PER_ACCOUNT", "10"))
LOGIN_FAILURES_PER_ADDRESS = int(os.environ.get("LOGIN_FAILURES_PER_ADDRESS", "50"))
LOGIN_THROTTLE_WINDOW_SECONDS = int(os.environ.get("LOGIN_THROTTLE_WINDOW_SECONDS", "900"))
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "login_throttle": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("JOBBOX_KEY_PREFIX", "") + "login-throttle",
    },
}

JOBBOX = {
    "KEY_PREFIX": os.environ.get("JOBBOX_KEY_PREFIX", ""),
    "REDIS_CLUSTER": os.environ.get("REDIS_CLUSTER", "") in ("1", "true", "yes"),
    "TENANT_RESOLVER": "academy.tenants.services.tenant_id_for_user",
    "TENANT_RESOLVER_MANY": "academy.tenants.services.tenant_ids_for_users",
    "PRINCIPAL_MODELS": ["tenants.Membership"],
    "METRICS_TOKEN": os.environ.get("METRICS_TOKEN") or None,
    "STREAM_HEARTBEAT_SECONDS": float(os.environ.get("JOBBOX_STREAM_HEARTBEAT_SECONDS", "15")),
    "STREAMS_PER_PERSON": int(os.environ.get("JOBBOX_STREAMS_PER_PERSON", "8")),
    "STREAM_RECHECK_SECONDS": float(os.environ.get("JOBBOX_STREAM_RECHECK_SECONDS", "3")),
}

# Celery: Redis broker by default (the same server), SQS or RabbitMQ by CELERY_BROKER_URL.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL
# Late acknowledgement: a job whose worker dies is delivered again, not lost.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # long jobs: a worker takes one at a time
CELERY_TASK_IGNORE_RESULT = True  # results live in the database; no result backend
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis/SQS redeliver an unacknowledged message after this long (a dead worker's job).
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT_SECONDS", "3600")),
}
# Periodic work (reapers, reconcilers) is added here by the apps that need it.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}
# Lost cache writes repaired every 30 s (README, "Staleness bound"); a run missed while the
# workers are busy expires rather than piling up.
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
MEDIA_ROOT = os.environ.get("MEDIA_ROOT") or str(RUN_DIR / "media")

# AI jobs (academy.ai.conf holds the defaults and why): upload limits, result size in Redis.
AI_JOBS: dict[str, int] = {}
# A running AI job's worker renews its lease every third of AI_LEASE_SECONDS (a heartbeat);
# the reaper, every AI_REAP_INTERVAL_SECONDS, re-queues a job whose lease ran out (its worker
# died), or fails it after AI_MAX_ATTEMPTS: 20 s + 10 s finds a dead worker within 30 s, as
# BullMQ's stalled-job check. Jobs grade in seconds, so a renewal is rare work.
AI_LEASE_SECONDS = int(os.environ.get("AI_LEASE_SECONDS", "20"))
AI_REAP_INTERVAL_SECONDS = float(os.environ.get("AI_REAP_INTERVAL_SECONDS", "10"))
AI_MAX_ATTEMPTS = int(os.environ.get("AI_MAX_ATTEMPTS", "3"))
# A PENDING job last sent longer ago than this is sent again (the send may have been lost
# after commit). Longer than a normal queue wait: a duplicate of a job another worker runs is
# left alone (its live lease), one of a PENDING job only starts it.
AI_RESEND_AFTER_SECONDS = int(os.environ.get("AI_RESEND_AFTER_SECONDS", "120"))
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
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}

# Videos (README, "Videos"): uploads and HLS output go through Django's storage API. The
# default is the local MEDIA_ROOT under .run/; S3 by configuration: install the `s3` extra
# and set DJANGO_STORAGE_BACKEND=storages.backends.s3.S3Storage plus AWS_STORAGE_BUCKET_NAME
# (credentials come from the usual AWS_* environment variables).
MEDIA_ROOT = os.environ.get("MEDIA_ROOT") or str(RUN_DIR / "media")
MEDIA_URL = "media/"
STORAGES = {
    "default": {
        "BACKEND": os.environ.get("DJANGO_STORAGE_BACKEND")
        or "django.core.files.storage.FileSystemStorage",
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
AWS_STORAGE_BUCKET_NAME = os.environ.get("AWS_STORAGE_BUCKET_NAME")
# An upload larger than this is refused before it is probed or stored (2 GiB: a long lecture
# in 1080p; raise it for longer sources).
VIDEO_MAX_UPLOAD_BYTES = int(os.environ.get("VIDEO_MAX_UPLOAD_BYTES", str(2 * 1024**3)))
# A worker holds a video this long and renews the lease every third of it while ffmpeg
# reports progress; a dead worker's video is re-queued once the lease has run out.
VIDEO_LEASE_SECONDS = int(os.environ.get("VIDEO_LEASE_SECONDS", "300"))
# How often the reaper looks for expired leases: a dead worker's video waits at most
# lease + this long before another worker picks it up.
VIDEO_REAP_INTERVAL_SECONDS = float(os.environ.get("VIDEO_REAP_INTERVAL_SECONDS", "60"))
# A video still UPLOADED this long after its transcode message was sent gets another one
# (the send may have been lost after commit; a duplicate is harmless). Longer than a normal
# wait in the queue, so a busy queue is not flooded with duplicates.
VIDEO_RESEND_AFTER_SECONDS = int(os.environ.get("VIDEO_RESEND_AFTER_SECONDS", "1800"))
# Attempts (lease expiries included) before a video ends FAILED instead of being re-queued.
VIDEO_MAX_ATTEMPTS = int(os.environ.get("VIDEO_MAX_ATTEMPTS", "3"))
# The HLS ladder, "WIDTHxHEIGHT:VIDEO_KBPS" comma-separated (360p and 720p by default).
VIDEO_HLS_LADDER = os.environ.get("VIDEO_HLS_LADDER", "640x360:800,1280x720:2800")
# x264 preset: "veryfast" trades a little size for a lot of CPU on small hosts.
VIDEO_X264_PRESET = os.environ.get("VIDEO_X264_PRESET", "veryfast")
# Input read speed as a multiple of real time (0 = as fast as the CPU allows); a positive
# value caps the CPU one transcode takes on a shared host.
VIDEO_FFMPEG_READRATE = float(os.environ.get("VIDEO_FFMPEG_READRATE", "0"))
# Threads per ffmpeg process (0 = ffmpeg decides from the core count).
VIDEO_FFMPEG_THREADS = int(os.environ.get("VIDEO_FFMPEG_THREADS", "0"))
# A transcode of one rendition that takes longer than this is killed and the video fails.
VIDEO_FFMPEG_TIMEOUT_SECONDS = int(os.environ.get("VIDEO_FFMPEG_TIMEOUT_SECONDS", "7200"))
# What one video may be, measured from its streams (academy.videos.media_limits; README,
# "Security: limits"). Four hours holds the longest lecture; 4K (3840x2160) is the largest
# frame a camera here records, and its decode fits the memory budget below; 120 frames/s is
# the fastest common capture rate.
VIDEO_MAX_DURATION_SECONDS = float(os.environ.get("VIDEO_MAX_DURATION_SECONDS", str(4 * 3600)))
VIDEO_MAX_PIXELS = int(os.environ.get("VIDEO_MAX_PIXELS", str(3840 * 2160)))
VIDEO_MAX_FRAME_RATE = float(os.environ.get("VIDEO_MAX_FRAME_RATE", "120"))
# Address space of one ffmpeg process: x264 at 720p with its threads ran in 800 MiB here; a
# 4K decode adds a few hundred MiB. Raise it with VIDEO_FFMPEG_THREADS on many-core hosts.
VIDEO_FFMPEG_MEMORY_BYTES = int(os.environ.get("VIDEO_FFMPEG_MEMORY_BYTES", str(2 * 1024**3)))
# A probe copies every packet (no decoding) and decodes two frames: a 2 GiB upload scans in
# seconds, so 30 s of CPU and 60 s of wall clock leave room on a busy host and no more.
VIDEO_PROBE_CPU_SECONDS = int(os.environ.get("VIDEO_PROBE_CPU_SECONDS", "30"))
VIDEO_PROBE_TIMEOUT_SECONDS = int(os.environ.get("VIDEO_PROBE_TIMEOUT_SECONDS", "60"))
# CPU budget of one rendition's transcode: a base for start-up plus this much per second of
# probed media (veryfast x264 at 720p uses about 0.5 CPU-s per media second; 4x is room for
# slow hosts and 1080p sources, not for a file that lies about its length).
VIDEO_FFMPEG_CPU_BASE_SECONDS = int(os.environ.get("VIDEO_FFMPEG_CPU_BASE_SECONDS", "30"))
VIDEO_FFMPEG_CPU_SECONDS_PER_MEDIA_SECOND = float(
    os.environ.get("VIDEO_FFMPEG_CPU_SECONDS_PER_MEDIA_SECOND", "4"))
CELERY_BEAT_SCHEDULE["reap-expired-video-leases"] = {
    "task": "academy.videos.tasks.reap_expired_video_leases",
    "schedule": VIDEO_REAP_INTERVAL_SECONDS,
}
