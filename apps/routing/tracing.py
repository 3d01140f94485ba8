"""OpenTelemetry traces of /v1 requests, with the GenAI semantic conventions.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set
(settings.GATEWAY_TRACING): then nothing of the SDK is imported and a request pays one
attribute test. On, each server process has its own TracerProvider (not the global one, so a
process can start and stop it), a BatchSpanProcessor exporting over OTLP in the background
(HTTP/protobuf, or gRPC with OTEL_EXPORTER_OTLP_PROTOCOL=grpc), both
configured by the standard OTEL_* variables; a full queue drops spans (counted in
gateway_trace_spans_dropped_total), it never holds a request.

One server span per request ("{operation} {model}"), continuing the client's W3C traceparent;
one client span per upstream attempt, children of it (retries and fallbacks are siblings), whose
traceparent goes to the upstream. A streamed attempt's span ends with its first event; the
request's span ends when the request settles (a stream's end).
"""

from __future__ import annotations

import logging
import os

import orjson
from django.conf import settings
from prometheus_client import Counter

from apps.core.trace_context import upstream_traceparent
from apps.core.metrics import REGISTRY

logger = logging.getLogger(__name__)

spans_dropped = Counter("gateway_trace_spans_dropped", "Spans dropped because the export queue was full.",
                        registry=REGISTRY)

# gen_ai.operation.name per call type; gen_ai.provider.name per provider (the conventions' values).
_OPERATIONS = {"chat_completion": "chat", "text_completion": "text_completion", "embedding": "embeddings",
               "responses": "chat", "image_generation": "generate_content", "image_edit": "generate_content",
               "image_variation": "generate_content", "speech": "generate_content", "transcription": "generate_content",
               "translation": "generate_content", "rerank": "rerank", "moderation": "moderation"}
_PROVIDERS = {"openai": "openai", "azure": "azure.ai.openai", "anthropic": "anthropic", "bedrock": "aws.bedrock",
              "gemini": "gcp.gemini", "vertex_ai": "gcp.vertex_ai", "cohere": "cohere", "groq": "groq",
              "mistral": "mistral_ai", "deepseek": "deepseek", "xai": "x_ai", "ollama": "ollama"}
CONTENT_MAX_CHARS = 16_384



class _Tracing:
    def __init__(self) -> None:
        self.provider = None
        self.tracer = None
        self.processor = None

    @property
    def on(self) -> bool:
        return self.tracer is not None

    def start(self) -> None:
        if not settings.GATEWAY_TRACING or self.tracer is not None:
            return
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider

            exporter = _exporter()
        except ImportError:
            logger.exception("OpenTelemetry tracing is configured but its exporter is not installed: tracing off")
            return
        self.provider = TracerProvider(resource=Resource.create(
            {"service.name": os.environ.get("OTEL_SERVICE_NAME") or "llm-gateway"}))
        self.processor = _counting_processor(exporter)
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("llm-gateway")

    def stop(self) -> None:
        provider, self.provider, self.tracer, self.processor = self.provider, None, None, None
        if provider is not None:
            try:
                provider.shutdown()  # exports what is queued, within the exporter's timeout
            except Exception:
                logger.warning("the trace exporter did not shut down cleanly", exc_info=True)


tracing = _Tracing()


def _exporter():
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter()


def _counting_processor(exporter):
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    class CountingBatchSpanProcessor(BatchSpanProcessor):
        """The SDK's batch processor; a span it drops for want of room is counted."""

        def on_end(self, span) -> None:
            batch = getattr(self, "_batch_processor", None)
            queue = getattr(batch, "_queue", None)
            limit = getattr(batch, "_max_queue_size", None)
            if queue is not None and limit is not None and len(queue) >= limit:
                spans_dropped.inc()
                return
            super().on_end(span)

    return CountingBatchSpanProcessor(exporter)


# --- one request ------------------------------------------------------------------------------


def _parent_context(request):
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {}
    for header in ("traceparent", "tracestate"):
        value = request.META.get("HTTP_" + header.upper())
        if value:
            carrier[header] = value
    return TraceContextTextMapPropagator().extract(carrier) if carrier else None


