"""The Celery app of the reference service: `celery -A academy worker`
(docs/explanation/architecture.md, "Stack").

Configuration comes from Django settings prefixed `CELERY_`; tasks are discovered in each
app's `tasks.py`. Tasks stay thin: fetch by id, call a service.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")

app = Celery("academy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
