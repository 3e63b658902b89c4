"""The toy chores in library tests: create one, move it, read its snapshot from Redis."""

from typing import Any

from jobbox import keys
from tests.library.conftest import Person
from tests.library.toyapp import services
from tests.library.toyapp.models import Chore
from tests.redis_peek import outside_redis, snapshot_document


def new_chore(person: Person, title: str = "Dishes") -> Chore:
    return services.create_chore(team=person.team, owner_id=person.user.pk, title=title)


def doing_chore(person: Person, percent: int = 40) -> Chore:
    chore = new_chore(person)
    services.move_chore(chore.pk, Chore.Status.DOING)
    from jobbox import report_progress

    report_progress("chore", str(chore.pk), percent=percent, step_name="scrub")
    return chore


def stored_snapshot(chore_id: int) -> dict[str, Any] | None:
    raw = outside_redis().get(keys.status_key("chore", str(chore_id)))
    return snapshot_document(raw)


def forget_snapshot(chore_id: int) -> None:
    """Drop the chore's snapshot from Redis, as an expiry or an eviction would."""
    outside_redis().delete(keys.status_key("chore", str(chore_id)))
