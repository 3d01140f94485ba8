"""The lean HTTP/1.1 client for whole upstream answers (apps.providers.http1), against raw servers on
loopback: every framing an upstream may use, connection reuse, and every way a call can fail."""

from __future__ import annotations

import asyncio
import contextlib
import gzip

import aiohttp
import pytest

from apps.providers.http1 import LeanHttpClient, UpstreamCut

BODY = b'{"ok": true}'


@contextlib.asynccontextmanager
async def raw_server(answer):
    """A server whose every request (read up to its body) gets `answer(request_bytes, writer)`;
    yields (url, state) where state counts connections and keeps the requests."""
    state = {"connections": 0, "open": 0, "max_open": 0, "requests": []}

    async def handle(reader, writer):
        state["connections"] += 1
        state["open"] += 1
        state["max_open"] = max(state["max_open"], state["open"])
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                state["requests"].append(head + body)
                if await answer(head + body, writer) is False:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            state["open"] -= 1
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions?x=1", state
    finally:
        server.close()


def with_length(body=BODY, extra=b""):
    async def answer(request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
                     % (extra, len(body), body))
    return answer


def post(client, url, *, total=5.0, headers=None, body=b'{"model": "m"}'):
    return client.post(url, headers or {"Authorization": "Bearer sk-test"}, body, total=total, connect=2.0)


def test_a_request_goes_out_as_one_plain_http11_post_and_connections_are_reused():
    async def main():
        async with raw_server(with_length()) as (url, state):
            client = LeanHttpClient(limit=10)
            for _ in range(3):
                response = await post(client, url)
                assert (response.status, await response.read()) == (200, BODY)
                assert response.headers["content-type"] == "application/json"
            assert state["connections"] == 1
            head = state["requests"][0].split(b"\r\n")
            assert head[0] == b"POST /v1/chat/completions?x=1 HTTP/1.1"
            assert b"Authorization: Bearer sk-test" in head and b"Content-Length: 14" in head
            assert any(line.startswith(b"Host: 127.0.0.1:") for line in head)
            client.close()

    asyncio.run(main())


def test_chunked_and_until_close_answers_are_read_whole():
    async def chunked(request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\n{\"ok\"\r\n7\r\n: true}\r\n0\r\n\r\n")

    async def until_close(request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BODY)
        await writer.drain()
        return False

    async def main():
        client = LeanHttpClient(limit=10)
        for answer in (chunked, until_close):
            async with raw_server(answer) as (url, state):
                for _ in range(2):
                    response = await post(client, url)
                    assert await response.read() == BODY
                expected = 1 if answer is chunked else 2  # a closed connection is not reused
                assert state["connections"] == expected
        client.close()

    asyncio.run(main())


def test_an_interim_100_and_a_gzip_answer():
    packed = gzip.compress(BODY)

    async def answer(request, writer):
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(packed), packed))

    async def main():
        async with raw_server(answer) as (url, _):
            client = LeanHttpClient(limit=10)
            response = await post(client, url)
            assert (response.status, await response.read()) == (200, BODY)
            client.close()

    asyncio.run(main())


def test_an_error_status_is_an_answer_with_its_headers():
    error = b'{"error": {"message": "slow down"}}'

    async def too_many(request, writer):
        writer.write(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(error), error))

    async def main():
        async with raw_server(too_many) as (url, _):
            client = LeanHttpClient(limit=10)
            response = await post(client, url)
            assert (response.status, response.headers["retry-after"], await response.read()) == (429, "3", error)
            client.close()

    asyncio.run(main())


