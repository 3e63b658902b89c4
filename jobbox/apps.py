"""Django app config: wires the principal invalidation signals, the removal of deleted jobs
from Redis and the client reset on settings changes (DESIGN.md, "Authentication")."""

from django.apps import AppConfig


class JobboxConfig(AppConfig):
    name = "jobbox"
    verbose_name = "Jobbox"

    def ready(self) -> None:
        from django.db.models import signals

        from jobbox import client, write
        from jobbox.auth import invalidation

        invalidation.connect_invalidation_signals()
        client.connect_settings_reset()
        # Every model: a tracked job's may be registered after this app is ready.
        signals.post_delete.connect(write.on_row_deleted, dispatch_uid="jobbox-tracked-delete")
