"""Writes of the price catalog: a LiteLLM-format price map imported as new versions (a file, or
the catalog shipped in apps/spend/data/prices.json), and every process told when it changed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from apps.core import invalidation
from apps.core.audit import audit_bulk_created
from apps.spend.models import ModelPrice
from apps.spend.price_format import VERSIONED_FIELDS, document_parse, format_value, litellm_field_name
from apps.spend.pricing import KIND_PRICES
from apps.spend.selectors import model_price_latest_by_key

DEFAULT_PRICES_SOURCE = "default catalog"  # the source of versions load_default_prices makes


class PriceImportError(Exception):
    """The price map is invalid: nothing was changed."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} error(s) in the price map; nothing was changed")
        self.errors = errors


@dataclass
class PriceChange:
    model_key: str
    differences: list[tuple[str, str, str]]  # (LiteLLM field, old, new)


@dataclass
class PriceImportReport:
    effective_from: datetime
    dry_run: bool
    created: list[str] = dataclass_field(default_factory=list)  # model keys with a first version
    changed: list[PriceChange] = dataclass_field(default_factory=list)  # a new version
    unchanged: int = 0
    kept: list[str] = dataclass_field(default_factory=list)  # changed locally: left alone
    warnings: list[str] = dataclass_field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.created or self.changed)

    def lines(self, *, limit: int = 200) -> list[str]:
        when = self.effective_from.isoformat()
        verb = "would be" if self.dry_run else "were"
        lines = [
            f"{len(self.created)} new model(s), {len(self.changed)} changed, {self.unchanged} unchanged"
            + (f", {len(self.kept)} kept as changed locally" if self.kept else "")
            + (f"; new versions {verb} effective from {when}." if self.has_changes else ".")
        ]
        lines += [f"  new      {key}" for key in self.created[:limit]]
        for change in self.changed[:limit]:
            lines.append(f"  changed  {change.model_key}")
            lines += [f"             {name}: {old} -> {new}" for name, old, new in change.differences]
        lines += [f"  kept     {key} (changed in the admin or by an import; not overwritten)"
                  for key in self.kept[:limit]]
        hidden = sum(max(len(items) - limit, 0) for items in (self.created, self.changed, self.kept))
        if hidden:
            lines.append(f"  ... and {hidden} more")
        lines += [f"  warning  {warning}" for warning in self.warnings]
        return lines


def _price_differences(latest, values: dict) -> list[tuple[str, str, str]]:
    differences = []
    for name in VERSIONED_FIELDS:
        old = getattr(latest, name)
        new = values.get(name)
        if name in ("litellm_provider", "mode"):
            old, new = old or "", new or ""
        if old != new:  # Decimal("0.0000025000") == Decimal("0.0000025")
            label = litellm_field_name(name, values.get("tier_threshold_tokens") or latest.tier_threshold_tokens)
            differences.append((label, format_value(old), format_value(new)))
    return differences


def model_prices_import(
    *,
    document,
    source: str,
    effective_from: "datetime | None" = None,
    dry_run: bool = False,
    keep_local_changes: bool = False,
) -> PriceImportReport:
    """Add price versions from a LiteLLM price map (model_prices_and_context_window.json format).

    A model seen for the first time gets a first version; one whose prices or context window
    differ from its newest version gets a new version, effective from `effective_from` (now by
    default; never in the past nor before the version it follows: spend already logged keeps
    its prices). Models the map leaves out are left alone. With keep_local_changes, models whose
    newest version is not from the shipped catalog (changed in the admin or by import_prices)
    are left alone too. All or nothing: an invalid map raises PriceImportError.
    """
    parsed = document_parse(document)
    if parsed.errors:
        raise PriceImportError(parsed.errors)
    now = timezone.now()
    effective_from = effective_from or now
    report = PriceImportReport(effective_from=effective_from, dry_run=dry_run, warnings=parsed.warnings)
    with transaction.atomic():
        latest_by_key = model_price_latest_by_key()
        errors: list[str] = []
        new_rows = []
        for entry in parsed.entries:
            latest = latest_by_key.get(entry.model_key)
            if latest is None:
                report.created.append(entry.model_key)
            else:
                differences = _price_differences(latest, entry.values)
                if not differences:
                    report.unchanged += 1
                    continue
                if keep_local_changes and not latest.source.startswith(DEFAULT_PRICES_SOURCE):
                    report.kept.append(entry.model_key)
                    continue
                if effective_from <= latest.effective_from:
                    errors.append(
                        f"{entry.model_key}: its newest version takes effect {latest.effective_from.isoformat()}; "
                        f"a change must take effect after it, not {effective_from.isoformat()}"
                    )
                    continue
                if effective_from < now:
                    errors.append(f"{entry.model_key}: a price change cannot take effect in the past "
                                  f"({effective_from.isoformat()}): spend already logged keeps its prices")
                    continue
                report.changed.append(PriceChange(entry.model_key, differences))
            new_rows.append(ModelPrice(model_key=entry.model_key, effective_from=effective_from,
                                       extra=entry.extra, source=source[:300], **entry.values))
        if errors:
            raise PriceImportError(errors)
        if dry_run or not new_rows:
            return report
        ModelPrice.objects.bulk_create(new_rows, batch_size=500)
        audit_bulk_created(new_rows)
        invalidation.publish_on_commit({"kind": KIND_PRICES})
    return report


def default_prices_document() -> dict:
    """The price catalog shipped with the gateway (apps/spend/data/prices.json)."""
    path = Path(__file__).resolve().parent / "data" / "prices.json"
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


def default_prices_source(document: dict) -> str:
    compiled = (document.get("_catalog") or {}).get("compiled_on", "")
    return f"{DEFAULT_PRICES_SOURCE} ({compiled})" if compiled else DEFAULT_PRICES_SOURCE


def default_prices_load(*, dry_run: bool = False, effective_from=None) -> PriceImportReport:
    """Bring the shipped catalog in: new models and changed prices, except where an operator
    changed a model's prices (in the admin or by import_prices), which stay theirs."""
    document = default_prices_document()
    return model_prices_import(document=document, source=default_prices_source(document), dry_run=dry_run,
                               effective_from=effective_from, keep_local_changes=True)


def model_price_changed(*, price) -> None:
    """The admin saved or deleted a price version: every process reloads its catalog."""
    invalidation.publish_on_commit({"kind": KIND_PRICES})


