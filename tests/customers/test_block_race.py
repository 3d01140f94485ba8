"""Blocking an end user the spend writer creates at the same moment blocks that row, not a 400."""

from apps.customers import selectors, services
from apps.customers.models import EndUser


def test_blocking_an_end_user_made_meanwhile_blocks_that_row(db, monkeypatch):
    from apps.teams.services import organization_create

    organization = organization_create(name="Acme")
    # The spend writer's insert lands after the block looked the end user up (and found nothing).
    EndUser.objects.bulk_create([EndUser(organization=organization, user_id="mallory")])
    monkeypatch.setattr(selectors, "end_users_get", lambda **kwargs: [])
    [blocked] = services.end_users_block(organization=organization, user_ids=["mallory"])
    assert blocked.pk is not None and EndUser.objects.get(user_id="mallory").blocked is True
