"""What every HTTP request meets first, on both planes (gateway_project.asgi): a request id on
every answer, and request bodies read with a size limit.

- Every answer carries `x-request-id`, errors included; the data plane's spend log of a request
  has the same id. The id is always the gateway's own: a client's is never trusted (spend logs
  are idempotent on it, so a chosen id could hide a request's spend).
- A body declared larger than the limit is refused with 413 before a byte of it is read, and a
  chunked one as soon as it passes the limit; the connection is then closed.
"""

from __future__ import annotations

import os
import threading
from itertools import chain

import orjson

from apps.core.errors import GatewayError

REQUEST_ID_SCOPE_KEY = "gateway.request_id"
_REQUEST_ID_HEADER = b"x-request-id"


class PlainHeadersMixin:
    """For an HttpResponse (or a streaming one) that carries many headers the gateway wrote
    itself: `plain_headers` skip Django's per-header checking and re-encoding (about a
    microsecond each; a /v1 answer carries 15 to 20), and are sent after Django's own.

    A value that is not plain ASCII, or a name Django's headers already hold, goes through
    Django's checks as before. Any reader other than items() (response[...], .get(),
    .headers) first moves the plain headers into Django's, so it sees what it always saw.
    """

    def __init__(self, *args, plain_headers: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        plain = {}
        if plain_headers:
            django_headers = self._django_headers
            taken = {name.lower() for name in django_headers}  # Content-Type, mostly
            # All values checked at once (the common case: all plain), else one by one.
            values = "".join(plain_headers.values())
            if values.isascii() and "\n" not in values and "\r" not in values \
                    and taken.isdisjoint(map(str.lower, plain_headers)):
                plain = dict(plain_headers)
            else:
                for name, value in plain_headers.items():
                    if value.isascii() and "\n" not in value and "\r" not in value \
                            and name.lower() not in taken:
                        plain[name] = value
                    else:
                        django_headers[name] = value  # checked (and MIME-encoded) as Django does
        self._plain_headers = plain

    @property
    def headers(self):
        plain = self.__dict__.get("_plain_headers")
        if plain:
            self._plain_headers = {}
            for name, value in plain.items():
                self._django_headers[name] = value
        return self._django_headers

    @headers.setter
    def headers(self, value) -> None:
        self._django_headers = value

    def items(self):
        return chain(self._django_headers.items(), self._plain_headers.items())


class ClientGone(Exception):
    pass


class BodyTooLarge(Exception):
    pass


_random_lock = threading.Lock()
_random_pool = b""
_random_at = 0


def _random_pool_drop() -> None:
    global _random_pool, _random_at
    _random_pool, _random_at = b"", 0


os.register_at_fork(after_in_child=_random_pool_drop)  # a forked worker never reuses its parent's bytes


def new_request_id() -> str:
    """A random (version 4) UUID as 32 hex digits, as `uuid.uuid4().hex` gives, in a third of its
    time: the UUID object, not the random bytes, was most of its ~4 us a request. The bytes come
    from os.urandom 4 KiB at a time: a system call per request showed in profiles under load."""
    global _random_pool, _random_at
    with _random_lock:
        at = _random_at
        if at >= len(_random_pool):
            _random_pool, at = os.urandom(4096), 0
        _random_at = at + 16
        raw = bytearray(_random_pool[at:at + 16])
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    return raw.hex()


def request_id_of(scope) -> str:
    return scope.get(REQUEST_ID_SCOPE_KEY) or new_request_id()


def with_request_id(scope, send):
    """Give the request an id (in its scope) and a `send` that puts it on the answer."""
    request_id = new_request_id()
    scope[REQUEST_ID_SCOPE_KEY] = request_id
    header = (_REQUEST_ID_HEADER, request_id.encode())

    async def send_with_request_id(message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers") or []
            if not any(name.lower() == _REQUEST_ID_HEADER for name, _ in headers):
                message = {**message, "headers": [*headers, header]}
        await send(message)

    return send_with_request_id


def declared_length(scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def read_body(receive, limit: int) -> bytes:
    """The whole request body; BodyTooLarge past `limit` bytes (declared or sent), ClientGone if
    the client left first."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        body = message.get("body", b"")
        if body:
            size += len(body)
            if size > limit:
                raise BodyTooLarge
            chunks.append(body)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_error(send, error: GatewayError, *, close: bool = False) -> None:
    """An OpenAI-shaped error straight onto the wire (before any framework is involved)."""
    body = orjson.dumps(error.body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in error.headers.items()]
    if close:  # the rest of the body is never read: do not keep the connection for it
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def body_too_large(limit: int) -> GatewayError:
    return GatewayError(f"The request body is larger than {limit} bytes.", status=413, code="request_too_large")


class BodyLimit:
    """An ASGI wrapper reading the body (at most `limit` bytes) before the app does: the control
    plane's, whose body Django would otherwise spool to disk whatever its size."""

    def __init__(self, app, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        length = declared_length(scope)
        if length is not None and length > self.limit:
            await send_error(send, body_too_large(self.limit), close=True)
            return
        try:
            body = await read_body(receive, self.limit)
        except ClientGone:
            return
        except BodyTooLarge:
            await send_error(send, body_too_large(self.limit), close=True)
            return
        delivered = False

        async def receive_read_body():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only the disconnect

        await self.app(scope, receive_read_body, send)
