from django.db import models


class AuditLog(models.Model):
    """One change to the gateway's configuration: who made it, to what, how, from where.

    Written by apps.core.audit in the same transaction as the change (a change that rolls back
    leaves no entry). Append-only: an entry is never updated; only the retention purge deletes.
    """

    class Action(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        DELETE = "delete"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=255, help_text="master_key, key:<hash prefix>, user:<name>, "
                             "admin:<name>, command:<name> or system.")
    via = models.CharField(max_length=32, help_text="management_api, admin, command or system.")
    action = models.CharField(max_length=8, choices=Action.choices)
    object_type = models.CharField(max_length=64, db_index=True, help_text="app_label.model")
    object_id = models.CharField(max_length=64, db_index=True)
    object_repr = models.CharField(max_length=255, blank=True)
    organization_id = models.CharField(max_length=64, blank=True, default="", db_index=True,
                                       help_text="The organization the object belongs to (empty: the gateway's).")
    changes = models.JSONField(default=dict, blank=True,
                               help_text='{"field": [before, after]}; secrets are redacted.')
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.object_type} {self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Audit log entries are never changed.")
        super().save(*args, **kwargs)
