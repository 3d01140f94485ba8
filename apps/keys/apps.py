from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "apps.keys"
    label = "keys"
    verbose_name = "Virtual keys"

    def ready(self) -> None:
        from apps.keys import signals  # noqa: F401
