"""Django app config: wires the principal invalidation signals, the client reset on
settings changes (DESIGN.md, "Authentication") and the repair after a Redis outage
(invariant 8)."""

from django.apps import AppConfig


class JobboxConfig(AppConfig):
    name = "jobbox"
    verbose_name = "Jobbox"

    def ready(self) -> None:
        from jobbox import breaker, client, reconcile
        from jobbox.auth import invalidation

        invalidation.connect_invalidation_signals()
        client.connect_settings_reset()
        # Redis back after an outage (empty, or a replica that missed writes): repair now.
        breaker.on_recovered(reconcile.reconcile_after_outage)
