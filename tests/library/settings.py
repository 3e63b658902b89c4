"""Django settings for the library's own tests: jobbox in a tiny project of its own.

Nothing of the reference service is installed; one toy app (`tests.library.toyapp`) tracks
one toy model, as any project adopting jobbox would. Run with
`pytest tests/library --ds=tests.library.settings` (pytest-django takes one settings module
per invocation). PostgreSQL from DATABASE_URL (SQLite in memory without it), Redis from
REDIS_URL; the test database gets a name of its own, so a service-layer run can go at once.
"""

import os

import dj_database_url

SECRET_KEY = "jobbox-library-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "tests.library.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rest_framework.authtoken",
    "jobbox",
    "tests.library.toyapp",
]
# Token authentication only (no sessions): the smallest project that serves jobbox's views.
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]

DATABASES = {"default": dj_database_url.parse(
    os.environ.get("DATABASE_URL") or "sqlite://:memory:", conn_max_age=0)}
DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_library"}

# Signed-cookie sessions read no store: the stream and the views stay free of SQL.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
JOBBOX = {
    "REDIS_URL": REDIS_URL,
    "TENANT_RESOLVER": "tests.library.toyapp.tracking.team_of",
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["jobbox.auth.drf.CachedTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "jobbox.http.errors.exception_handler",
}
