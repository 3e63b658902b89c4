"""The one table jobbox keeps: invalidations Redis has not confirmed (jobbox.pending).

Written only when something is revoked or deleted (a token, a user, a membership, a job, a
logout), never on a poll.
"""

from django.db import models


class PendingInvalidation(models.Model):
    """A revocation or deletion recorded in the transaction of the change it follows, deleted
    once Redis has applied it, replayed while Redis has not (jobbox.pending)."""

    operation = models.CharField(max_length=16)
    arguments = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "jobbox"
        db_table = "jobbox_pending_invalidation"
        ordering = ["id"]
