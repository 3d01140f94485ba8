from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.spend.models import SpendLog

pytestmark = pytest.mark.django_db


def log(days_ago: int) -> None:
    when = timezone.now() - timedelta(days=days_ago)
    SpendLog.objects.create(request_id=f"r{days_ago}", call_type="chat_completion", model="m", status="success",
                            start_time=when, end_time=when)


def test_purge_deletes_only_logs_older_than_the_retention():
    for days in (1, 89, 91, 400):
        log(days)
    out = StringIO()
    call_command("purge_spend_logs", "--older-than", "90d", "--dry-run", stdout=out)
    assert "would delete 2" in out.getvalue() and SpendLog.objects.count() == 4
    call_command("purge_spend_logs", "--older-than", "90d", stdout=out)
    assert sorted(SpendLog.objects.values_list("request_id", flat=True)) == ["r1", "r89"]


def test_a_bad_duration_is_refused():
    with pytest.raises(CommandError, match="--older-than"):
        call_command("purge_spend_logs", "--older-than", "ninety days", stdout=StringIO())
