from django.core.management.base import BaseCommand

from apps.spend.management.commands._prices import effective_from_option, import_errors, price_map_read
from apps.spend.price_imports import PriceImportError, model_prices_import


class Command(BaseCommand):
    help = (
        "Import prices from a LiteLLM model_prices_and_context_window.json (a file or an http(s) URL): "
        "new models get a first price version, changed prices a new version effective from now "
        "(or --effective-from); spend already logged keeps its prices. Reports what changed; an "
        "invalid map changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("location", metavar="FILE_OR_URL", help="Path or http(s) URL of the price map")
        parser.add_argument("--effective-from", help="ISO date-time the new versions take effect (default: now)")
        parser.add_argument("--dry-run", action="store_true", help="Report what would change; change nothing")

    def handle(self, *args, location: str, effective_from=None, dry_run=False, **options):
        document = price_map_read(location)
        try:
            report = model_prices_import(
                document=document,
                source=f"import: {location}"[:300],
                effective_from=effective_from_option(effective_from),
                dry_run=dry_run,
            )
        except PriceImportError as exc:
            raise import_errors(location, exc.errors) from None
        for line in report.lines():
            self.stdout.write(line)
        if dry_run:
            status = "dry run, nothing was changed"
        else:
            status = "imported" if report.has_changes else "nothing to change"
        self.stdout.write(self.style.SUCCESS(f"{location}: {status}."))
