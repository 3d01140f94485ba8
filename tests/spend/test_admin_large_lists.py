"""The admin's lists of spend logs, billing events and audit rows stay fast at millions of rows: no
query counts or scans the whole table (COUNT(*) took ten seconds a page at ten million logs, and
date_hierarchy's list of years and a filter's list of providers read every row): counts stop at
apps.core.db's bound, a filter offers the values of the newest rows."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db


def whole_table_reads(queries: list[dict], table: str) -> list[str]:
    """The queries on `table` that count, or list distinct values (dates, a filter's choices), with
    no LIMIT."""
    found = []
    for query in queries:
        sql = query["sql"]
        if table not in sql:
            continue
        counts = "COUNT(" in sql.upper() and not re.search(r"\bLIMIT\b", sql, re.I)
        distinct = "DISTINCT" in sql.upper() and not re.search(r"\bLIMIT\b", sql, re.I)  # dates, a filter's values
        if counts or distinct:
            found.append(sql)
    return found


@pytest.mark.parametrize("path, table, make", [
    ("/admin/spend/spendlog/", "spend_spendlog", "spend"),
    ("/admin/billing/billingevent/", "billing_billingevent", "billing"),
    ("/admin/core/auditlog/", "core_auditlog", "audit"),
])
def test_a_list_of_many_rows_is_counted_up_to_the_bound_only(admin_client, monkeypatch, path, table, make):
    from apps.billing.models import BillingEvent
    from apps.core.models import AuditLog
    from apps.spend.models import SpendLog

    monkeypatch.setattr("apps.core.db.COUNT_BOUND", 3)
    now = datetime.now(timezone.utc)
    for index in range(5):
        when = now - timedelta(days=index)
        if make == "spend":
            SpendLog.objects.create(request_id=f"r{index}", call_type="chat_completion", model="m",
                                    status="success", start_time=when, end_time=when)
        elif make == "billing":
            BillingEvent.objects.create(transaction_id=f"t{index}", external_subscription_id="s",
                                        entity_kind="organization", entity_id="o", code="c", timestamp=when)
        else:
            AuditLog.objects.create(actor="system", via="system", action="create", object_type="teams.team",
                                    object_id=str(index))
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(path)
    assert response.status_code == 200
    assert not whole_table_reads(captured.captured_queries, table)
    if connection.vendor == "postgresql":  # unfiltered: the planner's estimate, whatever ANALYZE last saw
        from apps.core.db import table_rows_estimate

        assert response.context["cl"].result_count == max(3, table_rows_estimate(table))
    else:
        assert response.context["cl"].result_count == 3  # the bound
    # Narrowed by date, as the list filter does: still answered.
    since = (now - timedelta(days=1)).isoformat()
    field = {"spend": "start_time", "billing": "created_at", "audit": "created_at"}[make]
    assert admin_client.get(path, {f"{field}__gte": since}).status_code == 200
