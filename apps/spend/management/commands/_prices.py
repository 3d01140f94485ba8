"""What import_prices and load_default_prices share: reading a price map, printing a report."""

from __future__ import annotations

import json
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.core.management.base import CommandError
from django.utils import timezone

MAX_PRICE_MAP_BYTES = 64 * 1024 * 1024  # LiteLLM's own map is ~1.6 MB


def effective_from_option(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--effective-from: not an ISO date or date-time: {value!r}") from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt_timezone.utc)
    return moment


def price_map_read(location: str) -> dict:
    """A LiteLLM price map from a file or an http(s) URL; CommandError when it cannot be had."""
    if location.startswith(("http://", "https://")):
        import httpx

        try:
            response = httpx.get(location, timeout=60, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise CommandError(f"{location}: could not be fetched ({exc}). Nothing was changed.") from None
        data = response.content
    else:
        try:
            with open(location, "rb") as handle:
                data = handle.read(MAX_PRICE_MAP_BYTES + 1)
        except OSError as exc:
            raise CommandError(f"{location}: {exc.strerror or exc}. Nothing was changed.") from None
    if len(data) > MAX_PRICE_MAP_BYTES:
        raise CommandError(f"{location}: larger than {MAX_PRICE_MAP_BYTES} bytes. Nothing was changed.")
    try:
        return json.loads(data, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandError(f"{location}: not valid JSON ({exc}). Nothing was changed.") from None


def import_errors(location: str, errors: list[str], limit: int = 50) -> CommandError:
    lines = [f"{location}: {len(errors)} error(s); nothing was changed."]
    lines += [f"  {error}" for error in errors[:limit]]
    if len(errors) > limit:
        lines.append(f"  ... and {len(errors) - limit} more")
    return CommandError("\n".join(lines))
