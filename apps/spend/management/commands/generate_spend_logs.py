"""Fill the database with synthetic spend logs for a capacity test (apps.spend.synthetic)."""

from django.core.management.base import BaseCommand, CommandError

from apps.spend.models import SpendLog
from apps.spend.synthetic import MAX_LOGS, spend_logs_generate, synthetic_world_create


class Command(BaseCommand):
    help = ("Write COUNT synthetic spend logs over the last DAYS days, for new synthetic organizations, "
            "teams and keys. Refuses a database that already holds spend logs unless --append.")

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=1_000_000, help=f"Logs to write (at most {MAX_LOGS:,})")
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--organizations", type=int, default=20)
        parser.add_argument("--teams-per-organization", type=int, default=5)
        parser.add_argument("--keys-per-team", type=int, default=5)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--append", action="store_true", help="Write even if the database has spend logs")

    def handle(self, *args, count, days, organizations, teams_per_organization, keys_per_team, seed, append,
               **options):
        if not 0 < count <= MAX_LOGS:
            raise CommandError(f"--count must be between 1 and {MAX_LOGS:,}.")
        if not append and SpendLog.objects.exists():
            raise CommandError("This database already holds spend logs: use a database of its own, or --append.")
        keys = synthetic_world_create(organizations=organizations, teams_per_organization=teams_per_organization,
                                      keys_per_team=keys_per_team, seed=seed)
        step = max(count // 20, 1)

        def progress(written: int, seconds: float) -> None:
            if written % step < 20_000 or written == count:
                self.stdout.write(f"  {written:,} logs ({seconds:.0f} s, {written / max(seconds, 1e-9):,.0f}/s)")

        written = spend_logs_generate(count=count, days=days, keys=keys, seed=seed, progress=progress)
        self.stdout.write(self.style.SUCCESS(
            f"{written:,} spend logs written for {len(keys)} keys. Rebuild the rollups to see them in "
            f"reports: manage.py rebuild_rollups --since <the first day>"))
