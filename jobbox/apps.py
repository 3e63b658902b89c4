"""Django app config: wires the auth-cache invalidation signals (DESIGN.md, "Authentication")."""

from django.apps import AppConfig


class JobboxConfig(AppConfig):
    name = "jobbox"
    verbose_name = "Jobbox"

    def ready(self) -> None:
        from jobbox import auth, client

        auth.connect_invalidation_signals()
        client.connect_settings_reset()
