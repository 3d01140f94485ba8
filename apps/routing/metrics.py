"""Request-path metrics: counted in process memory as each request settles, read at /metrics.

Counters and histograms of prometheus-client, in their own registry: per model group,
deployment, status class and team (keys only when GATEWAY_METRICS_KEY_LABEL asks, as their
alias or hash prefix, never the key). Label children are looked up once per combination and
kept; past
GATEWAY_METRICS_MAX_SERIES combinations new ones are counted under "other", so a flood of
made-up model names or keys cannot grow memory without bound. With several server workers,
set PROMETHEUS_MULTIPROC_DIR: prometheus-client then keeps the values in shared files and
/metrics adds up every worker's (apps.spend.views).

The gateway's names come with LiteLLM's where a LiteLLM dashboard reads them
(LITELLM_NAMES below). A request adds to plain Python numbers (a few additions: its work is the
gateway's overhead); every GATEWAY_METRICS_FLUSH_INTERVAL they go into prometheus-client.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from decimal import Decimal

from django.conf import settings
from prometheus_client import Counter, Histogram

from apps.core.hot_settings import setting
from apps.core.metrics import REGISTRY

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
OTHER = "other"  # the label of combinations past the series limit

_LABELS = ("model_group", "deployment", "provider", "status_class", "team", "key")

requests_total = Counter(
    "gateway_proxy_requests", "Requests served through /v1, by model group, deployment, status class and team.",
    _LABELS, registry=REGISTRY)
request_duration = Histogram(
    "gateway_request_duration_seconds", "Time from the request's arrival to its end (a stream's last byte).",
    ("model_group", "status_class"), buckets=LATENCY_BUCKETS, registry=REGISTRY)
overhead_duration = Histogram(
    "gateway_overhead_duration_seconds",
    "Time spent in the gateway itself: the total less waiting for upstreams and retry backoffs.",
    ("model_group",), buckets=OVERHEAD_BUCKETS, registry=REGISTRY)
upstream_duration = Histogram(
    "gateway_upstream_duration_seconds", "Time spent waiting for upstreams, every attempt included.",
    ("model_group", "deployment"), buckets=LATENCY_BUCKETS, registry=REGISTRY)
time_to_first_token = Histogram(
    "gateway_time_to_first_token_seconds", "Streams: time from the request's arrival to its first token.",
    ("model_group", "deployment"), buckets=LATENCY_BUCKETS, registry=REGISTRY)
tokens_total = Counter(
    "gateway_proxy_tokens", "Tokens the providers reported (or the gateway counted), by kind.",
    ("model_group", "team", "kind"), registry=REGISTRY)
spend_total = Counter(
    "gateway_proxy_spend_usd", "USD spent, as each request was priced.", ("model_group", "team"), registry=REGISTRY)
retries_total = Counter(
    "gateway_retries", "Retries within a model group.", ("model_group",), registry=REGISTRY)
fallbacks_total = Counter(
    "gateway_fallbacks", "Fallbacks to another model group.", ("model_group",), registry=REGISTRY)

cooldowns_total = Counter(
    "gateway_deployment_cooldowns", "Times a deployment was put in cooldown (failures, or a 429).",
    ("model_group", "deployment"), registry=REGISTRY)

# LiteLLM's metric names (its prometheus callback), fed from the same observations.
litellm_requests = Counter(
    "litellm_proxy_total_requests_metric", "Requests (LiteLLM's name).",
    ("model", "team", "status_code"), registry=REGISTRY)
litellm_failed = Counter(
    "litellm_proxy_failed_requests_metric", "Failed requests (LiteLLM's name).", ("model", "team"), registry=REGISTRY)
litellm_latency = Histogram(
    "litellm_request_total_latency_metric", "Total request latency (LiteLLM's name).", ("model",),
    buckets=LATENCY_BUCKETS, registry=REGISTRY)
litellm_api_latency = Histogram(
    "litellm_llm_api_latency_metric", "Upstream latency (LiteLLM's name).", ("model",),
    buckets=LATENCY_BUCKETS, registry=REGISTRY)
litellm_ttft = Histogram(
    "litellm_llm_api_time_to_first_token_metric", "Time to first token (LiteLLM's name).", ("model",),
    buckets=LATENCY_BUCKETS, registry=REGISTRY)
litellm_overhead = Histogram(
    "litellm_overhead_latency_metric", "Gateway overhead (LiteLLM's name).", ("model",),
    buckets=OVERHEAD_BUCKETS, registry=REGISTRY)
litellm_spend = Counter("litellm_spend_metric", "USD spent (LiteLLM's name).", ("model", "team"), registry=REGISTRY)
litellm_tokens = Counter("litellm_total_tokens_metric", "Tokens (LiteLLM's name).", ("model", "team"),
                         registry=REGISTRY)
LITELLM_NAMES = (
    "litellm_proxy_total_requests_metric", "litellm_proxy_failed_requests_metric",
    "litellm_request_total_latency_metric", "litellm_llm_api_latency_metric",
    "litellm_llm_api_time_to_first_token_metric", "litellm_overhead_latency_metric", "litellm_spend_metric",
    "litellm_total_tokens_metric",
)


class _Histogram:
    """Observations of one histogram child since the last flush: a count per bucket and a sum."""

    __slots__ = ("bounds", "counts", "total", "children")

    def __init__(self, bounds: tuple[float, ...], *children) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: +Inf
        self.total = 0.0
        self.children = children  # the prometheus-client children (the gateway's, LiteLLM's) it goes to

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def flush(self) -> None:
        if not self.total and not any(self.counts):
            return
        for child in self.children:
            # prometheus-client's own bucket values (observe() adds 1 to one of them and the
            # amount to the sum): added to in bulk, one call per bucket that moved.
            child._sum.inc(self.total)
            for index, count in enumerate(self.counts):
                if count:
                    child._buckets[index].inc(count)
        self.counts = [0] * len(self.counts)
        self.total = 0.0


class _Series:
    """One (model group, deployment, provider, status, team, key, status code) combination: what
    its requests added since the last flush, and the prometheus-client children it goes to."""

    __slots__ = ("requests", "retries", "fallbacks", "prompt", "completion", "cached", "reasoning", "spend",
                 "duration", "overhead", "upstream", "ttft", "_counters", "_tokens")

    def __init__(self, group: str, deployment: str, provider: str, status_class: str, team: str, key: str,
                 status_code: str) -> None:
        self.requests = self.retries = self.fallbacks = 0
        self.prompt = self.completion = self.cached = self.reasoning = 0
        self.spend = 0.0
        self.duration = _Histogram(LATENCY_BUCKETS, request_duration.labels(group, status_class),
                                   litellm_latency.labels(group))
        self.overhead = _Histogram(OVERHEAD_BUCKETS, overhead_duration.labels(group), litellm_overhead.labels(group))
        self.upstream = _Histogram(LATENCY_BUCKETS, upstream_duration.labels(group, deployment),
                                   litellm_api_latency.labels(group))
        self.ttft = _Histogram(LATENCY_BUCKETS, time_to_first_token.labels(group, deployment),
                               litellm_ttft.labels(group))
        failed = (litellm_failed.labels(group, team),) if status_class != "2xx" else ()
        # (accumulator, the children it is added to)
        self._counters = (
            ("requests", (requests_total.labels(group, deployment, provider, status_class, team, key),
                          litellm_requests.labels(group, team, status_code), *failed)),
            ("retries", (retries_total.labels(group),)),
            ("fallbacks", (fallbacks_total.labels(group),)),
            ("prompt", (tokens_total.labels(group, team, "prompt"),)),
            ("completion", (tokens_total.labels(group, team, "completion"),)),
            ("cached", (tokens_total.labels(group, team, "cached"),)),
            ("reasoning", (tokens_total.labels(group, team, "reasoning"),)),
            ("spend", (spend_total.labels(group, team), litellm_spend.labels(group, team))),
        )
        self._tokens = litellm_tokens.labels(group, team)  # LiteLLM's: prompt and completion together

    def flush(self) -> None:
        tokens = self.prompt + self.completion
        for name, children in self._counters:
            amount = getattr(self, name)
            if amount:
                for child in children:
                    child.inc(amount)
                setattr(self, name, 0)
        if tokens:
            self._tokens.inc(tokens)
        for histogram in (self.duration, self.overhead, self.upstream, self.ttft):
            histogram.flush()


class RequestMetrics:
    """Counted on the event loop as requests settle (plain additions), flushed into
    prometheus-client by `flush` every GATEWAY_METRICS_FLUSH_INTERVAL (apps.routing.runtime):
    a request costs a few additions, not a dozen locked prometheus-client calls."""

    def __init__(self) -> None:
        self._series: dict[tuple, _Series] = {}
        self._dirty: set[tuple] = set()

    def _series_for(self, labels: tuple, status_code: str) -> tuple[tuple, _Series]:
        key = (*labels, status_code)
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= settings.GATEWAY_METRICS_MAX_SERIES:
                key = (OTHER, OTHER, OTHER, labels[3], OTHER, OTHER, status_code)
                series = self._series.get(key)
                if series is not None:
                    return key, series
            series = self._series[key] = _Series(*key)
        return key, series

    def observe(self, account, *, http_status: int | None, cancelled: bool, usage, cost: Decimal | None,
                first_token_at: float | None) -> None:
        """One settled request (apps.routing.proxy.RequestAccount.settle)."""
        deployment = account.deployment
        context = account.context
        status_class = "cancelled" if cancelled else f"{(http_status or 500) // 100}xx"
        key_label = ""
        if setting("GATEWAY_METRICS_KEY_LABEL") == "alias":
            key_label = context.alias or context.token_hash[:8]
        elif setting("GATEWAY_METRICS_KEY_LABEL") == "hash_prefix":
            key_label = context.token_hash[:8]
        labels = (
            account.model_group or "", str(deployment.id) if deployment else "", deployment.provider if deployment else "",
            status_class, context.team_id or "", key_label,
        )
        key, series = self._series_for(labels, str(http_status or ""))
        self._dirty.add(key)
        total = time.perf_counter() - account.started
        route = account.route
        series.requests += 1
        series.duration.observe(total)
        series.overhead.observe(max(total - account.upstream_seconds - route.waited_seconds, 0.0))
        if deployment is not None:
            series.upstream.observe(account.upstream_seconds)
        if first_token_at is not None:
            series.ttft.observe(first_token_at - account.started)
        series.retries += route.attempted_retries
        series.fallbacks += route.attempted_fallbacks
        series.prompt += usage.prompt_tokens
        series.completion += usage.completion_tokens
        series.cached += usage.cached_tokens
        series.reasoning += usage.reasoning_tokens
        if cost:
            series.spend += float(cost)

    def flush(self) -> None:
        """Add what was counted since the last flush to prometheus-client (on the event loop
        that counts: nothing is counted meanwhile)."""
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            self._series[key].flush()


request_metrics = RequestMetrics()
