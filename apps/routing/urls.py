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
    "/responses",
    "/v2/rerank",
    "/health",  # /health (deployments, for operators), /health/liveliness, /health/readiness
)
