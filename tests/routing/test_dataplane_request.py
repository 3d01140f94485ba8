"""The data plane's request (apps.routing.dataplane.DataPlaneRequest) is Django's ASGIRequest,
built faster: for any scope a server may give, every attribute a view reads comes out the same."""

from __future__ import annotations

import io

from django.core.handlers.asgi import ASGIRequest
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.routing.dataplane import DataPlaneRequest

HEADER_NAMES = st.sampled_from([
    b"host", b"authorization", b"content-type", b"content-length", b"x-stainless-lang", b"user-agent",
    b"x_a", b"x-a", b"accept-encoding", b"cookie", b"x-forwarded-for", b"x-litellm-tags",
]) | st.binary(min_size=1, max_size=12).filter(lambda name: b"\r" not in name and b"\n" not in name)
CONTENT_TYPES = st.sampled_from([
    b"application/json", b"application/json; charset=utf-8", b"application/json; charset=latin-1",
    b"application/json; charset=no-such-codec", b"text/plain;charset=UTF-8; format=flowed",
    b"multipart/form-data; boundary=abc", b"", b"APPLICATION/JSON", b"\xe9t\xe9/x",
])
VALUES = st.binary(max_size=24)


@st.composite
def scopes(draw):
    headers = draw(st.lists(st.tuples(HEADER_NAMES, VALUES), max_size=20))
    if draw(st.booleans()):
        headers.insert(draw(st.integers(0, len(headers))), (b"content-type", draw(CONTENT_TYPES)))
    scope = {
        "type": "http",
        "method": draw(st.sampled_from(["POST", "GET", "post", "Delete"])),
        "path": draw(st.sampled_from(["/v1/chat/completions", "/gw/v1/models", "/v1/files/f-1/content", "/"])),
        "headers": headers,
        "scheme": "http",
    }
    if draw(st.booleans()):
        scope["query_string"] = draw(st.sampled_from([b"", b"a=1&b=2", b"limit=5&after=x%20y", "a=1"]))
    if draw(st.booleans()):
        scope["root_path"] = draw(st.sampled_from(["", "/gw"]))
    if draw(st.booleans()):
        scope["client"] = ("127.0.0.1", draw(st.integers(1, 65535)))
    if draw(st.booleans()):
        scope["server"] = ("gateway.local", 8000)
    return scope


def _seen_by_views(request) -> dict:
    return {
        "META": request.META, "path": request.path, "path_info": request.path_info,
        "script_name": request.script_name, "method": request.method, "content_type": request.content_type,
        "content_params": request.content_params, "encoding": request.encoding, "GET": request.GET.lists(),
        "headers": dict(request.headers), "body": request.body, "scheme": request.scheme,
        "resolver_match": request.resolver_match,
    }


@settings(max_examples=300, deadline=None)
@given(scope=scopes(), body=st.binary(max_size=40))
def test_every_attribute_a_view_reads_is_as_asgirequests(scope, body):
    expected = ASGIRequest(scope, io.BytesIO(body))
    expected._body = body
    for _ in range(2):  # the first time fills the tables, the second reads them
        request = DataPlaneRequest(scope, body)
        seen = _seen_by_views(request)
        wanted = _seen_by_views(expected)
        seen["GET"], wanted["GET"] = list(seen["GET"]), list(wanted["GET"])
        assert seen == wanted
        assert request.read() == body


def test_with_a_forced_script_name():
    scope = {"type": "http", "method": "POST", "path": "/gw/v1/models", "headers": [], "root_path": ""}
    with override_settings(FORCE_SCRIPT_NAME="/gw"):
        assert DataPlaneRequest(scope, b"").path_info == ASGIRequest(scope, io.BytesIO(b"")).path_info == "/v1/models"


def test_one_requests_content_params_are_its_own():
    scope = {"type": "http", "method": "POST", "path": "/v1/x", "headers": [(b"content-type", b"text/plain; a=1")]}
    first = DataPlaneRequest(scope, b"")
    first.content_params["a"] = "changed"
    assert DataPlaneRequest(scope, b"").content_params == {"a": "1"}


def test_made_up_header_names_do_not_grow_the_tables_past_their_bound():
    from apps.routing import dataplane

    for index in range(2000):
        name = b"x-made-up-%d" % index
        request = DataPlaneRequest({"type": "http", "method": "POST", "path": "/v1/x", "headers": [
            (name, b"1"), (b"content-type", b"text/plain; n=%d" % index)]}, b"")
        assert request.META["HTTP_X_MADE_UP_%d" % index] == "1" and request.content_params == {"n": str(index)}
    long_name = b"x-" + b"n" * 4000
    long_type = b"text/plain; a=" + b"v" * 4000
    request = DataPlaneRequest({"type": "http", "method": "POST", "path": "/v1/x", "headers": [
        (long_name, b"1"), (b"content-type", long_type)]}, b"")
    assert request.META["HTTP_X_" + "N" * 4000] == "1" and request.content_params == {"a": "v" * 4000}
    assert len(dataplane._META_NAMES) <= dataplane._TABLE_LIMIT
    assert len(dataplane._CONTENT_TYPES) <= dataplane._TABLE_LIMIT
    assert all(len(name) <= dataplane._KEPT_LENGTH for name in dataplane._META_NAMES)
    assert all(len(value) <= dataplane._KEPT_LENGTH for value in dataplane._CONTENT_TYPES)
