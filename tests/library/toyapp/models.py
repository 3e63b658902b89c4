"""A chore: TODO → DOING → DONE / DROPPED, owned by a person, in a team (the tenant)."""

from django.conf import settings
from django.db import models


class Seat(models.Model):
    """Which team a person acts in: the toy project's tenant of a user."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    team = models.PositiveIntegerField()


class Chore(models.Model):
    class Status(models.TextChoices):
        TODO = "TODO"
        DOING = "DOING"
        DONE = "DONE"
        DROPPED = "DROPPED"

    team = models.PositiveIntegerField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    title = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TODO)
    note = models.TextField(blank=True, default="")
    # Bumped by every transition (jobbox keeps the newest in Redis).
    version = models.PositiveBigIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
