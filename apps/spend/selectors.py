from __future__ import annotations

from apps.spend.models import SpendLog


def model_price_catalog_rows() -> list[dict]:
    """Every price version, as the in-process catalog (apps.spend.pricing) loads them."""
    from apps.spend.models import ModelPrice
    from apps.spend.pricing import PRICES_FIELD_NAMES

    return list(
        ModelPrice.objects.order_by("model_key", "effective_from").values(
            "model_key", "effective_from", *PRICES_FIELD_NAMES
        )
    )


def model_price_latest_by_key() -> dict:
    """Each model key's newest version (in force or not yet), for imports to compare against."""
    from apps.spend.models import ModelPrice

    latest: dict[str, ModelPrice] = {}
    for price in ModelPrice.objects.order_by("model_key", "effective_from").iterator(chunk_size=2000):
        latest[price.model_key] = price
    return latest


def spend_cost_status_counts(*, since=None) -> dict[str, int]:
    """Requests per cost status (priced, estimated, unpriced, no_usage), for metrics."""
    from django.db.models import Count

    logs = SpendLog.objects.all()
    if since is not None:
        logs = logs.filter(start_time__gte=since)
    return dict(logs.order_by().values_list("cost_status").annotate(n=Count("id")))


def spend_unpriced_models(*, since=None) -> list[dict]:
    """The models requests were made to without a known price: provider, upstream model, requests."""
    from django.db.models import Count, Max

    logs = SpendLog.objects.filter(cost_status=SpendLog.CostStatus.UNPRICED)
    if since is not None:
        logs = logs.filter(start_time__gte=since)
    return list(
        logs.order_by()
        .values("provider", "upstream_model")
        .annotate(requests=Count("id"), last_seen=Max("start_time"))
        .order_by("-requests")
    )