def test_a_cut_before_the_head_is_an_upstream_cut_and_after_it_a_read_error():
    async def hang_up(request, writer):
        return False

    async def half(request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial")
        await writer.drain()
        return False

    async def main():
        client = LeanHttpClient(limit=10)
        async with raw_server(hang_up) as (url, state):
            with pytest.raises(UpstreamCut):
                await post(client, url)
            assert len(state["requests"]) == 1  # a new connection's cut is not tried again
        async with raw_server(half) as (url, _):
            response = await post(client, url)
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        client.close()

    asyncio.run(main())


def test_timeouts_before_and_after_the_head():
    async def silent(request, writer):
        await asyncio.sleep(10)

    async def head_only(request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        await asyncio.sleep(10)

    async def main():
        client = LeanHttpClient(limit=10)
        async with raw_server(silent) as (url, _):
            with pytest.raises(asyncio.TimeoutError):
                await post(client, url, total=0.2)
        async with raw_server(head_only) as (url, _):
            response = await post(client, url, total=0.2)
            with pytest.raises(asyncio.TimeoutError):
                await response.read()
        client.close()

    asyncio.run(main())


def test_calls_on_a_kept_connection_make_no_timer_after_the_first(monkeypatch):
    """Taking a kept connection does not wait, so it is not timed, and the answer's wait uses the
    connection's one timer (set again when it fires early): a timeout made and cancelled per wait
    cost about 4 us of the request path's CPU each. A new connection's connect is timed."""
    from apps.providers import http1

    made = []
    real_timeout_at = asyncio.timeout_at

    def counting_timeout_at(when):
        made.append(when)
        return real_timeout_at(when)

    monkeypatch.setattr(http1.asyncio, "timeout_at", counting_timeout_at)
    timers = []

    async def main():
        loop = asyncio.get_running_loop()
        real_call_at = loop.call_at

        def counting_call_at(when, callback, *args, **kwargs):
            if isinstance(getattr(callback, "__self__", None), http1._Connection):
                timers.append(when)
            return real_call_at(when, callback, *args, **kwargs)

        loop.call_at = counting_call_at
        client = LeanHttpClient(limit=10)
        async with raw_server(with_length()) as (url, state):
            for _ in range(3):
                assert (await post(client, url)).status == 200
            assert state["connections"] == 1
        client.close()

    asyncio.run(main())
    assert len(made) == 1  # the new connection's connect
    assert len(timers) == 1  # the connection's timer, made once: the later calls' deadlines are later


def test_an_answer_that_never_comes_times_out_at_its_deadline_on_a_kept_connection():
    calls = {"n": 0}

    async def first_answers_then_silence(request, writer):
        calls["n"] += 1
        if calls["n"] == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY))
        # the second request is never answered

    async def main():
        client = LeanHttpClient(limit=10)
        async with raw_server(first_answers_then_silence) as (url, state):
            assert (await client.post(url, {}, b"{}", total=30.0, connect=5.0)).status == 200
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(TimeoutError):
                await client.post(url, {}, b"{}", total=0.3, connect=5.0)
            # The first call's timer (30 s) was replaced by the shorter limit, not waited out.
            assert 0.25 < loop.time() - started < 2.0
            assert state["connections"] == 1
        client.close()

    asyncio.run(main())


def test_a_cancelled_call_closes_its_connection_instead_of_reusing_it():
    async def slow(request, writer):
        await asyncio.sleep(0.3)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY))

    async def main():
        async with raw_server(slow) as (url, state):
            client = LeanHttpClient(limit=10)
            call = asyncio.ensure_future(post(client, url))
            await asyncio.sleep(0.1)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            response = await post(client, url)  # a new connection: the old one's answer is not read as this one's
            assert await response.read() == BODY
            assert state["connections"] == 2
            await asyncio.sleep(0.1)
            assert state["open"] == 1  # the cancelled call's connection is closed, the new one kept
            client.close()

    asyncio.run(main())


def test_the_connection_limit_holds_and_an_idle_connection_closed_by_the_server_is_not_used():
    async def slow(request, writer):
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY))
        return False  # closes after each answer, as a server with a short keep-alive does

    async def main():
        async with raw_server(slow) as (url, state):
            client = LeanHttpClient(limit=2)
            answers = await asyncio.gather(*(post(client, url) for _ in range(6)))
            assert [a.status for a in answers] == [200] * 6
            assert state["max_open"] <= 2
            assert state["connections"] >= 6  # none was used after the server closed it
            await asyncio.sleep(0.05)
            assert (await post(client, url)).status == 200
            client.close()

    asyncio.run(main())


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent():
    async def main():
        async with raw_server(with_length()) as (url, state):
            client = LeanHttpClient(limit=10)
            with pytest.raises(ValueError):
                await post(client, url, headers={"X-Team": "a\r\nX-Injected: 1"})
            assert state["requests"] == []
            client.close()

    asyncio.run(main())


