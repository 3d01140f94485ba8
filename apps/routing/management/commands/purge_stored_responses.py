from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.core.durations import DurationError, duration_seconds
from apps.routing.services import stored_responses_purge


class Command(BaseCommand):
    help = ("Delete stored /v1/responses older than a duration (default: GATEWAY_RESPONSES_RETENTION), "
            "e.g. --older-than 30d.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than", dest="older_than", help="30d, 12h, 1mo, ...")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted")

    def handle(self, *args, older_than: str | None, dry_run: bool, **options):
        if older_than is None:
            seconds = settings.GATEWAY_RESPONSES_RETENTION
            if not seconds:
                raise CommandError("GATEWAY_RESPONSES_RETENTION is 0 (keep): give --older-than.")
        else:
            try:
                seconds = duration_seconds(older_than)
            except DurationError as exc:
                raise CommandError(f"--older-than: {exc}") from None
        cutoff = timezone.now() - timedelta(seconds=seconds)
        count = stored_responses_purge(older_than=cutoff, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"{verb} {count} stored response(s) created before {cutoff:%Y-%m-%d %H:%M} UTC.")
