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
    # The tenant's own customer the request was made for (the OpenAI `user` field), as sent: an
    # end user of the request's organization (apps.customers). Empty when the client named none.
    end_user = models.CharField(max_length=255, blank=True)
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
    # What the client sent as `metadata` (and `tags`), bounded in size; shown as LiteLLM's
    # spend-log metadata next to what the gateway knows.
    metadata = models.JSONField(default=dict, blank=True)
    # The request's messages and the answer: only for keys and teams that opted in
    # (store_prompts); empty otherwise.
    messages = models.JSONField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True)
    cache_hit = models.BooleanField(default=False, help_text="Answered by the response cache: no upstream call.")
    saved_cost = models.DecimalField(
        max_digits=20, decimal_places=10, null=True, blank=True,
        help_text="A cache hit: what the upstream call would have cost (its cost is what the tenant is charged).",
    )

    class Meta:
        ordering = ["-start_time"]
        indexes = [
            models.Index(fields=["key", "start_time"]),
            models.Index(fields=["team", "start_time"]),
            models.Index(fields=["organization", "start_time"]),
            # Most requests name no end user: only those that do are indexed.
            models.Index(fields=["end_user", "start_time"], condition=~Q(end_user=""), name="spendlog_end_user_idx"),
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
    input_cost_per_character = PriceField(help_text="Text to speech: per character of input.")
    input_cost_per_token_batches = PriceField(help_text="Batch API: per input token.")
    output_cost_per_token_batches = PriceField(help_text="Batch API: per output token.")

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


class DailySpend(models.Model):
    """Spend logs added up per UTC day, organization, team, user, key, end user, model and provider.

    Reports and reconciliation read these rather than the logs: a day's rows are rebuilt
    whole from its logs (apps.spend.rollups), so re-running a day gives the same rows, and
    they outlive the logs' retention. Ids are plain values, not foreign keys: a rollup
    outlives the key, team or user it names.
    """

    day = models.DateField()
    organization_id = models.UUIDField(null=True, blank=True)
    team_id = models.UUIDField(null=True, blank=True)
    user_id = models.IntegerField(null=True, blank=True)
    key_id = models.IntegerField(null=True, blank=True)
    key_hash = models.CharField(max_length=64, blank=True)
    # The request's end user (SpendLog.end_user), for spend per customer; empty when none was named.
    end_user = models.CharField(max_length=255, blank=True, default="")
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=50, blank=True)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0, help_text="Requests that ended in an error.")
    cancelled = models.PositiveIntegerField(default=0, help_text="Requests the client walked away from.")
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=24, decimal_places=10, default=0,
                               help_text="USD: the priced and estimated requests' cost.")
    unpriced_requests = models.PositiveIntegerField(default=0, help_text="Tokens used without a known price.")
    estimated_requests = models.PositiveIntegerField(default=0, help_text="Tokens counted by the gateway.")

    class Meta:
        ordering = ["-day", "model"]
        indexes = [
            models.Index(fields=["day"]),
            models.Index(fields=["organization_id", "day"]),
            models.Index(fields=["team_id", "day"]),
            models.Index(fields=["key_id", "day"]),
            models.Index(fields=["user_id", "day"]),
        ]
        verbose_name_plural = "daily spend"

    def __str__(self) -> str:
        return f"{self.day} {self.model} ${self.cost}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class HourlySpend(models.Model):
    """Spend logs added up per UTC hour and organization: requests, errors and cost of the last
    day hour by hour (the admin's dashboard), without reading the logs. Built with DailySpend,
    day by day, by the same rollup (apps.spend.rollups)."""

    hour = models.DateTimeField()
    organization_id = models.UUIDField(null=True, blank=True)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=24, decimal_places=10, default=0)

    class Meta:
        ordering = ["-hour"]
        indexes = [models.Index(fields=["hour"]), models.Index(fields=["organization_id", "hour"])]
        verbose_name_plural = "hourly spend"

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h ${self.cost}"


TAG_MAX_LENGTH = 255  # longer request tags are cut to this in the tag rollup


class DailyTagSpend(models.Model):
    """Spend logs added up per UTC day, request tag, organization, team, user and key: what
    LiteLLM's spend-per-tag routes read (its DailyTagSpend view), here a table.

    A request with two tags counts in both tags' rows. Rebuilt with DailySpend, day by day, by
    the same rollup (apps.spend.rollups); the ids are the fields spend scopes filter on.
    """

    day = models.DateField()
    tag = models.CharField(max_length=TAG_MAX_LENGTH)
    organization_id = models.UUIDField(null=True, blank=True)
    team_id = models.UUIDField(null=True, blank=True)
    user_id = models.IntegerField(null=True, blank=True)
    key_id = models.IntegerField(null=True, blank=True)
    requests = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=24, decimal_places=10, default=0,
                               help_text="USD: the priced and estimated requests' cost.")
    unpriced_requests = models.PositiveIntegerField(default=0, help_text="Tokens used without a known price.")

    class Meta:
        ordering = ["-day", "tag"]
        indexes = [
            models.Index(fields=["day"]),
            models.Index(fields=["tag", "day"]),
        ]
        verbose_name_plural = "daily tag spend"

    def __str__(self) -> str:
        return f"{self.day} {self.tag} ${self.cost}"


class SpendRollupDay(models.Model):
    """One UTC day's rollup: when it was last built and from how many logs. Its row is
    locked while the day is rebuilt, so two workers never build the same day at once."""

    day = models.DateField(unique=True)
    rolled_at = models.DateTimeField(null=True, blank=True)
    logs = models.PositiveIntegerField(default=0)
    # Logs of this day were written after its last rebuild (a replay after a long outage):
    # the beat task rebuilds it on its next run.
    stale = models.BooleanField(default=False)

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"{self.day} ({self.logs} logs)"


class SpendReset(models.Model):
    """A global spend reset (LiteLLM's POST /global/spend/reset): every budget's spend started
    again from zero at `reset_at`. The spend logs and rollups are kept; reconciliation counts a
    budget's spend from the last reset on, so the reset is not reported as drift."""

    reset_at = models.DateTimeField(default=timezone.now, db_index=True)
    reset_by = models.CharField(max_length=255, blank=True, help_text="Who asked for it.")

    class Meta:
        ordering = ["-reset_at"]

    def __str__(self) -> str:
        return f"spend reset at {self.reset_at:%Y-%m-%d %H:%M:%S} by {self.reset_by or '?'}"


class SpendCounterDrift(models.Model):
    """A budget spend counter that disagreed with the spend logs' rollups when reconciled."""

    class Counter(models.TextChoices):
        DATABASE = "database", "Database (the entity's spend)"
        LIMITER = "limiter", "Limiter (the shared counter budgets are enforced with)"

    checked_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=16, help_text="key, team, organization or user")
    entity_id = models.CharField(max_length=64)
    entity_name = models.CharField(max_length=255, blank=True)
    counter = models.CharField(max_length=16, choices=Counter.choices)
    period_start = models.DateTimeField(null=True, blank=True, help_text="Empty: a budget with no period.")
    expected = models.DecimalField(max_digits=24, decimal_places=10, help_text="What the rollups add up to.")
    counted = models.DecimalField(max_digits=24, decimal_places=10, help_text="What the counter held.")
    drift = models.DecimalField(max_digits=24, decimal_places=10, help_text="counted - expected")
    fixed = models.BooleanField(default=False, help_text="The counter was set to what the rollups say.")

    class Meta:
        ordering = ["-checked_at", "kind", "entity_id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.entity_id} {self.counter}: {self.drift:+}"
