from django.db import models

from apps.core.fields import EncryptedJSONField, EncryptedTextField


class ModelDeployment(models.Model):
    """One upstream model behind a public model name. Deployments sharing a name form a group."""

    class Mode(models.TextChoices):
        CHAT = "chat"
        COMPLETION = "completion"
        EMBEDDING = "embedding"
        RERANK = "rerank"
        MODERATION = "moderation"
        IMAGE_GENERATION = "image_generation"
        AUDIO_SPEECH = "audio_speech"
        AUDIO_TRANSCRIPTION = "audio_transcription"

    class Health(models.TextChoices):
        UNKNOWN = "unknown"
        HEALTHY = "healthy"
        UNHEALTHY = "unhealthy"

    model_name = models.CharField(max_length=200, db_index=True, help_text="The name clients ask for.")
    organization = models.ForeignKey(
        "teams.Organization", on_delete=models.CASCADE, null=True, blank=True, related_name="deployments",
        help_text="Only this organization's keys may use it. Empty: shared by every organization.",
    )
    # LiteLLM's team models (model_info.team_id): only this team's keys may use it, held to the
    # team's own limits on it. The team's organization is the deployment's organization.
    team = models.ForeignKey(
        "teams.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="deployments",
        help_text="Only this team's keys may use it. Empty: every team (of its organization, if any).",
    )
    team_model_rpm_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="The team's requests per minute to this model. Empty: no limit."
    )
    team_model_tpm_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="The team's tokens per minute to this model. Empty: no limit."
    )
    provider = models.CharField(max_length=50, help_text="openai, azure, anthropic, groq, …")
    upstream_model = models.CharField(max_length=300, help_text="The provider's own model name.")
    api_base = models.CharField(max_length=500, blank=True)
    # Either the secret itself or a reference "os.environ/NAME" resolved at load time.
    api_key = EncryptedTextField(blank=True, default="")
    # Secrets beyond one key (aws_secret_access_key, aws_session_token, vertex_credentials),
    # each a value or an `os.environ/NAME` reference.
    secret_params = EncryptedJSONField(blank=True, default=dict)
    api_version = models.CharField(max_length=50, blank=True)
    rpm = models.PositiveIntegerField(null=True, blank=True)
    tpm = models.PositiveIntegerField(null=True, blank=True)
    weight = models.PositiveIntegerField(default=1)
    timeout = models.FloatField(null=True, blank=True, help_text="Seconds; empty uses the default.")
    input_cost_per_token = models.DecimalField(max_digits=20, decimal_places=12, null=True, blank=True)
    output_cost_per_token = models.DecimalField(max_digits=20, decimal_places=12, null=True, blank=True)
    cache_read_input_token_cost = models.DecimalField(
        max_digits=20, decimal_places=12, null=True, blank=True
    )
    extra_params = models.JSONField(default=dict, blank=True, help_text="Other provider parameters.")
    access_groups = models.JSONField(
        default=list, blank=True,
        help_text="Named groups this model belongs to; a key allowed a group may use every model in it.",
    )
    # Routing (apps.routing): request tags this deployment serves ("default": requests
    # without tags), the largest prompt it accepts, and timeouts beyond `timeout`.
    tags = models.JSONField(
        default=list, blank=True,
        help_text='Requests sending tags (metadata.tags) only reach deployments carrying one of them; '
        '"default" marks the deployments serving requests without tags.',
    )
    max_input_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Context window: longer prompts are routed elsewhere. Empty: no check."
    )
    connect_timeout = models.FloatField(null=True, blank=True, help_text="Seconds to connect; empty: the default.")
    stream_timeout = models.FloatField(
        null=True, blank=True,
        help_text="Seconds a stream may take to its first token before failing over; empty: the router's.",
    )
    mode = models.CharField(
        max_length=20, choices=Mode.choices, default=Mode.CHAT,
        help_text="What kind of model this is: decides the request a health check sends.",
    )
    # Written by the health-check task with queryset.update(): no save signal, so the
    # routing caches are not reloaded for it.
    health_status = models.CharField(max_length=10, choices=Health.choices, default=Health.UNKNOWN, editable=False)
    health_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    health_error = models.TextField(blank=True, default="", editable=False)
    health_latency_ms = models.PositiveIntegerField(null=True, blank=True, editable=False)
    is_active = models.BooleanField(default=True)
    managed_by_config = models.BooleanField(
        default=False, help_text="Written by load_config; the next load of the file overwrites it."
    )
    config_id = models.CharField(max_length=200, null=True, blank=True, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model_name", "id"]

    def __str__(self) -> str:
        return f"{self.model_name} → {self.provider}/{self.upstream_model}"

    @property
    def litellm_model(self) -> str:
        return f"{self.provider}/{self.upstream_model}"
