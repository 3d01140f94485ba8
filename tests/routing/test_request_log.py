"""One structured log line per /v1 request (GATEWAY_REQUEST_LOG), JSON with GATEWAY_LOG_FORMAT=json:
what happened, never what was said, nor the key."""

from __future__ import annotations

import json
import logging

import openai
import pytest


def request_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "gateway.requests"]


def test_each_request_logs_one_line_with_its_facts_and_no_content(gateway, openai_client, make_deployment, make_key,
                                                                 settings, caplog):
    from conftest import wait_for

    settings.GATEWAY_REQUEST_LOG = True
    caplog.set_level(logging.INFO, logger="gateway.requests")
    make_deployment("logged", upstream_model="gpt-test")
    make_deployment("log-broken", upstream_model="error-503")
    key, raw_key = make_key(alias="reporting-job")
    client = openai_client(raw_key)
    client.chat.completions.create(model="logged", messages=[{"role": "user", "content": "a secret question"}])
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="log-broken", messages=[{"role": "user", "content": "hi"}])
    records = wait_for(lambda: len(request_records(caplog)) >= 2 and request_records(caplog))
    ok, failed = (record.request for record in records[:2])
    assert (ok["model"], ok["status"], ok["http_status"], ok["key_alias"]) == ("logged", "success", 200, "reporting-job")
    assert ok["key"] == key.token_hash[:8] and ok["prompt_tokens"] == 11 and ok["completion_tokens"] == 7
    assert ok["cost"] and ok["latency_ms"] >= ok["upstream_ms"] > 0 and ok["provider"] == "openai"
    assert (failed["status"], failed["http_status"], failed["model"]) == ("error", 503, "log-broken")
    text = json.dumps([record.request for record in records]) + " ".join(r.getMessage() for r in records)
    assert "secret question" not in text and raw_key not in text


def test_off_by_default(gateway, openai_client, make_deployment, caplog):
    caplog.set_level(logging.INFO, logger="gateway.requests")
    make_deployment("quiet-log", upstream_model="gpt-test")
    openai_client().chat.completions.create(model="quiet-log", messages=[{"role": "user", "content": "hi"}])
    assert request_records(caplog) == []


def test_the_json_format_is_one_object_a_line_with_the_fields_and_the_traceback():
    from apps.core.logs import JsonFormatter

    try:
        raise ValueError("broken")
    except ValueError:
        import sys

        record = logging.getLogger("gateway.requests").makeRecord(
            "gateway.requests", logging.INFO, __file__, 1, "chat_completion %s", ("gpt",), sys.exc_info(),
            extra={"request": {"request_id": "r1", "latency_ms": 12.5}})
    line = JsonFormatter().format(record)
    assert "\n" not in line  # one line: the traceback's newlines are escaped in the JSON
    payload = json.loads(line)
    assert (payload["message"], payload["level"], payload["logger"]) == ("chat_completion gpt", "INFO",
                                                                         "gateway.requests")
    assert payload["request"] == {"request_id": "r1", "latency_ms": 12.5}
    assert "ValueError: broken" in payload["exception"]
