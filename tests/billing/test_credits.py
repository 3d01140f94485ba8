"""USD -> credits: decimal arithmetic with the rate, places and rounding from settings."""

from decimal import Decimal

import pytest

from apps.billing.credits import decimal_text, usd_to_credits


def test_default_rate_is_a_thousand_credits_per_usd():
    assert usd_to_credits(Decimal("0.000073")) == Decimal("0.073000")
    assert usd_to_credits(Decimal("1")) == Decimal("1000")
    assert decimal_text(usd_to_credits(Decimal("0.0000001"))) == "0.000100"


def test_rate_places_and_rounding_come_from_settings(settings):
    settings.BILLING_CREDITS_PER_USD = Decimal("100")
    settings.BILLING_CREDITS_DECIMALS = 2
    settings.BILLING_CREDITS_ROUNDING = "ROUND_HALF_UP"
    assert usd_to_credits(Decimal("0.00125")) == Decimal("0.13")
    settings.BILLING_CREDITS_ROUNDING = "ROUND_HALF_EVEN"
    assert usd_to_credits(Decimal("0.00125")) == Decimal("0.12")
    settings.BILLING_CREDITS_ROUNDING = "ROUND_CEILING"
    assert usd_to_credits(Decimal("0.0000001")) == Decimal("0.01")
    settings.BILLING_CREDITS_DECIMALS = 0
    assert usd_to_credits(Decimal("0.004")) == Decimal("1")


def test_exact_where_floats_are_not():
    # 0.1 + 0.2 in floats is 0.30000000000000004; as Decimals and credits it is exact.
    assert usd_to_credits(Decimal("0.1") + Decimal("0.2")) == Decimal("300")
    assert usd_to_credits(Decimal("0.0000000001")) == Decimal("0.000000")  # below the places: rounded
    with pytest.raises(TypeError):
        usd_to_credits(0.1)


def test_unknown_cost_is_zero_credits():
    assert usd_to_credits(None) == Decimal("0")
