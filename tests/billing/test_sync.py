"""manage.py lago_sync_customers: the billed entities' customers and subscriptions in Lago."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = pytest.mark.django_db(transaction=True)


def sync(*args) -> str:
    out = StringIO()
    call_command("lago_sync_customers", *args, stdout=out)
    return out.getvalue()


def test_creates_then_updates_customers_and_subscriptions(billing, billed_org, settings):
    from apps.teams.services import organization_create

    organization_create(name="Unbilled")  # no Lago ids: left alone
    settings.LAGO_PLAN_CODE = "pro"
    dry = sync("--dry-run")
    assert "customer cust_acme: would be created" in dry and "subscription sub_acme: would be created" in dry
    assert not billing.customers and not billing.subscriptions
    text = sync()
    assert "customer cust_acme: created for organization Acme" in text
    assert "subscription sub_acme: created on plan pro" in text
    assert billing.customers["cust_acme"]["name"] == "Acme"
    assert billing.subscriptions["sub_acme"]["external_customer_id"] == "cust_acme"
    assert billing.subscriptions["sub_acme"]["plan_code"] == "pro"
    billed_org.name = "Acme Corp"
    billed_org.save()
    text = sync()
    assert (
        "customer cust_acme: updated" in text and "subscription sub_acme: exists (plan pro, active)" in text
    )
    assert billing.customers["cust_acme"]["name"] == "Acme Corp"
    assert "Unbilled" not in text


def test_a_missing_subscription_without_a_plan_is_reported(billing, billed_org, settings):
    settings.LAGO_PLAN_CODE = ""
    out = StringIO()
    with pytest.raises(CommandError, match="1 subscription"):
        call_command("lago_sync_customers", stdout=out)
    assert "set LAGO_PLAN_CODE" in out.getvalue()
    assert "cust_acme" in billing.customers and not billing.subscriptions


def test_lago_down_is_an_error(billing, billed_org, settings):
    from tests.fakes.server import free_socket

    with free_socket() as sock:
        settings.LAGO_API_BASE = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(CommandError, match="Lago"):
        sync()


def test_the_api_key_is_never_printed(billing, billed_org, settings, capsys):
    settings.LAGO_API_KEY = "wrong-secret-key"
    with pytest.raises(CommandError) as failed:
        sync()
    assert "401" in str(failed.value) and "wrong-secret-key" not in str(failed.value)
    assert "wrong-secret-key" not in capsys.readouterr().out