def test_a_refused_connection_is_an_os_error():
    async def main():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        client = LeanHttpClient(limit=10)
        with pytest.raises(OSError):
            await post(client, f"http://127.0.0.1:{port}/v1/x")

    asyncio.run(main())


def test_a_kept_connection_the_upstream_closed_unanswered_is_tried_again_once_on_a_new_one():
    # The writers themselves, not their id(): a closed connection's writer, once freed, can hand its
    # id to the next connection's, which would then be taken for the first and hung up on too.
    served = set()

    async def one_per_connection(request, writer):
        # A second request on a connection meets the server's idle close: no answer, hung up.
        if writer in served:
            return False
        served.add(writer)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY))

    async def main():
        async with raw_server(one_per_connection) as (url, state):
            client = LeanHttpClient(limit=10)
            assert await (await post(client, url)).read() == BODY
            assert await (await post(client, url)).read() == BODY
            assert state["connections"] == 2 and len(state["requests"]) == 3
            client.close()

    asyncio.run(main())


def test_a_second_answer_to_one_request_drops_the_connection():
    async def twice(request, writer):
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
        writer.write(answer + answer.replace(b"true", b"fals"))

    async def main():
        async with raw_server(twice) as (url, state):
            client = LeanHttpClient(limit=10)
            for _ in range(2):  # each answer is its request's own, never the extra one
                assert await (await post(client, url)).read() == BODY
            assert state["connections"] == 2
            client.close()

    asyncio.run(main())


# --- streamed answers ------------------------------------------------------------------------


def streamed(client, url, *, read_timeout=5.0):
    return client.post_streamed(url, {"Content-Type": "application/json"}, b'{"stream": true}',
                                read_timeout=read_timeout, connect=2.0)


