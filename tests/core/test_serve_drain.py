"""Graceful shutdown of `manage.py serve` (GATEWAY_SHUTDOWN_DRAIN_SECONDS), as a pod being deleted
sees it: on SIGTERM the server stops accepting connections (one process: new ones are refused at
once), the requests in flight (a slow stream from the fake upstream here) run to their end, and
the process exits; a request still running when the drain time is up is cut, and the process
exits then. Kubernetes kills the pod terminationGracePeriodSeconds after it asked it to stop, so
that must be longer than the drain (tests/test_deploy_manifests.py checks the manifests for it)."""

from __future__ import annotations

import signal
import socket
import threading
import time

import httpx
import pytest

from conftest import MASTER_KEY
from tests.fakes.openai_upstream import REPLY_WORDS
from tests.fakes.replica import Replica

pytestmark = pytest.mark.django_db(transaction=True)


class Stream:
    """A streamed chat completion read from a thread: its text, whether [DONE] came, and when it ended."""

    def __init__(self, url: str, model: str) -> None:
        self.url, self.model = url, model
        self.started = threading.Event()  # the first chunk arrived: the request is in flight
        self.text, self.done, self.error, self.ended_at = "", False, None, None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        import orjson

        try:
            with httpx.stream(
                "POST", self.url + "/v1/chat/completions", timeout=30,
                headers={"Authorization": f"Bearer {MASTER_KEY}"},
                json={"model": self.model, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
            ) as response:
                assert response.status_code == 200, response.read()
                for line in response.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    self.started.set()
                    if line == "data: [DONE]":
                        self.done = True
                        continue
                    for choice in orjson.loads(line[6:]).get("choices") or []:
                        self.text += choice["delta"].get("content") or ""
        except Exception as exc:  # noqa: BLE001 - the cut stream: its body ends before its end
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            self.started.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream did not end"


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def sigterm_while_streaming(make_deployment, upstream_model: str, drain: float, *serve_args: str):
    """A server with this drain time; a stream from `upstream_model` started, then SIGTERM.
    Returns (the replica, the stream, when the signal was sent)."""
    make_deployment("drain-model", upstream_model=upstream_model)
    replica = Replica(*serve_args, GATEWAY_SHUTDOWN_DRAIN_SECONDS=str(drain)).wait_ready()
    stream = Stream(replica.url, "drain-model")
    if not stream.started.wait(15) or stream.error is not None:
        replica.stop()
        raise AssertionError(f"the stream did not start: {stream.error}")
    signalled = time.monotonic()
    replica.process.send_signal(signal.SIGTERM)
    return replica, stream, signalled


def exited_after(replica: Replica, signalled: float, timeout: float) -> tuple[float, str]:
    try:
        replica.process.wait(timeout)
    finally:
        output = replica.stop()  # only collects the output (or SIGTERMs a process still running)
    assert replica.process.returncode in (0, -signal.SIGTERM), output
    return time.monotonic() - signalled, output


# One process, and the production command's two workers (docker-compose.yml, deploy/kubernetes/).
@pytest.mark.parametrize("serve_args", [(), ("--workers", "2")], ids=["one-process", "two-workers"])
def test_sigterm_lets_a_stream_in_flight_finish(make_deployment, spend_logs, serve_args):
    drain = 6.0
    # Each of the 6 words 0.4 s after the one before: about 2.4 s of stream after the signal.
    replica, stream, signalled = sigterm_while_streaming(make_deployment, "drip-400", drain, *serve_args)
    if not serve_args:
        # The listening socket closes at uvicorn's next tick (0.1 s): new connections are refused.
        # (With --workers the supervisor keeps its copy of the socket open until it exits: new
        # connections wait unanswered instead. In Kubernetes the preStop sleep keeps them away.)
        while not refused(replica.port):
            assert time.monotonic() - signalled < 2, "new connections were still accepted"
            time.sleep(0.02)
        assert stream.ended_at is None, "refused only after the stream had ended: nothing was in flight"

    stream.join(drain + 5)
    assert stream.error is None, stream.error
    assert stream.done and stream.text == "".join(REPLY_WORDS)
    assert stream.ended_at - signalled > 1.5  # it really was streaming through the drain

    elapsed, output = exited_after(replica, signalled, drain + 5)
    assert elapsed < drain, f"the process took {elapsed:.1f} s to exit, past the drain ({drain} s)\n{output}"
    assert "timeout graceful shutdown exceeded" not in output, output
    assert "Application shutdown complete" in output, output
    # Its spend was written at shutdown at the latest.
    assert [(log.model, log.is_stream) for log in spend_logs(1)] == [("drain-model", True)]


def test_a_stream_longer_than_the_drain_is_cut_when_it_runs_out(make_deployment):
    drain = 1.5
    # 6 words 1 s apart: the stream would need about 6 s.
    replica, stream, signalled = sigterm_while_streaming(make_deployment, "drip-1000", drain)

    stream.join(drain + 10)
    assert not stream.done and stream.text != "".join(REPLY_WORDS)
    assert drain - 0.5 < stream.ended_at - signalled < drain + 2.5, stream.ended_at - signalled

    elapsed, output = exited_after(replica, signalled, drain + 10)
    assert elapsed < drain + 3, f"the process took {elapsed:.1f} s to exit\n{output}"
    assert "timeout graceful shutdown exceeded" in output, output
