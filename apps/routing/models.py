"""The router's settings: router-wide (one row) and per model group.

Read by the request path only through apps.routing.selection.policy's in-process snapshot;
saving either model publishes an invalidation (apps.routing.signals).
"""

from django.core.exceptions import ValidationError
from django.db import models

from apps.routing.selection import policy

STRATEGY_CHOICES = [(name, name) for name in policy.ROUTING_STRATEGIES]


def _validate_model_names(value) -> None:
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise ValidationError("A list of model group names is expected, in the order they are tried.")


def validate_guardrail_names(value) -> None:
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise ValidationError("A list of guardrail names (config.yaml's guardrail_name) is expected.")


def _validate_policy(value, keys: dict) -> None:
    if not isinstance(value, dict):
        raise ValidationError("An object is expected.")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise ValidationError(f"Unknown keys: {', '.join(unknown)}. Known: {', '.join(keys)}.")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value.values()):
        raise ValidationError("Each value must be a whole number ≥ 0.")


def validate_retry_policy(value) -> None:
    _validate_policy(value, policy.RETRY_POLICY_KEYS)


def validate_allowed_fails_policy(value) -> None:
    _validate_policy(value, policy.ALLOWED_FAILS_POLICY_KEYS)


def _validate_aliases(value) -> None:
    if not isinstance(value, dict):
        raise ValidationError('An object is expected: {"alias": "model group"}.')
    for alias, target in value.items():
        if isinstance(target, dict):
            target = target.get("model")
        if not isinstance(target, str) or not target:
            raise ValidationError(f"The alias {alias!r} must name a model group (or {{\"model\": ..., \"hidden\": true}}).")


def _validate_strategy_args(value) -> None:
    if not isinstance(value, dict):
        raise ValidationError("An object is expected.")
    buffer = value.get("lowest_latency_buffer")
    if buffer is not None and (not isinstance(buffer, (int, float)) or buffer < 0):
        raise ValidationError("lowest_latency_buffer must be a number ≥ 0.")


