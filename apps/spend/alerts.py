"""Budget alerts. A soft budget refuses nothing; crossing it is reported once per period
(the limiter reports only the request that crossed it)."""

from __future__ import annotations

import logging

from apps.keys.limits import LimitScope

logger = logging.getLogger("gateway.alerts")

# Called with each crossing; tests and integrations (webhooks, Slack) subscribe here.
listeners: list = []


def soft_budget_crossed(scope: LimitScope) -> None:
    logger.warning("soft budget crossed: %s %s (soft budget %.6f USD)", scope.kind, scope.id,
                   (scope.soft_budget_nanos or 0) / 1e9)
    for listener in listeners:
        listener(scope)
