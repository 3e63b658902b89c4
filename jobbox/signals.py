"""Signals a project can listen to; jobbox itself sends them and never listens.

`job_transitioned` is sent by `save_transition` inside the caller's transaction, after the
row is saved and before anything reaches Redis: a receiver that writes rows (an outbox of
notifications, an audit trail) commits or rolls back together with the transition itself.
A receiver must not talk to the network: it runs while the row is locked.
"""

from django.dispatch import Signal

# Arguments: job (the `TrackedJob`), instance (the saved row), snapshot (the `Snapshot` that
# reaches Redis after commit: its `fields` are what a poll shows), update_fields (the fields
# the caller changed: a transition that did not touch the status is no change of state).
job_transitioned = Signal()
