"""Django app config: wires the principal invalidation signals and the client reset on
settings changes (DESIGN.md, "Authentication")."""

from django.apps import AppConfig


class JobboxConfig(AppConfig):
    name = "jobbox"
    verbose_name = "Jobbox"

    def ready(self) -> None:
        from jobbox import client
        from jobbox.auth import invalidation

        invalidation.connect_invalidation_signals()
        client.connect_settings_reset()
