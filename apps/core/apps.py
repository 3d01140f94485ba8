from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.core.audit import AUDIT_LOG_MONTHS, audit_receivers_connect
        from apps.core.partitions import monthly_table_register

        audit_receivers_connect()
        monthly_table_register(AUDIT_LOG_MONTHS)
