"""manage.py generate_spend_logs: a bounded synthetic data set for capacity tests."""

import io

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_writes_the_logs_asked_for_and_the_rollups_see_them():
    from apps.spend.models import DailySpend, DailyTagSpend, SpendLog
    from apps.spend.rollups import daily_spend_rebuild, utc_today

    out = io.StringIO()
    call_command("generate_spend_logs", count=3000, days=2, organizations=2, teams_per_organization=2,
                 keys_per_team=2, stdout=out)
    assert "3,000 spend logs written for 8 keys" in out.getvalue()
    assert SpendLog.objects.count() == 3000
    assert SpendLog.objects.values("key_id").distinct().count() == 8
    assert SpendLog.objects.filter(status="error").exists() and SpendLog.objects.filter(status="success").exists()

    from datetime import timedelta

    daily_spend_rebuild(since=utc_today() - timedelta(days=2), force=True)
    assert sum(DailySpend.objects.values_list("requests", flat=True)) == 3000
    assert sum(row.requests for row in DailyTagSpend.objects.all()) == 3000  # one tag each


def test_it_refuses_a_database_with_logs_and_a_count_out_of_bounds():
    call_command("generate_spend_logs", count=10, organizations=1, teams_per_organization=1, keys_per_team=1,
                 stdout=io.StringIO())
    with pytest.raises(CommandError, match="already holds spend logs"):
        call_command("generate_spend_logs", count=10, stdout=io.StringIO())
    with pytest.raises(CommandError, match="between 1 and"):
        call_command("generate_spend_logs", count=0, append=True, stdout=io.StringIO())
    call_command("generate_spend_logs", count=10, append=True, organizations=1, teams_per_organization=1,
                 keys_per_team=1, stdout=io.StringIO())
