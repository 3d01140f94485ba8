"""Create or update the billed entities' customers and subscriptions in Lago."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.billing.lago import LagoError, LagoUnavailable
from apps.billing.services import lago_customers_sync


class Command(BaseCommand):
    help = (
        "Upsert a Lago customer for every organization (or team, BILLING_ENTITY) with a "
        "lago_external_customer_id, and create its subscription (plan LAGO_PLAN_CODE) if missing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be done; change nothing."
        )

    def handle(self, *args, dry_run=False, **options):
        if not settings.LAGO_API_BASE:
            raise CommandError("LAGO_API_BASE is not set: billing is off.")
        try:
            report = lago_customers_sync(dry_run=dry_run)
        except (LagoError, LagoUnavailable) as exc:
            raise CommandError(f"Lago: {exc}") from None
        for line in report.lines:
            self.stdout.write(line)
        if not report.lines:
            self.stdout.write(f"no {settings.BILLING_ENTITY} has a Lago customer or subscription id")
        if report.errors:
            raise CommandError(f"{report.errors} subscription(s) could not be created")
