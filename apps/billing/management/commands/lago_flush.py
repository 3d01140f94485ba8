"""Send the billing outbox to Lago now, rows still backing off included."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.billing.services import billing_events_send


class Command(BaseCommand):
    help = "Send the pending usage events to Lago now (ignoring retry back-off), and report."

    def add_arguments(self, parser):
        parser.add_argument(
            "--max-batches", type=int, default=None, help="Stop after this many batches of 100."
        )

    def handle(self, *args, max_batches=None, **options):
        if not settings.LAGO_API_BASE:
            raise CommandError("LAGO_API_BASE is not set: billing is off.")
        result = billing_events_send(force=True, max_batches=max_batches, time_budget=None)
        self.stdout.write(
            f"sent {result.sent}, already in Lago {result.duplicates}, dead letters {result.dead}, "
            f"back in the outbox {result.retried} ({result.batches} batches, {result.posts} requests)"
        )
        if result.error:
            raise CommandError(f"stopped: {result.error}")
