from django.core.management.base import BaseCommand, CommandError

from apps.spend.management.commands._prices import effective_from_option, import_errors
from apps.spend.price_imports import PriceImportError, default_prices_load


class Command(BaseCommand):
    help = (
        "Load the price catalog shipped with the gateway (apps/spend/data/prices.json): models it "
        "adds get a first version, prices it changed a new version effective from now. Models whose "
        "prices were changed here (in the admin or by import_prices) are left alone. `migrate` runs "
        "this by itself on a database without any price."
    )

    def add_arguments(self, parser):
        parser.add_argument("--effective-from", help="ISO date-time the new versions take effect (default: now)")
        parser.add_argument("--dry-run", action="store_true", help="Report what would change; change nothing")

    def handle(self, *args, effective_from=None, dry_run=False, **options):
        try:
            report = default_prices_load(dry_run=dry_run, effective_from=effective_from_option(effective_from))
        except PriceImportError as exc:
            raise import_errors("apps/spend/data/prices.json", exc.errors) from None
        except (OSError, ValueError) as exc:
            raise CommandError(f"the shipped price catalog could not be read: {exc}") from None
        for line in report.lines():
            self.stdout.write(line)
        if dry_run:
            status = "dry run, nothing was changed"
        else:
            status = "loaded" if report.has_changes else "up to date"
        self.stdout.write(self.style.SUCCESS(f"Default price catalog: {status}."))
