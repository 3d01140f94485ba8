"""The W3C traceparent of the upstream attempt in progress: set by apps.routing.tracing around an
attempt, read by the one upstream transport (apps.providers.transport) to send it on."""

from __future__ import annotations

import contextvars

upstream_traceparent: contextvars.ContextVar[str | None] = contextvars.ContextVar("upstream_traceparent",
                                                                                 default=None)
