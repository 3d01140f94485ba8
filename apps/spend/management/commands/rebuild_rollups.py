from datetime import date

from django.core.management.base import BaseCommand, CommandError

from apps.core.db_router import replica_reads
from apps.spend.rollups import daily_spend_rebuild


def _date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{name}: expected a date as YYYY-MM-DD, got {value!r}") from None


class Command(BaseCommand):
    help = (
        "Rebuild the daily spend rollups from the spend logs, from --since (a UTC date) to --until "
        "(default today). Days whose logs were purged keep their rollups unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, help="The first UTC day, YYYY-MM-DD")
        parser.add_argument("--until", help="The last UTC day, YYYY-MM-DD (default: today)")
        parser.add_argument("--force", action="store_true",
                            help="Rebuild days whose logs were purged too (their spend then leaves the rollups)")

    def handle(self, *args, since: str, until: str | None, force: bool, **options):
        first = _date(since, "--since")
        last = _date(until, "--until") if until else None
        if last is not None and last < first:
            raise CommandError("--until is before --since")
        with replica_reads():  # the logs from the read replica, if any (apps.spend.rollups)
            results = daily_spend_rebuild(since=first, until=last, force=force)
        for result in results:
            if result.kept_because_purged:
                self.stdout.write(f"{result.day}  kept: its rollup counts more requests than its logs still hold "
                                  f"({result.logs} now); --force rebuilds it from what is left")
            else:
                self.stdout.write(f"{result.day}  {result.logs} request(s) -> {result.rows} row(s)")
        rebuilt = sum(1 for r in results if not r.kept_because_purged)
        self.stdout.write(f"Rebuilt {rebuilt} day(s)" + (f", kept {len(results) - rebuilt}" if rebuilt < len(results)
                                                         else "") + ".")
