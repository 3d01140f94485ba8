from datetime import timezone as dt_timezone
from functools import partial

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class SpendLog(models.Model):
    """One request through the gateway: who, which model, tokens, cost, outcome."""

    class Status(models.TextChoices):
        SUCCESS = "success", "Success"
        ERROR = "error", "Error"
        CANCELLED = "cancelled", "Client disconnected"

    class CostStatus(models.TextChoices):
        PRICED = "priced", "Priced from the provider's usage"
        ESTIMATED = "estimated", "Estimated (no usage reported: tokens counted by the gateway)"
        UNPRICED = "unpriced", "Unpriced (no known price: cost empty)"
        NO_USAGE = "no_usage", "Nothing used"

    request_id = models.CharField(max_length=64, unique=True)
    # Plain ids, not foreign keys: a log outlives the key, team or deployment it names,
    # and the batch writer need not look anything up.
    key = models.ForeignKey(
        "keys.VirtualKey", on_delete=models.SET_NULL, null=True, blank=True, db_constraint=False,
        related_name="+",
    )
    key_hash = models.CharField(max_length=64, blank=True, db_index=True)
    team = models.ForeignKey(
        "teams.Team", on_delete=models.SET_NULL, null=True, blank=True, db_constraint=False,
        related_name="+",
    )
    organization = models.ForeignKey(
        "teams.Organization", on_delete=models.SET_NULL, null=True, blank=True,
        db_constraint=False, related_name="+",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        db_constraint=False, related_name="+",
    )
    call_type = models.CharField(max_length=32)
    model = models.CharField(max_length=200, help_text="The public model name asked for.")
    deployment = models.ForeignKey(
        "providers.ModelDeployment", on_delete=models.SET_NULL, null=True, blank=True,
        db_constraint=False, related_name="+",
    )
    provider = models.CharField(max_length=50, blank=True)
    upstream_model = models.CharField(max_length=300, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    usage_reported = models.BooleanField(
        default=True, help_text="False when the provider sent no usage (e.g. an interrupted stream)."
    )
    # Empty when no price is known: never recorded as a misleading zero.
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_type = models.CharField(max_length=100, blank=True)
    is_stream = models.BooleanField(default=False)
    latency_ms = models.PositiveIntegerField(default=0)
    start_time = models.DateTimeField(db_index=True)
    end_time = models.DateTimeField()
    cost_status = models.CharField(
        max_length=16, choices=CostStatus.choices, default=CostStatus.PRICED,
        help_text="How the cost was had; 'unpriced' requests used tokens of a model with no known price.",
    )
    price_version = models.CharField(
        max_length=255, blank=True,
        help_text="The prices used: the catalog version (model@effective date) and/or deployment:ID "
        "when the deployment's own prices overrode it.",
    )

    class Meta:
        ordering = ["-start_time"]
        indexes = [
            models.Index(fields=["key", "start_time"]),
            models.Index(fields=["team", "start_time"]),
            models.Index(fields=["organization", "start_time"]),
            # Unpriced requests are rare and looked for (admin filter, metrics): a small partial index.
            models.Index(fields=["start_time"], condition=Q(cost_status="unpriced"), name="spendlog_unpriced_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.status}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


PriceField = partial(models.DecimalField, max_digits=24, decimal_places=15, null=True, blank=True)


class ModelPrice(models.Model):
    """One version of a model's prices, in force from `effective_from` until the next version's.

    Prices are in USD per token (per image, second or query where named so), as in LiteLLM's
    model_prices_and_context_window.json, whose keys name the models: "gpt-4o",
    "gemini/gemini-2.5-flash", "anthropic.claude-3-5-sonnet-20240620-v1:0". A price change is a
    new version: past spend keeps the version it was priced with (SpendLog.price_version).
    """

    model_key = models.CharField(max_length=200, help_text="The model as LiteLLM's price map names it.")
    litellm_provider = models.CharField(max_length=64, blank=True, db_index=True)
    mode = models.CharField(max_length=32, blank=True, help_text="chat, embedding, rerank, ...")
    effective_from = models.DateTimeField(default=timezone.now)

    input_cost_per_token = PriceField()
    output_cost_per_token = PriceField()
    cache_read_input_token_cost = PriceField()
    cache_creation_input_token_cost = PriceField(help_text="Cache writes kept 5 minutes (the default).")
    cache_creation_input_token_cost_above_1hr = PriceField(help_text="Cache writes kept one hour.")
    output_cost_per_reasoning_token = PriceField(help_text="Empty: reasoning tokens cost the output price.")
    tier_threshold_tokens = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Above this many prompt tokens, the tier prices below apply to every token of the "
        "request (LiteLLM's *_above_200k_tokens).",
    )
    input_cost_per_token_above_tier = PriceField()
    output_cost_per_token_above_tier = PriceField()
    cache_read_input_token_cost_above_tier = PriceField()
    cache_creation_input_token_cost_above_tier = PriceField()
    input_cost_per_image = PriceField()
    output_cost_per_image = PriceField()
    input_cost_per_second = PriceField()
    output_cost_per_second = PriceField()
    input_cost_per_query = PriceField(help_text="Rerank: per search unit.")

    max_input_tokens = models.PositiveIntegerField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    extra = models.JSONField(default=dict, blank=True, help_text="LiteLLM's other fields, kept as given.")
    source = models.CharField(max_length=300, blank=True, help_text="Where this version came from.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_key", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["model_key", "effective_from"], name="modelprice_key_effective_uniq"),
        ]

    def __str__(self) -> str:
        return self.version

    @property
    def version(self) -> str:
        """What a spend log records: the model key and the moment this version took effect."""
        return price_version_label(self.model_key, self.effective_from)


def price_version_label(model_key: str, effective_from) -> str:
    """"gpt-4o@2025-06-01T00:00:00Z" (with microseconds only where the moment has them)."""
    moment = effective_from.astimezone(dt_timezone.utc)
    when = moment.strftime("%Y-%m-%dT%H:%M:%S.%f" if moment.microsecond else "%Y-%m-%dT%H:%M:%S")
    return f"{model_key}@{when}Z"