class RouterSettings(models.Model):
    """Router-wide settings (LiteLLM's router_settings); there is one row."""

    routing_strategy = models.CharField(max_length=40, choices=STRATEGY_CHOICES, default=policy.SIMPLE_SHUFFLE)
    routing_strategy_args = models.JSONField(
        default=dict, blank=True, validators=[_validate_strategy_args],
        help_text='For latency-based-routing: {"lowest_latency_buffer": 0.1} (deployments within 10% of '
        "the fastest share the load).",
    )
    num_retries = models.PositiveIntegerField(
        default=policy.DEFAULT_NUM_RETRIES,
        help_text="Retries of a failed request within its model group (another deployment when one is "
        "free, else the same one after a backoff). 400s are never retried.",
    )
    retry_policy = models.JSONField(
        default=dict, blank=True, validators=[validate_retry_policy],
        help_text='Retries per error class, e.g. {"RateLimitErrorRetries": 3, "TimeoutErrorRetries": 1}.',
    )
    retry_after = models.FloatField(
        default=0, help_text="The least number of seconds to wait before retrying the same deployment."
    )
    timeout = models.FloatField(
        null=True, blank=True, help_text="Seconds for a whole answer, for deployments without their own."
    )
    stream_timeout = models.FloatField(
        null=True, blank=True,
        help_text="Seconds to a stream's first token, for deployments without their own; then it fails over.",
    )
    allowed_fails = models.PositiveIntegerField(
        default=policy.DEFAULT_ALLOWED_FAILS,
        help_text="Failures of a deployment within a minute that put it in cooldown (a 429 does at once).",
    )
    allowed_fails_policy = models.JSONField(
        default=dict, blank=True, validators=[validate_allowed_fails_policy],
        help_text='Per error class, e.g. {"TimeoutErrorAllowedFails": 5}.',
    )
    cooldown_time = models.FloatField(
        default=policy.DEFAULT_COOLDOWN_SECONDS,
        help_text="Seconds a failing deployment is left out (a 429's Retry-After when it sends one).",
    )
    disable_cooldowns = models.BooleanField(default=False)
    default_fallbacks = models.JSONField(
        default=list, blank=True, validators=[_validate_model_names],
        help_text="Model groups tried, in order, when a group without fallbacks of its own fails.",
    )
    model_group_alias = models.JSONField(
        default=dict, blank=True, validators=[_validate_aliases],
        help_text='Extra names for model groups: {"gpt-4": "gpt-4o"} or {"gpt-4": {"model": "gpt-4o", '
        '"hidden": true}} (hidden: not listed by /v1/models).',
    )
    managed_by_config = models.BooleanField(
        default=False, help_text="Written by load_config; the next load of a file with router settings overwrites it."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "router settings"
        verbose_name_plural = "router settings"

    def __str__(self) -> str:
        return "Router settings"


class ModelGroupSettings(models.Model):
    """One model group's own routing: its strategy, retries, timeouts and fallbacks.
    Empty fields take the router-wide value."""

    model_name = models.CharField(max_length=200, unique=True, help_text="The model group (public model name).")
    routing_strategy = models.CharField(max_length=40, choices=STRATEGY_CHOICES, blank=True)
    num_retries = models.PositiveIntegerField(null=True, blank=True)
    retry_policy = models.JSONField(default=dict, blank=True, validators=[validate_retry_policy])
    timeout = models.FloatField(null=True, blank=True)
    stream_timeout = models.FloatField(null=True, blank=True)
    allowed_fails = models.PositiveIntegerField(null=True, blank=True)
    cooldown_time = models.FloatField(null=True, blank=True)
    fallbacks = models.JSONField(
        default=list, blank=True, validators=[_validate_model_names],
        help_text="Model groups tried, in order, when this one fails (after its retries).",
    )
    context_window_fallbacks = models.JSONField(
        default=list, blank=True, validators=[_validate_model_names],
        help_text="Larger models tried when the prompt is too long for this group.",
    )
    content_policy_fallbacks = models.JSONField(
        default=list, blank=True, validators=[_validate_model_names],
        help_text="Model groups tried when this group's provider refuses the content.",
    )
    cache_enabled = models.BooleanField(
        null=True, blank=True,
        help_text="The response cache for this group: on, off, or empty for the gateway's choice "
        "(a key's or team's metadata.cache goes first).",
    )
    cache_ttl = models.FloatField(null=True, blank=True, help_text="Seconds its answers stay cached.")
    guardrails = models.JSONField(
        default=list, blank=True, validators=[validate_guardrail_names],
        help_text="Guardrails (config.yaml's guardrail_name) every request to this group goes through.",
    )
    managed_by_config = models.BooleanField(
        default=False, help_text="Written by load_config; the next load of the file overwrites or removes it."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model_name"]
        verbose_name = "model group settings"
        verbose_name_plural = "model group settings"

    def __str__(self) -> str:
        return self.model_name


class StoredResponse(models.Model):
    """A /v1/responses answer kept for GET, input_items and previous_response_id.

    Scoped to its owner: its team's keys when it has a team, else only the key that made it.
    Written off the request path (apps.routing.responses_store's buffer); purged after
    GATEWAY_RESPONSES_RETENTION.
    """

    id = models.CharField(primary_key=True, max_length=128, help_text="resp_...: the upstream's id when native.")
    key_hash = models.CharField(max_length=64, db_index=True, help_text="sha256 of the key that created it.")
    key_id = models.BigIntegerField(null=True, blank=True)
    team_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    organization_id = models.CharField(max_length=64, null=True, blank=True)
    model = models.CharField(max_length=200, help_text="The public model name asked for.")
    deployment_id = models.BigIntegerField(null=True, blank=True, help_text="The deployment that answered.")
    native = models.BooleanField(default=False, help_text="Answered by the upstream's own Responses API.")
    previous_response_id = models.CharField(max_length=128, blank=True, default="")
    input_items = models.JSONField(default=list, help_text="The whole conversation before this answer.")
    output_items = models.JSONField(default=list)
    response = models.JSONField(default=dict, help_text="The response object as the client received it.")
    created_at = models.DateTimeField(db_index=True)
    # A deleted response stays as a tombstone (its content emptied) until the purge: a batch
    # written after the delete (another replica's, still buffered) then cannot bring it back.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "stored response"


class ManagedFile(models.Model):
    """A file uploaded through /v1/files (or a batch's output), owned like a stored response: its
    team's keys when it has a team, else only the key that uploaded it. The id is the upstream's.

    Written off the request path (apps.routing.owned_store's buffer); an upload for a batch
    records the one model group its lines name, the deployment they were rewritten for, and the
    most the batch can cost, which creating the batch reserves.
    """

    id = models.CharField(primary_key=True, max_length=128, help_text="file-...: the upstream's id.")
    key_hash = models.CharField(max_length=64, db_index=True, help_text="sha256 of the key that uploaded it.")
    key_id = models.BigIntegerField(null=True, blank=True)
    team_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    organization_id = models.CharField(max_length=64, null=True, blank=True)
    deployment_id = models.BigIntegerField(null=True, blank=True, help_text="Where the file is stored.")
    purpose = models.CharField(max_length=32)
    filename = models.CharField(max_length=255, blank=True, default="")
    bytes = models.BigIntegerField(default=0)
    model = models.CharField(max_length=200, blank=True, default="", help_text="A batch file's model group.")
    endpoint = models.CharField(max_length=64, blank=True, default="", help_text="A batch file's endpoint.")
    request_count = models.PositiveIntegerField(default=0, help_text="A batch file's lines.")
    max_cost = models.DecimalField(
        max_digits=24, decimal_places=12, null=True, blank=True,
        help_text="A batch file: the most its requests can cost at batch prices (what a batch reserves).",
    )
    batch_id = models.CharField(max_length=128, blank=True, default="", help_text="A batch's output or error file.")
    file = models.JSONField(default=dict, blank=True, help_text="The file object as the upstream answered it.")
    created_at = models.DateTimeField(db_index=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "file"

    def __str__(self) -> str:
        return self.id


class ManagedBatch(models.Model):
    """A /v1/batches job: who owns it, where it runs, what it reserved and, once it ends, what it
    cost. The Celery beat task apps.routing.tasks.batches_poll follows it upstream until then."""

    class Status(models.TextChoices):  # OpenAI's batch statuses
        VALIDATING = "validating"
        FAILED = "failed"
        IN_PROGRESS = "in_progress"
        FINALIZING = "finalizing"
        COMPLETED = "completed"
        EXPIRED = "expired"
        CANCELLING = "cancelling"
        CANCELLED = "cancelled"

    id = models.CharField(primary_key=True, max_length=128, help_text="batch_...: the upstream's id.")
    key_hash = models.CharField(max_length=64, db_index=True)
    key_id = models.BigIntegerField(null=True, blank=True)
    team_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    organization_id = models.CharField(max_length=64, null=True, blank=True)
    user_id = models.CharField(max_length=64, null=True, blank=True)
    deployment_id = models.BigIntegerField(null=True, blank=True)
    model = models.CharField(max_length=200, help_text="The model group the batch's lines name.")
    input_file_id = models.CharField(max_length=128)
    endpoint = models.CharField(max_length=64)
    reservation_id = models.CharField(max_length=64, help_text="The limiter's id of the budget reservation.")
    limit_scopes = models.JSONField(default=list, blank=True, help_text="The scopes the reservation holds.")
    reserved_cost = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.VALIDATING)
    batch = models.JSONField(default=dict, blank=True, help_text="The batch object as the upstream last sent it.")
    created_at = models.DateTimeField(db_index=True)
    polled_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True, db_index=True,
                                      help_text="When its cost was logged and its reservation released.")
    cost = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)

    class Meta:
        verbose_name = "batch"
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return self.id
