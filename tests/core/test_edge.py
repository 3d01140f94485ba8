"""What every request meets first (apps.core.edge, gateway_project.asgi): an x-request-id on every
answer, body size limits on both planes before a byte is parsed, JSON errors off the admin."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from django.conf import settings

from conftest import MASTER_KEY
from tests.management.conftest import assert_error

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [{"role": "user", "content": "hi"}]


def _ids(responses) -> list[str]:
    return [r.headers.get("x-request-id") for r in responses]


def test_every_answer_has_its_own_request_id(gateway, make_deployment, spend_logs, settings):
    settings.LAGO_API_BASE = None
    make_deployment("gpt-test")
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    answers = [
        httpx.post(gateway.url + "/v1/chat/completions", json={"model": "gpt-test", "messages": MESSAGES},
                   headers=auth),
        httpx.post(gateway.url + "/v1/chat/completions", json={"model": "gpt-test"}, headers=auth),  # 400
        httpx.post(gateway.url + "/v1/chat/completions", json={}),  # 401
        httpx.get(gateway.url + "/v1/nothing-here", headers=auth),  # 404
        httpx.get(gateway.url + "/key/list"),  # the control plane's 401
        httpx.get(gateway.url + "/no/such/route"),  # the control plane's 404
        httpx.get(gateway.url + "/admin/login/"),
        httpx.post(gateway.url + "/billing/lago/webhook", content=b"{}"),
    ]
    assert [r.status_code for r in answers] == [200, 400, 401, 404, 401, 404, 200, 404]
    ids = _ids(answers)
    assert all(ids) and len(set(ids)) == len(ids)
    # A client's own x-request-id is not taken (spend logs are idempotent on the id).
    chosen = httpx.post(gateway.url + "/v1/chat/completions", json={"model": "gpt-test", "messages": MESSAGES},
                        headers={**auth, "x-request-id": ids[0]})
    assert chosen.headers["x-request-id"] != ids[0]
    # Three rows: the two answers and the 400 (a refusal before routing is logged too).
    assert {log.request_id for log in spend_logs(3)} >= {ids[0], chosen.headers["x-request-id"]}


def test_request_ids_are_random_version_4_uuids_as_hex():
    import uuid

    from apps.core.edge import new_request_id

    ids = [new_request_id() for _ in range(2000)]  # several pools' worth
    assert len(set(ids)) == len(ids)
    for request_id in ids:
        parsed = uuid.UUID(request_id)
        assert parsed.hex == request_id and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_request_ids_made_by_threads_at_once_and_in_a_forked_child_are_all_different():
    import os
    import threading

    from apps.core.edge import new_request_id

    new_request_id()  # the pool holds bytes a child could reuse
    made: list[list[str]] = [[] for _ in range(8)]

    def make(into: list[str]) -> None:
        for _ in range(3000):
            into.append(new_request_id())

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [request_id for into in made for request_id in into]
    assert len(set(ids)) == len(ids) == 24000

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first ids, to the parent
        os.write(write, "".join(new_request_id() for _ in range(4)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode()
    os.close(read)
    child_ids = {child[i:i + 32] for i in range(0, len(child), 32)}
    parent_ids = {new_request_id() for _ in range(4)}
    assert len(child_ids) == 4 and not child_ids & parent_ids


def test_unknown_control_plane_routes_are_json_but_the_admin_keeps_its_pages(gateway):
    error = httpx.get(gateway.url + "/no/such/route")
    assert error.headers["content-type"] == "application/json"
    assert error.json()["error"]["code"] == "unknown_route"
    assert httpx.get(gateway.url + "/admin/nothing/", follow_redirects=False).status_code in (302, 404)


def test_a_40_mb_management_body_is_a_413(gateway, make_key):
    key, _ = make_key(alias="target")
    big = json.dumps({"key": key.token_hash, "metadata": {"x": "y" * (40 * 1024 * 1024)}})
    response = httpx.post(gateway.url + "/key/update", content=big, timeout=30,
                          headers={"Authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"})
    assert_error(response, 413, code="request_too_large")
    key.refresh_from_db()
    assert key.metadata == {}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/key/update"])
def test_a_client_that_sends_its_whole_too_large_body_first_still_reads_the_413(gateway, path):
    """As most clients do (httpx, the openai SDK): the body is all sent before the answer is read.
    The server must not reset the connection under the client's writes (a lingering close)."""
    limit = settings.GATEWAY_MAX_BODY_BYTES if path.startswith("/v1") else settings.GATEWAY_MAX_CONTROL_BODY_BYTES
    body = b"x" * (limit + 1)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Authorization: Bearer {MASTER_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        time.sleep(0.2)  # the 413 is sent and the server has closed its side before the body comes
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code":"request_too_large"' in answer.replace(b" ", b"")


def test_a_chunked_management_body_past_the_limit_is_a_413(gateway):
    def chunks():
        for _ in range(40):
            yield b"x" * (128 * 1024)

    response = httpx.post(gateway.url + "/key/generate", content=chunks(), timeout=30,
                          headers={"Authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/key/update"])
def test_a_body_declared_too_large_is_refused_without_waiting_for_it(gateway, path):
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {50 * 1024 * 1024}\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in answer.lower()


def test_nul_characters_in_a_management_json_field_are_a_400_naming_it(gateway):
    response = httpx.post(gateway.url + "/key/generate", json={"metadata": {"a": "b\u0000"}},
                          headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert_error(response, 400, param="metadata")


# --- PlainHeadersMixin: the gateway's own headers without Django's per-header checks ------------


def _plain_response(**plain):
    from django.http import HttpResponse

    from apps.core.edge import PlainHeadersMixin

    class Response(PlainHeadersMixin, HttpResponse):
        pass

    return Response(b"{}", content_type="application/json", plain_headers=plain)


def test_plain_headers_go_out_after_djangos_and_every_reader_sees_them():
    response = _plain_response(**{"x-request-id": "abc", "x-litellm-model-group": "gpt"})
    assert list(response.items()) == [("Content-Type", "application/json"), ("x-request-id", "abc"),
                                      ("x-litellm-model-group", "gpt")]
    assert response["X-Request-Id"] == "abc" and response.has_header("x-litellm-model-group")
    assert list(response.items())[-1] == ("x-litellm-model-group", "gpt")  # still there, once


def test_a_value_that_is_not_plain_ascii_goes_through_djangos_checks():
    from django.http.response import BadHeaderError

    latin = _plain_response(**{"x-litellm-model-group": "modèle"})
    assert dict(latin.items())["x-litellm-model-group"].encode("latin-1")  # sendable as Django sends it
    encoded = _plain_response(**{"x-litellm-model-group": "模型"})
    assert dict(encoded.items())["x-litellm-model-group"].startswith("=?utf-8?")  # MIME-encoded, as Django does
    with pytest.raises(BadHeaderError):
        _plain_response(**{"x-evil": "a\r\nSet-Cookie: x=1"})


def test_one_header_that_is_not_plain_leaves_the_others_plain():
    response = _plain_response(**{"x-a": "1", "x-b": "模型", "Content-Type": "text/plain", "x-c": "3"})
    items = dict(response.items())
    assert items["x-a"] == "1" and items["x-c"] == "3" and items["x-b"].startswith("=?utf-8?")
    assert [name.lower() for name, _ in response.items()].count("content-type") == 1
    assert response._plain_headers == {"x-a": "1", "x-c": "3"}  # only the plain ones skip Django's checks


def test_a_plain_header_never_doubles_one_django_holds():
    response = _plain_response(**{"content-type": "text/plain"})
    assert [name.lower() for name, _ in response.items()].count("content-type") == 1
    assert response["Content-Type"] == "text/plain"
