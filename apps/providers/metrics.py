"""Prometheus metrics of the deployments, read at scrape time: each one's last health check."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apps.providers.models import ModelDeployment

_HEALTH = {ModelDeployment.Health.HEALTHY: 1, ModelDeployment.Health.UNHEALTHY: 0,
           ModelDeployment.Health.UNKNOWN: -1}
# LiteLLM's litellm_deployment_state: 0 healthy, 1 partial outage, 2 complete outage.
_LITELLM_STATE = {ModelDeployment.Health.HEALTHY: 0, ModelDeployment.Health.UNHEALTHY: 2}


class DeploymentHealthCollector(Collector):
    def collect(self):
        labels = ["model_group", "deployment", "provider"]
        healthy = GaugeMetricFamily("gateway_deployment_healthy",
                                    "A deployment's last health check: 1 passed, 0 failed, -1 not checked yet.",
                                    labels=labels)
        litellm = GaugeMetricFamily("litellm_deployment_state",
                                    "A deployment's state (LiteLLM's name): 0 healthy, 2 outage.", labels=labels)
        for pk, model_name, provider, status in ModelDeployment.objects.filter(is_active=True).values_list(
                "pk", "model_name", "provider", "health_status"):
            values = [model_name, str(pk), provider]
            healthy.add_metric(values, _HEALTH.get(status, -1))
            if status in _LITELLM_STATE:
                litellm.add_metric(values, _LITELLM_STATE[status])
        yield healthy
        yield litellm
