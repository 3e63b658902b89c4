"""The toy project's writes, as the library asks: transitions on the locked row."""

from django.db import transaction

from jobbox import publish_on_commit, save_transition
from tests.library.toyapp.models import Chore


@transaction.atomic
def create_chore(*, team: int, owner_id: int, title: str = "Dishes") -> Chore:
    chore = Chore.objects.create(team=team, owner_id=owner_id, title=title)
    publish_on_commit(chore)
    return chore


@transaction.atomic
def move_chore(chore_id: int, status: str, note: str = "") -> Chore:
    chore = Chore.objects.select_for_update().get(pk=chore_id)
    chore.status = status
    chore.note = note
    save_transition(chore, update_fields=["status", "note"])
    return chore
