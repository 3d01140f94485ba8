"""USD -> the gateway's virtual currency ("credits"): decimal arithmetic only, never floats."""

from __future__ import annotations

import decimal
from decimal import Decimal

from django.conf import settings

_CONTEXT = decimal.Context(prec=50)


def usd_to_credits(usd: Decimal | None) -> Decimal:
    """BILLING_CREDITS_PER_USD credits per USD, rounded to BILLING_CREDITS_DECIMALS places by
    BILLING_CREDITS_ROUNDING. No cost (unknown price) is 0 credits."""
    if usd is None:
        return Decimal(0).quantize(Decimal(1).scaleb(-settings.BILLING_CREDITS_DECIMALS))
    if not isinstance(usd, Decimal):
        raise TypeError(f"USD amounts are Decimals, got {type(usd).__name__}")
    rate = settings.BILLING_CREDITS_PER_USD
    rate = rate if isinstance(rate, Decimal) else Decimal(str(rate))
    exact = _CONTEXT.multiply(usd, rate)
    return exact.quantize(
        Decimal(1).scaleb(-settings.BILLING_CREDITS_DECIMALS),
        rounding=getattr(decimal, settings.BILLING_CREDITS_ROUNDING),
        context=_CONTEXT,
    )


def decimal_text(value: Decimal) -> str:
    """A Decimal as plain text ("0.000150", never "1.5E-4"), for event properties."""
    return format(value, "f")
