"""OpenTelemetry traces over OTLP/HTTP to a real receiver started here (protobuf decoded with
opentelemetry-proto): the span tree of a streamed request with a retry, the GenAI attributes,
the client's traceparent continued and the attempt's sent upstream; a collector that is down
costs no request and no unbounded memory."""

from __future__ import annotations

import openai
import pytest
from aiohttp import web

from conftest import wait_for
from tests.fakes.server import FakeServer
from tests.routing.conftest import unique

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"


class OTLPReceiver(FakeServer):
    """An OTLP/HTTP trace receiver: POST /v1/traces with an ExportTraceServiceRequest."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list = []
        self.app.router.add_post("/v1/traces", self.traces)

    async def traces(self, request: web.Request) -> web.Response:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        if request.content_type != "application/x-protobuf":
            return web.Response(status=415)
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource_spans in export.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    def of_trace(self, trace_id: str) -> list:
        return [span for span in self.spans if span.trace_id.hex() == trace_id]


def attributes(span) -> dict:
    values = {}
    for item in span.attributes:
        kind = item.value.WhichOneof("value")
        values[item.key] = getattr(item.value, kind)
    return values


@pytest.fixture(scope="module")
def receiver():
    server = OTLPReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def traced(receiver, monkeypatch, settings):
    """Tracing on, exporting to the receiver every 50 ms (set before the gateway starts)."""
    receiver.spans.clear()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    settings.GATEWAY_TRACING = True
    return receiver


def test_a_streamed_request_with_a_retry_is_one_server_span_and_two_attempts(traced, gateway, openai_client,
                                                                            make_deployment, make_key, fake_openai,
                                                                            fast_retries):
    flaky = unique("fail-first-1")
    make_deployment("traced", upstream_model=flaky)
    key, raw_key = make_key(alias="tracer")
    client = openai_client(raw_key, default_headers={"traceparent": f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"})
    stream = client.chat.completions.create(model="traced", messages=[{"role": "user", "content": "hi"}],
                                            stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    spans = wait_for(lambda: len(traced.of_trace(CLIENT_TRACE_ID)) >= 3 and traced.of_trace(CLIENT_TRACE_ID))
    assert len(spans) == 3
    [server] = [s for s in spans if s.parent_span_id.hex() == CLIENT_SPAN_ID]  # the client's trace, continued
    attempts = sorted((s for s in spans if s is not server), key=lambda s: attributes(s)["gateway.attempt"])
    assert [s.parent_span_id for s in attempts] == [server.span_id, server.span_id]  # siblings
    assert server.name == "chat traced" and server.kind == server.SPAN_KIND_SERVER
    assert [s.kind for s in attempts] == [server.SPAN_KIND_CLIENT] * 2
    first, second = (attributes(s) for s in attempts)
    assert (first["gateway.attempt"], second["gateway.attempt"]) == (1, 2)
    assert attempts[0].status.code == attempts[0].status.STATUS_CODE_ERROR and first["http.response.status_code"] == 500
    assert second["gen_ai.provider.name"] == "openai" and second["gen_ai.request.model"] == flaky
    main = attributes(server)
    assert main["gen_ai.operation.name"] == "chat" and main["gen_ai.request.model"] == "traced"
    assert (main["gen_ai.usage.input_tokens"], main["gen_ai.usage.output_tokens"]) == (11, 7)
    assert main["gen_ai.response.model"] == flaky and main["gateway.retries"] == 1 and main["gateway.stream"] is True
    assert main["gateway.cost_usd"] > 0 and main["gateway.key.hash_prefix"] == key.token_hash[:8]
    assert main["gateway.key.alias"] == "tracer"
    assert "gen_ai.input.messages" not in main  # content only where prompts are kept
    # The attempt that answered was continued by the upstream: its traceparent went along.
    sent = [r for r in fake_openai.requests if r["body"].get("model") == flaky][-1]
    assert sent["headers"]["traceparent"] == f"00-{CLIENT_TRACE_ID}-{attempts[1].span_id.hex()}-01"


def test_prompts_go_on_spans_only_for_keys_that_keep_them(traced, gateway, openai_client, make_deployment,
                                                         make_key):
    make_deployment("kept", upstream_model="gpt-test")
    key, raw_key = make_key()
    key.store_prompts = True
    key.save()
    openai_client(raw_key).chat.completions.create(model="kept", messages=[{"role": "user", "content": "the plan"}])
    servers = wait_for(lambda: [s for s in traced.spans if s.name == "chat kept"])
    main = attributes(servers[0])
    assert "the plan" in main["gen_ai.input.messages"] and "gen_ai.output.messages" in main


def test_a_collector_that_is_down_loses_no_request_and_holds_no_more_than_its_queue(down_collector_gateway,
                                                                                    make_deployment):
    from conftest import MASTER_KEY

    from apps.core.metrics import REGISTRY
    from apps.routing.tracing import tracing

    def dropped() -> float:
        return REGISTRY.get_sample_value("gateway_trace_spans_dropped_total") or 0.0

    make_deployment("untraced-ok", upstream_model="gpt-test")
    client = openai.OpenAI(base_url=down_collector_gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    before = dropped()
    for _ in range(6):
        client.chat.completions.create(model="untraced-ok", messages=[{"role": "user", "content": "hi"}])
    assert len(tracing.processor._batch_processor._queue) <= 2  # OTEL_BSP_MAX_QUEUE_SIZE
    # 12 spans made (a server and an attempt span each): 2 in the export that hangs, 2 queued, the rest dropped.
    assert dropped() - before >= 8


@pytest.fixture
def down_collector_gateway(monkeypatch, settings, transactional_db, fake_openai):
    """A gateway whose collector hangs (it takes connections and never answers), whose queue holds
    2 spans: the first export blocks for its timeout, and what does not fit meanwhile is dropped."""
    from apps.core import invalidation
    from tests.fakes.gateway import GatewayServer
    from tests.fakes.server import free_socket

    black_hole = free_socket()
    black_hole.listen(64)  # connections wait in the backlog; nothing ever reads or answers
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{black_hole.getsockname()[1]}")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "2")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3")
    settings.GATEWAY_TRACING = True
    invalidation.apply_everything()
    server = GatewayServer().start()
    yield server
    server.stop()
    black_hole.close()


def test_tracing_off_adds_nothing_upstream(gateway, openai_client, make_deployment, fake_openai):
    make_deployment("plain", upstream_model="gpt-test")
    openai_client().chat.completions.create(model="plain", messages=[{"role": "user", "content": "hi"}])
    assert "traceparent" not in fake_openai.requests[-1]["headers"]
    with pytest.raises(openai.NotFoundError):
        openai_client().chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])


class GrpcOTLPReceiver:
    """An OTLP/gRPC trace receiver (the collector's TraceService, from opentelemetry-proto)."""

    def __init__(self) -> None:
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        spans = self.spans = []

        class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        spans.extend(scope_spans.spans)
                return trace_service_pb2.ExportTraceServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None)


@pytest.fixture
def grpc_receiver(monkeypatch, settings):
    receiver = GrpcOTLPReceiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    settings.GATEWAY_TRACING = True
    yield receiver
    receiver.stop()


def test_traces_go_over_otlp_grpc_when_the_protocol_says_so(grpc_receiver, gateway, openai_client,
                                                            make_deployment):
    make_deployment("traced-grpc", upstream_model="gpt-test")
    client = openai_client(default_headers={"traceparent": f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"})
    client.chat.completions.create(model="traced-grpc", messages=[{"role": "user", "content": "hi"}])
    spans = wait_for(lambda: [s for s in grpc_receiver.spans if s.trace_id.hex() == CLIENT_TRACE_ID
                              and s.name == "chat traced-grpc"])
    assert spans, [s.name for s in grpc_receiver.spans]
    main = attributes(spans[0])
    assert main["gen_ai.request.model"] == "traced-grpc"
    assert (main["gen_ai.usage.input_tokens"], main["gen_ai.usage.output_tokens"]) == (11, 7)
