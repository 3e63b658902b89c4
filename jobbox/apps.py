"""Django app config: wires the principal invalidation signals, the removal of deleted jobs
from Redis, the client reset on settings changes (docs/explanation/architecture.md), the repair
after a Redis outage (invariant 8) and the system checks (`jobbox.checks`)."""

from django.apps import AppConfig


class JobboxConfig(AppConfig):
    name = "jobbox"
    verbose_name = "Jobbox"

    def ready(self) -> None:
        from django.db.models import signals

        from jobbox import breaker, checks, client, failover, pending, reconcile, write
        from jobbox.auth import invalidation

        invalidation.connect_invalidation_signals()
        client.connect_settings_reset()
        checks.register_checks()
        # Every model: a tracked job's may be registered after this app is ready.
        signals.post_delete.connect(write.on_row_deleted, dispatch_uid="jobbox-tracked-delete")
        # Redis back after an outage: first the invalidations it missed, before its cached
        # principals and snapshots are trusted again; then repair what it lacks.
        breaker.on_recovered(pending.replay_after_outage)
        # Redis back after an outage (empty, or a replica that missed writes): repair now.
        breaker.on_recovered(reconcile.reconcile_after_outage)
        # A cluster failover (no outage seen, but the promoted replica may lack the last
        # writes): the same repair, over the last minute's changes.
        failover.on_primaries_changed(lambda: reconcile.reconcile_after_outage(0.0))
