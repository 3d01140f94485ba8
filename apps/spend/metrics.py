"""Prometheus metrics of spend, read from the daily rollups at scrape time.

Read from the database rather than counted in each server process: every replica (and every
worker of one) answers the same totals, the request path pays nothing, and the numbers are
the ones reports and invoices use. They trail the requests by at most the rollup interval
(GATEWAY_ROLLUP_INTERVAL); `gateway_spend_rollup_age_seconds` says by how much.
"""

from __future__ import annotations

from django.db.models import Max
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from apps.spend.models import DailySpend, SpendRollupDay
from apps.spend.selectors import spend_report

# (metric name without _total, help, the report's measure)
_COUNTERS = (
    ("gateway_requests", "Requests through the gateway.", "requests"),
    ("gateway_request_errors", "Requests that ended in an error.", "errors"),
    ("gateway_unpriced_requests",
     "Requests to a model with no known price: their cost is recorded empty, not as $0.", "unpriced_requests"),
    ("gateway_estimated_cost_requests",
     "Requests whose tokens the gateway counted itself (the provider reported no usage).", "estimated_requests"),
)
_TOKEN_KINDS = ("prompt", "completion", "cached", "reasoning")


class SpendCollector(Collector):
    def collect(self):
        rows = spend_report(rows=DailySpend.objects.all(), group_by=["model", "provider"])
        labels = ["model", "provider"]
        families = {measure: CounterMetricFamily(name, text, labels=labels) for name, text, measure in _COUNTERS}
        spend = CounterMetricFamily("gateway_spend_usd", "USD spent (priced and estimated requests).", labels=labels)
        tokens = CounterMetricFamily("gateway_tokens", "Tokens used, by kind.", labels=[*labels, "kind"])
        for row in rows:
            values = [row["model"], row["provider"]]
            for measure, family in families.items():
                family.add_metric(values, row[measure])
            spend.add_metric(values, float(row["spend"]))
            for kind in _TOKEN_KINDS:
                tokens.add_metric([*values, kind], row[f"{kind}_tokens"])
        yield from families.values()
        yield spend
        yield tokens
        last = SpendRollupDay.objects.aggregate(last=Max("rolled_at"))["last"]
        age = GaugeMetricFamily("gateway_spend_rollup_age_seconds",
                                "Seconds since the spend rollups were last rebuilt (-1: never).")
        age.add_metric([], (timezone.now() - last).total_seconds() if last else -1)
        yield age


class SpendPipelineCollector(Collector):
    """The spend path's backlog at scrape time: this process's buffer, and Redis's spill list."""

    def collect(self):
        from apps.core.redis import redis_enabled, redis_key, sync_redis
        from apps.spend.buffer import spend_buffer

        depth = GaugeMetricFamily("gateway_spend_buffer_records",
                                  "Spend records waiting in this process's buffer for their batch write.")
        depth.add_metric([], len(spend_buffer))
        yield depth
        spilled = GaugeMetricFamily("gateway_spend_spilled_records",
                                    "Spend records the database refused, waiting in Redis for their replay (-1: unread).")
        try:
            spilled.add_metric([], sync_redis().llen(redis_key("spend", "spill")) if redis_enabled() else 0)
        except Exception:
            spilled.add_metric([], -1)
        yield spilled


class TeamBudgetCollector(Collector):
    """Each team's budget and what is left of it this period, from the database at scrape time
    (its spend as the batch writer last added to it)."""

    def collect(self):
        from apps.teams.models import Team

        labels = ["team", "team_alias"]
        budget = GaugeMetricFamily("gateway_team_budget_usd", "A team's budget for its current period.", labels=labels)
        remaining = GaugeMetricFamily("gateway_team_budget_remaining_usd",
                                      "USD left of a team's budget this period.", labels=labels)
        litellm = GaugeMetricFamily("litellm_remaining_team_budget_metric",
                                    "USD left of a team's budget (LiteLLM's name).", labels=labels)
        for team_id, alias, max_budget, spend in Team.objects.filter(max_budget__isnull=False).values_list(
                "pk", "alias", "max_budget", "spend"):
            values = [str(team_id), alias]
            left = float(max(max_budget - spend, 0))
            budget.add_metric(values, float(max_budget))
            remaining.add_metric(values, left)
            litellm.add_metric(values, left)
        yield budget
        yield remaining
        yield litellm


class TeamRateLimitCollector(Collector):
    """Each team's requests- and tokens-per-minute limits and what is left of them in the sliding
    minute the limiter counts (Redis's counters, else this process's)."""

    def collect(self):
        from django.db.models import Q

        from apps.keys.limits import window_usage
        from apps.teams.models import Team

        labels = ["team", "team_alias"]
        families = {
            "rpm": (GaugeMetricFamily("gateway_team_rpm_limit", "A team's requests-per-minute limit.", labels=labels),
                    GaugeMetricFamily("gateway_team_rpm_remaining",
                                      "Requests a team may still make in the current sliding minute.", labels=labels)),
            "tpm": (GaugeMetricFamily("gateway_team_tpm_limit", "A team's tokens-per-minute limit.", labels=labels),
                    GaugeMetricFamily("gateway_team_tpm_remaining",
                                      "Tokens a team may still use in the current sliding minute.", labels=labels)),
        }
        teams = list(Team.objects.filter(Q(rpm_limit__isnull=False) | Q(tpm_limit__isnull=False))
                     .values_list("pk", "alias", "rpm_limit", "tpm_limit"))
        try:
            usage = window_usage("team", [team_id for team_id, *_ in teams])
        except Exception:  # Redis down: the limits are still worth showing
            usage = {}
        for team_id, alias, rpm, tpm in teams:
            values = [str(team_id), alias]
            requests, tokens = usage.get(str(team_id), (None, None))
            for kind, limit, used in (("rpm", rpm, requests), ("tpm", tpm, tokens)):
                if limit is None:
                    continue
                families[kind][0].add_metric(values, limit)
                if used is not None:
                    families[kind][1].add_metric(values, max(limit - used, 0))
        for limit_family, remaining_family in families.values():
            yield limit_family
            yield remaining_family