def request_span_start(request, account) -> None:
    """The request's server span (on the account; ended by request_span_end)."""
    from opentelemetry.trace import SpanKind

    operation = _OPERATIONS.get(account.call_type, account.call_type)
    account.span = tracing.tracer.start_span(
        operation, kind=SpanKind.SERVER, context=_parent_context(request),
        attributes={"gen_ai.operation.name": operation, "gateway.request_id": account.request_id},
    )


def _traceparent(span) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


class attempt_span:  # noqa: N801 (used as a function: `async with attempt_span(account, deployment):`)
    """One upstream attempt's client span, a child of the request's; its traceparent goes upstream."""

    __slots__ = ("account", "deployment", "span", "token")

    def __init__(self, account, deployment) -> None:
        self.account, self.deployment, self.span, self.token = account, deployment, None, None

    async def __aenter__(self):
        from opentelemetry.trace import SpanKind, set_span_in_context

        account, deployment = self.account, self.deployment
        operation = _OPERATIONS.get(account.call_type, account.call_type)
        route = account.route
        self.span = tracing.tracer.start_span(
            f"{operation} {deployment.upstream_model}", kind=SpanKind.CLIENT,
            context=set_span_in_context(account.span),
            attributes={
                "gen_ai.operation.name": operation,
                "gen_ai.provider.name": _PROVIDERS.get(deployment.provider, deployment.provider),
                "gen_ai.request.model": deployment.upstream_model,
                "gateway.deployment.id": deployment.id,
                "gateway.attempt": route.attempted_retries + route.attempted_fallbacks + 1,
            },
        )
        self.token = upstream_traceparent.set(_traceparent(self.span))
        return self.span

    async def __aexit__(self, kind, error, traceback) -> bool:
        from opentelemetry.trace import Status, StatusCode

        upstream_traceparent.reset(self.token)
        if error is not None:
            self.span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
            self.span.set_attribute("error.type", getattr(error, "code", None) or type(error).__name__)
            status = getattr(error, "status", None)
            if status:
                self.span.set_attribute("http.response.status_code", status)
        self.span.end()
        return False


def request_span_end(account, *, status: str, http_status: int | None, error_type: str, usage, cost) -> None:
    """Everything the request learned, then the span's end."""
    from opentelemetry.trace import Status, StatusCode

    span, account.span = account.span, None
    context, deployment = account.context, account.deployment
    attributes = {
        "gen_ai.request.model": account.model or "",
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
        "gateway.model_group": account.model_group,
        "gateway.key.alias": context.alias or "",
        "gateway.key.hash_prefix": context.token_hash[:8],
        "gateway.team.id": context.team_id or "",
        "gateway.organization.id": context.organization_id or "",
        "gateway.status": status,
        "gateway.retries": account.route.attempted_retries,
        "gateway.fallbacks": account.route.attempted_fallbacks,
        "gateway.stream": account.stream,
    }
    if deployment is not None:
        attributes.update({
            "gen_ai.provider.name": _PROVIDERS.get(deployment.provider, deployment.provider),
            "gen_ai.response.model": deployment.upstream_model, "gateway.deployment.id": deployment.id,
        })
    if usage.cached_tokens:
        attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
    if cost is not None:
        attributes["gateway.cost_usd"] = float(cost)
    if http_status is not None:
        attributes["http.response.status_code"] = http_status
    if context.store_prompts:  # content only where the key or team keeps prompts (never by default)
        if account.body is not None:
            attributes["gen_ai.input.messages"] = _bounded(account.body.get("messages") or account.body.get("input"))
        if account.stored_response is not None:
            attributes["gen_ai.output.messages"] = _bounded(account.stored_response)
    span.set_attributes({k: v for k, v in attributes.items() if v is not None})
    if status == "error":
        span.set_status(Status(StatusCode.ERROR, error_type or "error"))
        span.set_attribute("error.type", error_type or "error")
    operation = _OPERATIONS.get(account.call_type, account.call_type)
    span.update_name(f"{operation} {account.model}" if account.model else operation)
    span.end()


def _bounded(value) -> str:
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= CONTENT_MAX_CHARS else text[:CONTENT_MAX_CHARS] + "…"
