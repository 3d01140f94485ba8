from datetime import timedelta
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from apps.core.db_router import replica_reads
from apps.core.large_tables import LargeTablePaginator, RecentValuesFilter
from apps.core.fields import BoundedJSONAdminMixin
from apps.keys.models import VirtualKey
from apps.management.admin_hints import EmptyStateHintMixin
from apps.management.admin_scope import OrganizationScopedAdmin, admin_organization_ids
from apps.providers.models import ModelDeployment
from apps.spend.models import DailySpend, DailyTagSpend, ModelPrice, SpendCounterDrift, SpendLog, SpendReset
from apps.spend.price_format import PRICE_FIELDS
from apps.spend.price_imports import model_price_changed


class UnpricedFilter(admin.SimpleListFilter):
    """The requests whose model had no known price (cost empty), and the estimated ones."""

    title = "cost"
    parameter_name = "cost_status"

    def lookups(self, request, model_admin):
        return SpendLog.CostStatus.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(cost_status=self.value())
        return queryset


class ReadOnlyAdminMixin:
    """Rows made by the gateway's own tasks: looked at, never edited by hand."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReplicaReadsChangelistMixin:
    """A list page that reads its rows, counts, filter choices and date drill-down from the read
    replica when one is configured (apps.core.db_router: a list a moment behind is fine). What the
    staff user may see and do (its organizations, its permissions) is read on the primary first and
    kept on the user for the request. The page is rendered inside the scope, as its rows are fetched
    while the template renders; an action (a POST) stays on the primary."""

    def changelist_view(self, request, extra_context=None):
        if request.method not in ("GET", "HEAD"):
            return super().changelist_view(request, extra_context)
        user = request.user
        admin_organization_ids(user)
        admin_organization_ids(user, writable=True)
        if user.is_active and not user.is_superuser:
            user.get_all_permissions()  # the cache has_perm reads (the menu's links)
        with replica_reads():
            response = super().changelist_view(request, extra_context)
            if callable(getattr(response, "render", None)):  # a TemplateResponse, not a redirect
                response.render()
        return response


@admin.register(SpendLog)
class SpendLogAdmin(ReplicaReadsChangelistMixin, EmptyStateHintMixin, ReadOnlyAdminMixin,
                    OrganizationScopedAdmin):
    """Spend logs are a ledger: looked at and filtered, never edited or deleted by hand
    (retention: manage.py purge_spend_logs)."""

    empty_hint = "No requests logged yet"
    empty_hint_help = ("Each request a key sends to /v1 is logged here, with its tokens and cost, a moment "
                       "after it ends.")

    def empty_hint_links(self, request):
        """The first steps to a logged request, those the staff user may take."""
        links = []
        for model, label in ((VirtualKey, "create a key"), (ModelDeployment, "add a deployment")):
            opts = model._meta
            if self.admin_site.is_registered(model) and \
                    self.admin_site.get_model_admin(model).has_add_permission(request):
                links.append((label, reverse(f"admin:{opts.app_label}_{opts.model_name}_add")))
        return links

    list_display = (
        "start_time",
        "request_id",
        "model",
        "provider",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "cost_shown",
        "latency_ms",
        "is_stream",
        "key_hash_short",
        "team_id",
    )
    # By date with a list filter, not date_hierarchy: its list of years reads every row.
    list_filter = (("start_time", admin.DateFieldListFilter), UnpricedFilter, "status", "is_stream", "cache_hit",
                   ("provider", RecentValuesFilter), ("call_type", RecentValuesFilter), "usage_reported")
    search_fields = ("request_id", "model", "key_hash", "=end_user")
    show_full_result_count = False  # counting a large log table is the slow part
    paginator = LargeTablePaginator

    @admin.display(description="Key")
    def key_hash_short(self, obj: SpendLog) -> str:
        return obj.key_hash[:12] if obj.key_hash else "master"

    @admin.display(description="Cost", ordering="cost")
    def cost_shown(self, obj: SpendLog) -> str:
        if obj.cost_status == SpendLog.CostStatus.UNPRICED:
            return format_html('<strong title="{}">unpriced</strong>', "No price is known for this model: "
                               "add one under Spend › Model prices, or on the deployment.")
        if obj.cost is None:
            return "-"
        cost = f"{obj.cost.normalize():f}"
        return f"~{cost} (estimated)" if obj.cost_status == SpendLog.CostStatus.ESTIMATED else cost


class ModelPriceForm(forms.ModelForm):
    class Meta:
        model = ModelPrice
        exclude = ()

    def clean(self):
        cleaned = super().clean()
        effective_from = cleaned.get("effective_from")
        model_key = cleaned.get("model_key")
        if effective_from and model_key:
            others = ModelPrice.objects.filter(model_key=model_key).exclude(pk=self.instance.pk)
            newest = others.order_by("-effective_from").first()
            if newest is not None and effective_from <= newest.effective_from:
                self.add_error("effective_from", f"{model_key} has a version from "
                               f"{newest.effective_from:%Y-%m-%d %H:%M:%S %Z}: a new one must take effect after it.")
            elif newest is not None and effective_from < timezone.now() - timedelta(minutes=1):
                self.add_error("effective_from", "A price change cannot take effect in the past: "
                               "spend already logged keeps the prices it was charged.")
        return cleaned


@admin.register(ModelPrice)
class ModelPriceAdmin(BoundedJSONAdminMixin, admin.ModelAdmin):
    """The price catalog. A version in force is never edited (spend logs name the version that
    priced them): a change is a new version, effective from now or later."""

    form = ModelPriceForm
    list_display = (
        "model_key",
        "litellm_provider",
        "mode",
        "effective_from",
        "in_force",
        "input_per_million",
        "output_per_million",
        "cache_read_per_million",
        "max_input_tokens",
        "source",
    )
    list_filter = ("litellm_provider", "mode")
    search_fields = ("model_key",)
    date_hierarchy = "effective_from"
    readonly_fields = ("created_at", "new_version")
    fieldsets = (
        (None, {"fields": ("model_key", "litellm_provider", "mode", "effective_from", "new_version")}),
        ("Per token (USD)", {"fields": (
            "input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
            "cache_creation_input_token_cost", "cache_creation_input_token_cost_above_1hr",
            "output_cost_per_reasoning_token",
        )}),
        ("Long-context tier", {"fields": (
            "tier_threshold_tokens", "input_cost_per_token_above_tier", "output_cost_per_token_above_tier",
            "cache_read_input_token_cost_above_tier", "cache_creation_input_token_cost_above_tier",
        )}),
        ("Per image, second, query or character (USD)", {"fields": (
            "input_cost_per_image", "output_cost_per_image", "input_cost_per_second", "output_cost_per_second",
            "input_cost_per_query", "input_cost_per_character",
        )}),
        ("Batch API (USD per token)", {"fields": ("input_cost_per_token_batches", "output_cost_per_token_batches")}),
        ("Context window", {"fields": ("max_input_tokens", "max_output_tokens")}),
        ("More", {"fields": ("extra", "source", "created_at")}),
    )

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.effective_from <= timezone.now():
            editable = {"new_version"}
            return ["new_version", *(f.name for f in self.model._meta.fields if f.name not in editable)]
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        # Only a version not yet in force goes away; the ones that priced requests stay.
        return super().has_delete_permission(request, obj) and (obj is None or obj.effective_from > timezone.now())

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # in-force versions must stay: delete one by one
        return actions

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("effective_from", timezone.now())
        initial.setdefault("source", f"admin: {request.user.get_username()}")
        return initial

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        model_price_changed(price=obj)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        model_price_changed(price=obj)

    def get_queryset(self, request):
        in_force = (
            ModelPrice.objects.filter(model_key=OuterRef("model_key"), effective_from__lte=timezone.now())
            .order_by("-effective_from").values("pk")[:1]
        )
        return super().get_queryset(request).annotate(in_force_pk=Subquery(in_force))

    @admin.display(boolean=True, description="In force")
    def in_force(self, obj: ModelPrice) -> bool:
        return getattr(obj, "in_force_pk", None) == obj.pk

    @staticmethod
    def _per_million(value) -> str:
        return "-" if value is None else f"{(value * 1_000_000).normalize():f}"

    @admin.display(description="Input $/1M", ordering="input_cost_per_token")
    def input_per_million(self, obj: ModelPrice) -> str:
        return self._per_million(obj.input_cost_per_token)

    @admin.display(description="Output $/1M", ordering="output_cost_per_token")
    def output_per_million(self, obj: ModelPrice) -> str:
        return self._per_million(obj.output_cost_per_token)

    @admin.display(description="Cache read $/1M")
    def cache_read_per_million(self, obj: ModelPrice) -> str:
        return self._per_million(obj.cache_read_input_token_cost)

    @admin.display(description="Change")
    def new_version(self, obj: ModelPrice | None) -> str:
        if obj is None or obj.pk is None:
            return "-"
        values = {"model_key": obj.model_key, "litellm_provider": obj.litellm_provider, "mode": obj.mode}
        for name in (*PRICE_FIELDS, "tier_threshold_tokens", "max_input_tokens", "max_output_tokens"):
            value = getattr(obj, name)
            if value is not None:
                values[name] = f"{value.normalize():f}" if hasattr(value, "normalize") else value
        url = reverse("admin:spend_modelprice_add") + "?" + urlencode(values)
        return format_html('<a href="{}">Add a new version from these prices</a> (versions in force are '
                           "kept as they are: the spend they priced names them)", url)


@admin.register(DailySpend)
class DailySpendAdmin(ReplicaReadsChangelistMixin, ReadOnlyAdminMixin, OrganizationScopedAdmin):
    organization_path = "organization_id"
    list_display = ("day", "model", "provider", "requests", "errors", "prompt_tokens", "completion_tokens",
                    "cost", "unpriced_requests", "team_id", "key_id")
    list_filter = ("provider",)
    search_fields = ("model", "key_hash", "=end_user")
    date_hierarchy = "day"
    show_full_result_count = False


@admin.register(DailyTagSpend)
class DailyTagSpendAdmin(ReplicaReadsChangelistMixin, ReadOnlyAdminMixin, OrganizationScopedAdmin):
    organization_path = "organization_id"
    list_display = ("day", "tag", "requests", "cost", "unpriced_requests", "team_id", "key_id")
    search_fields = ("tag",)
    date_hierarchy = "day"
    show_full_result_count = False


@admin.register(SpendCounterDrift)
class SpendCounterDriftAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Budget counters that disagreed with the rollups (reconcile_spend, the beat task)."""

    list_display = ("checked_at", "kind", "entity_id", "entity_name", "counter", "counted", "expected", "drift",
                    "fixed")
    list_filter = ("kind", "counter", "fixed")
    search_fields = ("entity_id", "entity_name")
    date_hierarchy = "checked_at"

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser


@admin.register(SpendReset)
class SpendResetAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Global spend resets (POST /global/spend/reset): who started every budget again, and when."""

    list_display = ("reset_at", "reset_by")
    date_hierarchy = "reset_at"

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser
