from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "apps.customers"
    label = "customers"
    verbose_name = "End users (customers)"

    def ready(self) -> None:
        from apps.customers import signals  # noqa: F401
