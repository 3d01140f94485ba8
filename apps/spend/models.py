from django.conf import settings
from django.db import models


class SpendLog(models.Model):
    """One request through the gateway: who, which model, tokens, cost, outcome."""

    class Status(models.TextChoices):
        SUCCESS = "success", "Success"
        ERROR = "error", "Error"
        CANCELLED = "cancelled", "Client disconnected"

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

    class Meta:
        ordering = ["-start_time"]
        indexes = [
            models.Index(fields=["key", "start_time"]),
            models.Index(fields=["team", "start_time"]),
            models.Index(fields=["organization", "start_time"]),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.status}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
