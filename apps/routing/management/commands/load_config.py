from django.core.management.base import BaseCommand, CommandError

from apps.providers.config import ConfigError, config_read
from apps.routing.services import gateway_config_apply


class Command(BaseCommand):
    help = "Load a LiteLLM-style config.yaml: upsert its model_list as deployments."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path of the config.yaml")
        parser.add_argument("--strict", action="store_true",
                            help="Refuse the file if it has keys this gateway does not act on")

    def handle(self, *args, file: str, strict: bool = False, **options):
        try:
            config = config_read(file)
        except ConfigError as exc:
            raise CommandError(f"{file}: {exc}. Nothing was changed.") from None
        for line in config.ignored:
            self.stderr.write(f"  not acted on {line}")
        if strict and config.ignored:
            raise CommandError(
                f"{file}: {len(config.ignored)} key(s) this gateway does not act on (listed above); "
                "remove them or load without --strict. Nothing was changed."
            )
        report = gateway_config_apply(config=config)
        for label in report.created:
            self.stdout.write(f"  created      {label}")
        for label in report.updated:
            self.stdout.write(f"  updated      {label}")
        for label in report.deactivated:
            self.stdout.write(f"  deactivated  {label}")
        self.stdout.write(self.style.SUCCESS(f"{file}: {report.summary()}."))
        if config.master_key:
            self.stdout.write(
                "general_settings.master_key is applied by the server processes that start with "
                "GATEWAY_CONFIG pointing at this file (unless GATEWAY_MASTER_KEY is set)."
            )
