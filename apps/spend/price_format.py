"""LiteLLM's price format (model_prices_and_context_window.json): reading and checking it.

One entry per model key, e.g.
    "claude-sonnet-4-5": {"litellm_provider": "anthropic", "mode": "chat",
        "input_cost_per_token": 3e-06, "input_cost_per_token_above_200k_tokens": 6e-06, ...}
Prices are USD per token (per image, second or query where named so). The gateway keeps the
price fields it charges by in ModelPrice columns and every other field in `extra`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

# LiteLLM fields kept as they are (the names of ModelPrice's columns too).
DIRECT_PRICE_FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "cache_creation_input_token_cost_above_1hr",
    "output_cost_per_reasoning_token",
    "input_cost_per_image",
    "output_cost_per_image",
    "input_cost_per_second",
    "output_cost_per_second",
    "input_cost_per_query",
    "input_cost_per_character",
    # The Batch API's prices (OpenAI, Azure: half the list price), per token.
    "input_cost_per_token_batches",
    "output_cost_per_token_batches",
)
# A tier's prices: "<base>_above_<N>k_tokens" in LiteLLM, "<base>_above_tier" here.
TIERED_PRICE_FIELDS = {
    "input_cost_per_token": "input_cost_per_token_above_tier",
    "output_cost_per_token": "output_cost_per_token_above_tier",
    "cache_read_input_token_cost": "cache_read_input_token_cost_above_tier",
    "cache_creation_input_token_cost": "cache_creation_input_token_cost_above_tier",
}
PRICE_FIELDS = DIRECT_PRICE_FIELDS + tuple(TIERED_PRICE_FIELDS.values())
TOKEN_COUNT_FIELDS = ("tier_threshold_tokens", "max_input_tokens", "max_output_tokens")
# Everything a version compares by: a difference in any of these is a new version.
VERSIONED_FIELDS = PRICE_FIELDS + TOKEN_COUNT_FIELDS + ("litellm_provider", "mode")

_TIER_KEY = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|cache_creation_input_token_cost)"
    r"_above_(\d+(?:\.\d+)?)k_tokens$"
)
# Not models: LiteLLM's field documentation, and this project's metadata.
NOT_MODELS = frozenset({"sample_spec"})
MAX_KEY_LENGTH = 200
PRICE_DECIMAL_PLACES = 15


@dataclass
class PriceEntry:
    """One model's prices as the gateway keeps them (ModelPrice's fields)."""

    model_key: str
    values: dict[str, Any] = field(default_factory=dict)  # VERSIONED_FIELDS; absent = not priced
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParsedDocument:
    entries: list[PriceEntry]
    errors: list[str]
    warnings: list[str]


def _price(value: Any, where: str, errors: list[str]) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        errors.append(f"{where}: must be a number, got {value!r}")
        return None
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        errors.append(f"{where}: must be a number, got {value!r}")
        return None
    if not price.is_finite() or price < 0:
        errors.append(f"{where}: must be a finite number of at least 0, got {value!r}")
        return None
    if price >= Decimal("1e9"):
        errors.append(f"{where}: {value!r} is not a price per token, image, second or query")
        return None
    if price.as_tuple().exponent < -PRICE_DECIMAL_PLACES:  # as stored (ModelPrice's price columns)
        price = price.quantize(Decimal(1).scaleb(-PRICE_DECIMAL_PLACES))
    return price.normalize()


def _token_count(value: Any, where: str, errors: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        errors.append(f"{where}: must be a whole number of tokens, got {value!r}")
        return None
    try:
        number = Decimal(str(value).strip()) if isinstance(value, (str, float, Decimal)) else value
    except InvalidOperation:
        number = None
    if isinstance(number, Decimal) and number.is_finite() and number == number.to_integral_value():
        number = int(number)
    if not isinstance(number, int) or number < 0 or number > 2**31 - 1:
        errors.append(f"{where}: must be a whole number of tokens, got {value!r}")
        return None
    return number


def _plain_json(value: Any) -> Any:
    """`extra` is stored as JSON: decimals (from parse_float=Decimal) become floats again."""
    if isinstance(value, Decimal):
        number = float(value)
        return number if math.isfinite(number) else str(value)
    if isinstance(value, dict):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_json(v) for v in value]
    return value


def entry_parse(model_key: str, raw: Any, errors: list[str], warnings: list[str]) -> PriceEntry | None:
    """One LiteLLM entry; problems are appended to `errors` (the entry is then unusable)."""
    if not isinstance(model_key, str) or not model_key.strip() or len(model_key) > MAX_KEY_LENGTH:
        errors.append(f"{model_key!r}: a model key is a non-empty string of at most {MAX_KEY_LENGTH} characters")
        return None
    if not isinstance(raw, dict):
        errors.append(f"{model_key}: must be an object of fields, got {type(raw).__name__}")
        return None
    error_count = len(errors)
    entry = PriceEntry(model_key=model_key)
    values = entry.values
    tiers: dict[Decimal, dict[str, Decimal]] = {}
    for name, value in raw.items():
        where = f"{model_key}.{name}"
        tier = _TIER_KEY.match(name) if isinstance(name, str) else None
        if name in DIRECT_PRICE_FIELDS:
            price = _price(value, where, errors)
            if price is not None:
                values[name] = price
        elif tier:
            price = _price(value, where, errors)
            if price is not None:
                tiers.setdefault(Decimal(tier.group(2)), {})[TIERED_PRICE_FIELDS[tier.group(1)]] = price
        elif name in ("max_input_tokens", "max_output_tokens"):
            count = _token_count(value, where, errors)
            if count is not None:
                values[name] = count
        elif name in ("litellm_provider", "mode"):
            if value is not None and not isinstance(value, str):
                errors.append(f"{where}: must be a string, got {value!r}")
            elif value:
                values[name] = value[:64 if name == "litellm_provider" else 32]
        else:
            entry.extra[str(name)] = _plain_json(value)
    if "max_output_tokens" not in values and isinstance(raw.get("max_tokens"), int) and raw["max_tokens"] >= 0:
        values["max_output_tokens"] = raw["max_tokens"]  # LiteLLM's legacy name for it
    if tiers:
        threshold = min(tiers)
        values["tier_threshold_tokens"] = int(threshold * 1000)
        values.update(tiers[threshold])
        if len(tiers) > 1:
            ignored = ", ".join(f"{t.normalize():f}k" for t in sorted(tiers)[1:])
            warnings.append(f"{model_key}: only the first price tier (above {threshold.normalize():f}k tokens) "
                            f"is charged; tiers above {ignored} are kept in its extra fields")
            for name, value in raw.items():
                match = _TIER_KEY.match(name) if isinstance(name, str) else None
                if match and Decimal(match.group(2)) != threshold:
                    entry.extra[name] = _plain_json(value)
    return entry if len(errors) == error_count else None


def document_parse(document: Any) -> ParsedDocument:
    """A whole price map. Callers change nothing unless `errors` is empty."""
    errors: list[str] = []
    warnings: list[str] = []
    entries: list[PriceEntry] = []
    if not isinstance(document, dict):
        return ParsedDocument([], ["the price map must be a JSON object of model entries"], [])
    for model_key, raw in document.items():
        if model_key in NOT_MODELS or (isinstance(model_key, str) and model_key.startswith("_")):
            continue
        entry = entry_parse(model_key, raw, errors, warnings)
        if entry is not None:
            entries.append(entry)
    if not entries and not errors:
        errors.append("the price map has no model entries")
    return ParsedDocument(entries, errors, warnings)


def prices_from_params(params: dict[str, Any]) -> dict[str, Any]:
    """The price fields among a deployment's LiteLLM params (extra_params). A value that is not a
    valid price is left out: the config loader and the admin own validating those params."""
    price_params = {k: v for k, v in params.items() if isinstance(k, str) and _is_price_param(k)}
    if not price_params:
        return {}
    entry = entry_parse("deployment", price_params, [], [])
    if entry is None:  # one bad value: keep the good ones
        entry = PriceEntry("deployment")
        for name, value in price_params.items():
            one = entry_parse("deployment", {name: value}, [], [])
            if one is not None:
                entry.values.update(one.values)
    return {k: v for k, v in entry.values.items() if k in PRICE_FIELDS or k == "tier_threshold_tokens"}


def _is_price_param(name: str) -> bool:
    return name in DIRECT_PRICE_FIELDS or bool(_TIER_KEY.match(name))


def litellm_field_name(name: str, tier_threshold: int | None) -> str:
    """The LiteLLM name of one of ModelPrice's fields (for reports)."""
    for base, tiered in TIERED_PRICE_FIELDS.items():
        if name == tiered:
            return f"{base}_above_{_thousands(tier_threshold)}k_tokens" if tier_threshold else name
    return name


def _thousands(tokens: int) -> str:
    return f"{(Decimal(tokens) / 1000).normalize():f}"


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)
