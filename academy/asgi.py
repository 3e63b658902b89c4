"""ASGI entry point: the job box's event stream (`/api/jobbox/stream`) needs it; `make run`
serves the whole service through it from one origin (README, "Job box: serving")."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")
application = get_asgi_application()
