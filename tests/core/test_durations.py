from datetime import datetime, timezone

import pytest

from apps.core.durations import DurationError, current_period, parse_duration

UTC = timezone.utc


@pytest.mark.parametrize("text, parsed", [("30s", (30, "s")), ("30m", (30, "m")), ("12h", (12, "h")),
                                          ("30d", (30, "d")), ("1mo", (1, "mo")), ("2w", (2, "w")),
                                          # LiteLLM reads the unit from its first letters.
                                          ("30min", (30, "m")), ("1month", (1, "mo")), ("3days", (3, "d"))])
def test_parse(text, parsed):
    assert parse_duration(text) == parsed


@pytest.mark.parametrize("text", ["", "30", "0d", "1y", "-1d", "d30"])
def test_bad_durations(text):
    with pytest.raises(DurationError):
        parse_duration(text)


def test_week_periods():
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    assert current_period(anchor, "2w", datetime(2026, 1, 20, tzinfo=UTC)) == (
        datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 1, 29, tzinfo=UTC))


def test_day_periods_follow_the_anchor():
    anchor = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert current_period(anchor, "1d", datetime(2026, 1, 3, 11, tzinfo=UTC)) == (
        datetime(2026, 1, 2, 12, tzinfo=UTC), datetime(2026, 1, 3, 12, tzinfo=UTC))


def test_month_periods_clamp_to_short_months():
    anchor = datetime(2026, 1, 31, tzinfo=UTC)
    assert current_period(anchor, "1mo", datetime(2026, 2, 28, 1, tzinfo=UTC)) == (
        datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))
    assert current_period(anchor, "1mo", datetime(2026, 2, 27, tzinfo=UTC)) == (
        datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC))
