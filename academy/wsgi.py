"""WSGI entry point: the lean sync path that serves polls (docs/explanation/architecture.md, "What
we measured")."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")
application = get_wsgi_application()
