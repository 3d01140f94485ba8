"""Prometheus metrics of Lago reporting, read at scrape time: the outbox's backlog and dead letters."""

from __future__ import annotations

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apps.billing.models import BillingEvent


class BillingOutboxCollector(Collector):
    def collect(self):
        counts = dict(BillingEvent.objects.exclude(status=BillingEvent.Status.SENT).values_list("status")
                      .annotate(count=Count("pk")).values_list("status", "count"))
        pending = GaugeMetricFamily("gateway_billing_outbox_pending", "Lago events waiting to be sent.")
        pending.add_metric([], counts.get(BillingEvent.Status.PENDING, 0))
        yield pending
        dead = GaugeMetricFamily("gateway_billing_outbox_dead", "Lago events given up on (dead letters: lago_replay).")
        dead.add_metric([], counts.get(BillingEvent.Status.DEAD, 0))
        yield dead
