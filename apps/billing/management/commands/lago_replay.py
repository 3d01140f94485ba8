"""Put billing dead letters back in the outbox (after fixing what Lago refused)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.billing.services import billing_events_replay, billing_events_send


class Command(BaseCommand):
    help = "Send billing dead letters again: --id N (repeatable) or --all; --send delivers them at once."

    def add_arguments(self, parser):
        parser.add_argument(
            "--id", type=int, action="append", dest="ids", default=[], help="A dead letter's id."
        )
        parser.add_argument("--all", action="store_true", help="Every dead letter.")
        parser.add_argument("--send", action="store_true", help="Send them now rather than at the next beat.")

    def handle(self, *args, ids=(), all=False, send=False, **options):
        if not ids and not all:
            raise CommandError("name dead letters with --id N, or --all")
        count = billing_events_replay(ids=list(ids), all_dead=all)
        self.stdout.write(f"{count} dead letter(s) back in the outbox")
        if send and count:
            if not settings.LAGO_API_BASE:
                raise CommandError("LAGO_API_BASE is not set: billing is off.")
            result = billing_events_send(force=True, time_budget=None)
            self.stdout.write(
                f"sent {result.sent}, already in Lago {result.duplicates}, "
                f"dead letters {result.dead}, back in the outbox {result.retried}"
            )
            if result.error:
                raise CommandError(f"stopped: {result.error}")
