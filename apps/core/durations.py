"""LiteLLM-style durations ("30s", "30m", "30h", "30d", "2w", "1mo") and the budget periods they make.

As in LiteLLM, the unit is read from its first letters: "30min" and "30mins" are 30 minutes,
"2weeks" two weeks, "1month" a month.

A budget period is derived, not stored: periods follow each other from an anchor
(when the budget started), so every replica computes the same current period
without waiting for a reset job.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+)\s*(mo|[smhdw])[a-z]*\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> tuple[int, str]:
    match = _DURATION.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise DurationError(f"{text!r} is not a duration: use e.g. 30s, 30m, 30h, 30d, 2w or 1mo")
    return int(match.group(1)), match.group(2)


def validate_duration(text: str) -> None:
    """For model fields: raises django's ValidationError."""
    from django.core.exceptions import ValidationError

    try:
        parse_duration(text)
    except DurationError as exc:
        raise ValidationError(str(exc)) from None


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    # Clamp the day (an anchor on the 31st lands on the last day of shorter months).
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def current_period(anchor: datetime, duration: str, now: datetime) -> tuple[datetime, datetime]:
    """The [start, end) of the budget period containing `now`."""
    amount, unit = parse_duration(duration)
    if now < anchor:
        now = anchor
    if unit == "mo":
        elapsed = (now.year - anchor.year) * 12 + now.month - anchor.month
        index = max(elapsed // amount, 0)
        start = _add_months(anchor, index * amount)
        if start > now:
            index -= 1
            start = _add_months(anchor, index * amount)
        return start, _add_months(anchor, (index + 1) * amount)
    length = timedelta(seconds=amount * _SECONDS[unit])
    index = (now - anchor) // length
    start = anchor + index * length
    return start, start + length


def duration_seconds(duration: str) -> int:
    amount, unit = parse_duration(duration)
    return amount * (30 * 86400 if unit == "mo" else _SECONDS[unit])


def period_start_for_end(end: datetime, duration: str) -> datetime:
    """The start of the period of `duration` that ends at `end` (an anchor from a reset time)."""
    amount, unit = parse_duration(duration)
    if unit == "mo":
        return _add_months(end, -amount)
    return end - timedelta(seconds=amount * _SECONDS[unit])