def test_a_streamed_answer_comes_piece_by_piece_and_its_connection_is_kept_when_read_to_the_end():
    sent_last = asyncio.Event()

    async def sse(request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(3):
            event = b"data: %d\n\n" % i
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        sent_last.set()

    async def main():
        async with raw_server(sse) as (url, state):
            client = LeanHttpClient(limit=10)
            for _ in range(2):
                sent_last.clear()
                response = await streamed(client, url)
                assert response.status == 200 and response.headers["content-type"] == "text/event-stream"
                pieces = []
                async for piece in response.content.iter_any():
                    if not pieces:
                        assert not sent_last.is_set()  # the first piece came before the last was sent
                    pieces.append(piece)
                assert b"".join(pieces) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
                response.release()
            assert state["connections"] == 1
            client.close()

    asyncio.run(main())


def test_a_stream_left_early_drops_its_connection_and_frees_its_slot():
    async def endless(request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"7\r\ndata: x\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)

    async def main():
        async with raw_server(endless) as (url, state):
            client = LeanHttpClient(limit=1)
            for _ in range(3):  # with one slot, each call needs the one before it to have let go
                response = await asyncio.wait_for(streamed(client, url), 2)
                chunks = response.content.iter_any()
                assert (await chunks.__anext__()).startswith(b"data")
                await chunks.aclose()
                response.release()  # not read to the end: dropped, not kept
            await asyncio.sleep(0.1)
            assert state["connections"] == 3 and state["open"] == 0
            client.close()

    asyncio.run(main())


def test_a_stream_cut_or_stalled_midway_raises_as_aiohttp_does():
    async def cut(request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\ndata: x\r\n")
        await writer.drain()
        return False

    async def stall(request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\ndata: x\r\n")
        await asyncio.sleep(10)

    async def main():
        client = LeanHttpClient(limit=10)
        async with raw_server(cut) as (url, _):
            response = await streamed(client, url)
            with pytest.raises(aiohttp.ClientPayloadError):
                async for _ in response.content.iter_any():
                    pass
            response.close()
        async with raw_server(stall) as (url, _):
            response = await streamed(client, url, read_timeout=0.2)
            with pytest.raises(asyncio.TimeoutError):
                async for _ in response.content.iter_any():
                    pass
            response.close()
        client.close()

    asyncio.run(main())


def test_the_read_timeout_is_between_pieces_and_a_kept_connection_takes_the_new_streams_own():
    """One timer per connection (not one per piece): a stream whose pieces keep coming is never cut
    however long it lasts, and a kept connection reused with a shorter timeout keeps to it."""
    import time

    async def answer(request, writer):
        if b"slow" in request:  # pieces 0.1 s apart for 0.6 s
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(6):
                writer.write(b"7\r\ndata: x\r\n")
                await asyncio.sleep(0.1)
            writer.write(b"0\r\n\r\n")
        else:  # a head, one piece, then nothing
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\ndata: x\r\n")
            await asyncio.sleep(10)

    async def main():
        client = LeanHttpClient(limit=10)
        async with raw_server(answer) as (url, state):
            response = await client.post_streamed(url, {"Authorization": "Bearer sk-test"}, b'{"model": "slow"}',
                                                  read_timeout=0.25, connect=2.0)
            assert await response.read() == b"data: x" * 6  # 0.6 s in all, no gap over 0.25 s
            response.release()
            response = await client.post_streamed(url, {"Authorization": "Bearer sk-test"}, b'{"model": "slow"}',
                                                  read_timeout=30.0, connect=2.0)
            await response.read()
            response.release()
            response = await client.post_streamed(url, {"Authorization": "Bearer sk-test"}, b'{"model": "stall"}',
                                                  read_timeout=0.2, connect=2.0)
            assert state["connections"] == 1  # the kept connection, whose last wait allowed 30 s
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                async for _ in response.content.iter_any():
                    pass
            assert time.monotonic() - started < 2.0
            response.close()
        client.close()

    asyncio.run(main())


def test_an_error_status_on_a_stream_is_read_whole_and_no_head_is_an_upstream_cut():
    error = b'{"error": {"message": "bad key"}}'

    async def unauthorized(request, writer):
        writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n%s" % (len(error), error))

    async def hang_up(request, writer):
        return False

    async def main():
        client = LeanHttpClient(limit=10)
        async with raw_server(unauthorized) as (url, state):
            response = await streamed(client, url)
            assert (response.status, await response.read()) == (401, error)
            response.release()
            assert (await streamed(client, url)).status == 401
            assert state["connections"] == 1
        async with raw_server(hang_up) as (url, _):
            with pytest.raises(UpstreamCut):
                await streamed(client, url)
        client.close()

    asyncio.run(main())


def test_a_reader_that_falls_behind_stops_the_socket_being_read():
    from apps.providers.http1 import STREAM_BUFFER_HIGH

    piece = b"x" * 65536
    total = STREAM_BUFFER_HIGH * 8

    async def firehose(request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        for _ in range(total // len(piece)):
            writer.write(piece)
            await writer.drain()

    async def main():
        async with raw_server(firehose) as (url, _):
            client = LeanHttpClient(limit=10)
            response = await streamed(client, url)
            await asyncio.sleep(0.3)  # the upstream sends as fast as it can; nobody reads
            assert response._connection._buffered <= STREAM_BUFFER_HIGH + 2 * len(piece)
            assert len(await response.read()) == total  # and everything still comes
            response.release()
            client.close()

    asyncio.run(main())


def test_an_endless_head_is_refused_not_kept():
    async def endless_head(request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(100_000):
            writer.write(b"X-Filler-%d: %s\r\n" % (i, b"y" * 50))
            if i % 1000 == 0:
                await writer.drain()

    async def main():
        async with raw_server(endless_head) as (url, _):
            client = LeanHttpClient(limit=10)
            with pytest.raises(UpstreamCut):
                await post(client, url)
            with pytest.raises(UpstreamCut):
                await streamed(client, url)
            client.close()

    asyncio.run(main())


def _self_signed(tmp_path):
    """A certificate and key for "localhost", self-signed (written as PEM files)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_upstreams_are_verified_against_the_trust_store(tmp_path, monkeypatch):
    import ssl

    cert_path, key_path = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_path, key_path)

    async def handle(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(14)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY))
            await writer.drain()
            await reader.read()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def main(trusted: bool):
        if trusted:
            monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
        else:
            monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
        url = f"https://localhost:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
        client = LeanHttpClient(limit=10)
        try:
            if trusted:
                assert await (await post(client, url)).read() == BODY
            else:
                with pytest.raises(ssl.SSLCertVerificationError):  # an OSError: the transport's 502
                    await post(client, url)
        finally:
            client.close()
            server.close()

    asyncio.run(main(trusted=True))
    asyncio.run(main(trusted=False))
