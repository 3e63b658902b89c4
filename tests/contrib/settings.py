"""Settings of the contrib layer's tests: the library, its Tasks framework app and Django's
own apps, nothing of the reference service. PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)."""

import os
from importlib.util import find_spec

import dj_database_url

SECRET_KEY = "contrib-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "tests.contrib.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Django 6.x ships the Tasks framework; on 5.2 the django-tasks backport is an app of its own.
TASKS_PACKAGE = "django.tasks" if find_spec("django.tasks") else "django_tasks"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rest_framework.authtoken",
    *([] if TASKS_PACKAGE == "django.tasks" else ["django_tasks"]),
    "django_tasks_db",
    "jobbox",
    "jobbox.contrib.tasks",
]
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")),
}
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# The immediate backend by default (the task runs inside `enqueue`); the database backend
# under its own alias, run by `manage.py db_worker --backend database` as a real process.
TASKS = {
    "default": {"BACKEND": f"{TASKS_PACKAGE}.backends.immediate.ImmediateBackend"},
    "database": {"BACKEND": "django_tasks_db.DatabaseBackend"},
}

JOBBOX = {
    "KEY_PREFIX": "contrib-tests:",
    # A person's tenant: the name of their first group (a stand-in for a project's own
    # memberships; the tests need nothing more).
    "TENANT_RESOLVER": "tests.contrib.tenants.tenant_of",
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["jobbox.auth.drf.CachedTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "jobbox.http.errors.exception_handler",
}
