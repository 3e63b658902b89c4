"""ASGI entry point: the job box's event stream (`/api/jobbox/stream`) needs it; `make run`
serves the whole service through it from one origin (docs/how-to/deployment.md). The stream
path is served by jobbox's plain ASGI app (no thread per open stream); the rest by Django.

Uploads pass `UploadGuard` first: Django's ASGI handler reads a whole body before any view runs, so
who sends it and how long it is are checked on the request's head (docs/explanation/invariants.md,
invariant 10).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")
django_application = get_asgi_application()

from academy.upload_guard import UploadGuard  # noqa: E402  (after Django is set up)
from jobbox.http.asgi import with_event_stream  # noqa: E402 - needs Django set up first

application = UploadGuard(with_event_stream(django_application))
