import hmac
import os

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.registry import Collector

from apps.billing.metrics import BillingOutboxCollector
from apps.providers.metrics import DeploymentHealthCollector
from apps.spend.metrics import SpendCollector, SpendPipelineCollector, TeamBudgetCollector, TeamRateLimitCollector


def metrics_view(request):
    """GET /metrics (Prometheus). With GATEWAY_METRICS_TOKEN set, scrapers send it as a bearer token."""
    token = settings.GATEWAY_METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            return JsonResponse({"error": {"message": "A valid metrics token is required.",
                                           "type": "authentication_error", "param": None,
                                           "code": "invalid_api_key"}}, status=401)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SpendCollector())
    registry.register(SpendPipelineCollector())
    registry.register(TeamBudgetCollector())
    registry.register(TeamRateLimitCollector())
    registry.register(BillingOutboxCollector())
    registry.register(DeploymentHealthCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # every worker's request metrics, added up
    else:
        registry.register(_RequestMetricsCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class _RequestMetricsCollector(Collector):
    """This process's request-path metrics (apps.routing.metrics), beside the database's."""

    def collect(self):
        from apps.core.metrics import REGISTRY

        yield from REGISTRY.collect()
