"""Django app config: wires the principal invalidation signals, the client reset on settings
changes (DESIGN.md, "Authentication") and the system checks (`jobbox.checks`)."""

from django.apps import AppConfig


class JobboxConfig(AppConfig):
    name = "jobbox"
    verbose_name = "Jobbox"

    def ready(self) -> None:
        from jobbox import checks, client
        from jobbox.auth import invalidation

        invalidation.connect_invalidation_signals()
        client.connect_settings_reset()
        checks.register_checks()
