"""Settings of the reference service, from the environment (DESIGN.md, "Stack").

`DATABASE_URL` (default: SQLite under .run/), `REDIS_URL` (default: the embedded Redis that
`make run` / `make test` started, see academy.embedded), `DJANGO_SECRET_KEY`, `DEBUG`.
"""

import os
from pathlib import Path

import dj_database_url

from academy import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = BASE_DIR / ".run"

DEBUG = os.environ.get("DEBUG", "") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "insecure-dev-key-set-DJANGO_SECRET_KEY"
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "jobbox",
    "academy.tenants",
    "academy.videos",
    "academy.demo",
    "academy.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The page's static files (its script, hls.js) from the app's own process, under WSGI
    # and ASGI alike: no separate web server needed to run the service.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "academy.tenants.middleware.TenantMiddleware",
]

ROOT_URLCONF = "academy.urls"
WSGI_APPLICATION = "academy.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Signed-cookie sessions: reading a session costs no SQL and no Redis (DESIGN.md, invariant 1).
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = 12 * 60 * 60  # a working day; signed cookies cannot be revoked early

REDIS_URL = embedded.redis_url(RUN_DIR)

JOBBOX = {
    "KEY_PREFIX": os.environ.get("JOBBOX_KEY_PREFIX", ""),
    "TENANT_RESOLVER": "academy.tenants.services.tenant_id_for_user",
    "PRINCIPAL_MODELS": ["tenants.Membership"],
    "METRICS_TOKEN": os.environ.get("METRICS_TOKEN") or None,
    "STREAM_HEARTBEAT_SECONDS": float(os.environ.get("JOBBOX_STREAM_HEARTBEAT_SECONDS", "15")),
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

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "jobbox.auth.CachedTokenAuthentication",
        "jobbox.auth.CachedSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

STATIC_URL = "static/"
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
