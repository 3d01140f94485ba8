"""The admin's spend report: one organization's or team's spend, day by day, from the daily rollups.

SpendReportAdminMixin gives a ModelAdmin a `<id>/spend-report/` page, a "Spend report" button on
its change page and a link in its changelist; the object is looked up through the admin's own
(organization-scoped) queryset and view permission, so the report is refused exactly where the
change page is. The numbers come from apps.spend.selectors over DailySpend, read from the read
replica when one is configured (apps.core.db_router); the object and the permission on the primary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from apps.core.db_router import replica_reads
from apps.spend.rollups import utc_today
from apps.spend.selectors import daily_spend_in_range, spend_report

DEFAULT_REPORT_DAYS = 30
# One bar per day: a longer range makes an unreadable chart and a heavy query.
MAX_REPORT_DAYS = 366
TOP_LIMIT = 10


class SpendReportRangeForm(forms.Form):
    """The report's date range (UTC days, both included); empty fields mean the last 30 days."""

    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}),
                            input_formats=["%Y-%m-%d"])
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}),
                          input_formats=["%Y-%m-%d"])

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        end = cleaned.get("end") or utc_today()
        start = cleaned.get("start") or end - timedelta(days=DEFAULT_REPORT_DAYS - 1)
        if start > end:
            raise forms.ValidationError("The start date must be on or before the end date.")
        if (end - start).days + 1 > MAX_REPORT_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_REPORT_DAYS} days.")
        cleaned["start"], cleaned["end"] = start, end
        return cleaned


@dataclass(frozen=True)
class SpendReport:
    start: date
    end: date
    totals: dict
    days: list[dict]
    top_keys: list[dict]
    top_models: list[dict]
    model_errors: list[dict]
    unpriced: list[dict]

    def chart_data(self) -> dict:
        """What static/spend/report.js draws: UTC midnights (seconds) and one value per day."""
        days = self.days
        return {
            "x": [int(datetime.combine(day["day"], time.min, tzinfo=timezone.utc).timestamp())
                  for day in days],
            # None: a gap, not a zero (a day of unpriced requests only; a rate of no requests)
            "spend": [None if day["spend"] is None else float(day["spend"]) for day in days],
            "requests": [day["requests"] for day in days],
            "errors": [day["errors"] for day in days],
            "error_rate": [round(day["error_rate"] * 100, 2) if day["requests"] else None for day in days],
        }


def _unknown_spend_as_empty(rows: list[dict]) -> list[dict]:
    """A row made only of unpriced requests has no known spend: show it empty, never $0."""
    for row in rows:
        if row["requests"] and row["unpriced_requests"] == row["requests"]:
            row["spend"] = None
    return rows


def _with_error_percent(rows: list[dict]) -> list[dict]:
    for row in rows:
        row["error_percent"] = round(row["error_rate"] * 100, 1)
    return rows


def _every_day(rows: list[dict], start: date, end: date) -> list[dict]:
    """One row per day of the range, days without traffic as zeros (a chart needs them)."""
    by_day = {date.fromisoformat(row["day"]): row for row in rows}
    days = []
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        row = by_day.get(day)
        days.append({
            "day": day,
            "requests": row["requests"] if row else 0,
            "errors": row["errors"] if row else 0,
            "error_rate": row["error_rate"] if row else 0.0,
            "spend": row["spend"] if row else 0,
            "unpriced_requests": row["unpriced_requests"] if row else 0,
        })
    return _with_error_percent(_unknown_spend_as_empty(days))


def spend_report_build(*, scope: Q, start: date, end: date) -> SpendReport:
    """Everything the report page shows for the rollups inside `scope` from `start` to `end`."""
    rows = daily_spend_in_range(scope=scope, start_date=start, end_date=end)
    totals = spend_report(rows=rows, group_by=[])
    top_keys = spend_report(rows=rows, group_by=["key"], order_by="-spend", limit=TOP_LIMIT)
    top_models = spend_report(rows=rows, group_by=["model"], order_by="-spend", limit=TOP_LIMIT)
    # Every model's rows, not only the rows with errors: the rate is over all its requests.
    models_by_errors = spend_report(rows=rows, group_by=["model"], order_by="-errors")
    unpriced = spend_report(rows=rows.filter(unpriced_requests__gt=0), group_by=["model", "provider"],
                            order_by="-unpriced_requests")
    return SpendReport(
        start=start,
        end=end,
        totals=_with_error_percent(_unknown_spend_as_empty(totals))[0],
        days=_every_day(spend_report(rows=rows, group_by=["day"]), start, end),
        top_keys=_unknown_spend_as_empty(top_keys),
        top_models=_with_error_percent(_unknown_spend_as_empty(top_models)),
        model_errors=_with_error_percent([row for row in models_by_errors if row["errors"]]),
        unpriced=unpriced,
    )


class SpendReportAdminMixin:
    """Adds the spend report page to an organization-scoped ModelAdmin. Subclasses say which
    rollups belong to an object (spend_report_scope)."""

    change_form_template = "admin/spend/change_form_with_report.html"

    def spend_report_scope(self, obj) -> Q:
        raise NotImplementedError

    def get_urls(self):
        opts = self.model._meta
        report = path(
            "<path:object_id>/spend-report/",
            self.admin_site.admin_view(self.spend_report_view),
            name=f"{opts.app_label}_{opts.model_name}_spend_report",
        )
        return [report, *super().get_urls()]

    @admin.display(description="Spend report")
    def spend_report_link(self, obj):
        opts = self.model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_spend_report", args=[quote(obj.pk)])
        return format_html('<a href="{}">Report</a>', url)

    def spend_report_view(self, request, object_id: str):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:  # not there, or outside the user's organizations: the scoped queryset hides it
            raise Http404(f"No {self.model._meta.verbose_name} with id {object_id!r}.")
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        form = SpendReportRangeForm(request.GET)  # empty: the last 30 days
        report = None
        if form.is_valid():
            start, end = form.cleaned_data["start"], form.cleaned_data["end"]
            scope = self.spend_report_scope(obj)
            with replica_reads():
                report = spend_report_build(scope=scope, start=start, end=end)
            # Shown again with the range used, the defaults filled in.
            form = SpendReportRangeForm({"start": start.isoformat(), "end": end.isoformat()})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": obj,
            "title": f"Spend report: {obj}",
            "form": form,
            "report": report,
            "chart_data": report.chart_data() if report else None,
        }
        return TemplateResponse(request, "admin/spend/spend_report.html", context)
