"""Requests refused before routing leave a spend row (status error, the refusal's status and code,
no cost) for an operator auditing a key; a request without a valid key leaves none, so that an
unauthenticated flood cannot write to the database."""

from __future__ import annotations

import httpx

from tests.routing.test_request_validation import CHAT


def test_each_refusal_of_a_known_key_is_a_spend_row_without_cost(gateway, make_deployment, make_key, spend_logs):
    from apps.spend.models import SpendLog

    make_deployment("validated")
    make_deployment("secret-model")
    key, raw = make_key(alias="audited", models=["validated"], rpm_limit=2)
    headers = {"Authorization": f"Bearer {raw}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as client:
        refusals = [
            (client.post("/v1/chat/completions", json={**CHAT, "temperature": 9}), "decimal_above_max_value"),
            (client.post("/v1/messages", json={"model": "validated", "messages": []}), "missing_required_parameter"),
            (client.post("/v1/chat/completions", json={**CHAT, "model": "no-such-model"}), "model_not_found"),
            (client.post("/v1/chat/completions", json={**CHAT, "model": "secret-model"}), "model_not_allowed"),
        ]
        answered = [client.post("/v1/chat/completions", json=CHAT) for _ in range(3)]
    assert [r.status_code for r, _ in refusals] == [400, 400, 404, 403]
    assert [r.status_code for r in answered][:2] == [200, 200] and answered[2].status_code == 429
    refusals.append((answered[2], "rate_limit_exceeded"))
    # A wrong key and no key: refused, and not recorded.
    assert httpx.post(gateway.url + "/v1/chat/completions", json=CHAT,
                      headers={"Authorization": "Bearer sk-wrong"}).status_code == 401
    assert httpx.post(gateway.url + "/v1/chat/completions", json=CHAT).status_code == 401

    logs = spend_logs(count=7)
    assert len(logs) == 7
    errors = [log for log in logs if log.status == SpendLog.Status.ERROR]
    assert sorted(log.error_type for log in errors) == sorted(code for _, code in refusals)
    for log in errors:
        assert log.key_id == key.id and log.cost is None and log.deployment_id is None, log.__dict__
    by_code = {log.error_type: log for log in errors}
    assert by_code["model_not_allowed"].model == "secret-model"
    assert by_code["model_not_allowed"].http_status == 403
    # A made-up model name stays out of the model column (and so out of per-model rollups).
    unknown = by_code["model_not_found"]
    assert unknown.model == "" and unknown.metadata == {"requested_model": "no-such-model"}
    assert by_code["decimal_above_max_value"].http_status == 400
    assert SpendLog.objects.filter(key_hash="").count() == 0
