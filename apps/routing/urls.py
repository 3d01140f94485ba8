"""The data plane's URLconf, resolved by apps.routing.dataplane (never by Django's handler).

Paths are given without /v1; the data plane strips that prefix first.
"""

from django.urls import path

from apps.routing.v1_api import api

urlpatterns = [path("", api.urls)]

# Paths that belong to the data plane, with or without the /v1 prefix.
DATA_PLANE_PREFIXES = (
    "/v1/",
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/models",
    "/messages",
    "/rerank",
    "/moderations",
    "/images/",
    "/audio/",
    "/responses",
    "/v2/rerank",
    "/health",  # /health (deployments, for operators), /health/liveliness, /health/readiness
    # The providers' own APIs, forwarded (apps.routing.passthrough).
    "/openai/",
    "/azure/",
    "/anthropic/",
    "/gemini/",
    "/bedrock/",
    "/vertex_ai/",
)

# Management routes under /v1 (LiteLLM's /v1/model/info): served by the control plane, not the
# data plane, so the /v1 request path stays free of database queries.
CONTROL_PLANE_PATHS = ("/v1/model/info",)
