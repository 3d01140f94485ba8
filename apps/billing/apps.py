from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "apps.billing"
    label = "billing"

    def ready(self) -> None:
        from apps.billing.partitions import BILLING_EVENT_MONTHS
        from apps.core.partitions import monthly_table_register

        monthly_table_register(BILLING_EVENT_MONTHS)
