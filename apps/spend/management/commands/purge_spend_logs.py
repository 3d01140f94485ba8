from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.core.durations import DurationError, duration_seconds
from apps.spend.services import spend_logs_purge


class Command(BaseCommand):
    help = "Delete spend logs older than a duration (retention), e.g. --older-than 90d."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, dest="older_than", help="30d, 12h, 1mo, ...")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted")

    def handle(self, *args, older_than: str, dry_run: bool, **options):
        try:
            cutoff = timezone.now() - timedelta(seconds=duration_seconds(older_than))
        except DurationError as exc:
            raise CommandError(f"--older-than: {exc}") from None
        count = spend_logs_purge(older_than=cutoff, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"{verb} {count} spend log(s) that started before {cutoff:%Y-%m-%d %H:%M} UTC.")
