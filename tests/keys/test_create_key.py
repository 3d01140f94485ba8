import hashlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.keys.models import VirtualKey

pytestmark = pytest.mark.django_db


def test_create_key_prints_the_key_once_and_stores_its_hash(team, django_user_model):
    user = django_user_model.objects.create_user("alice")
    out, err = StringIO(), StringIO()
    call_command(
        "create_key",
        "--alias", "ci", "--models", "gpt-a,gpt-b", "--max-budget", "12.5",
        "--team", "research", "--user", "alice", "--expires", "30d",
        stdout=out, stderr=err,
    )
    raw_key = out.getvalue().strip()
    assert raw_key.startswith("sk-")
    assert "shown only this once" in err.getvalue()
    key = VirtualKey.objects.get()
    assert key.token_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert (key.alias, key.models, str(key.max_budget)) == ("ci", ["gpt-a", "gpt-b"], "12.500000")
    assert (key.team, key.organization, key.user) == (team, team.organization, user)
    assert key.expires_at is not None and not key.is_expired


@pytest.mark.parametrize(
    "args, message",
    [
        (["--team", "nope"], "--team"),
        (["--organization", "nope"], "--organization"),
        (["--user", "nobody"], "--user"),
        (["--max-budget", "lots"], "--max-budget"),
        (["--expires", "soon"], "--expires"),
    ],
)
def test_create_key_rejects_bad_options_and_creates_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_key", *args, stdout=StringIO(), stderr=StringIO())
    assert not VirtualKey.objects.exists()
