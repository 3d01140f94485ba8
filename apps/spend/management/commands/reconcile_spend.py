from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from apps.spend.reconciliation import spend_counters_reconcile


class Command(BaseCommand):
    help = (
        "Check the budget spend counters (the database's and, with Redis, the limiter's) against the "
        "daily rollups and report each drift; --fix sets drifted counters to what the rollups say. "
        "Exits with status 1 when a drift is found (for monitoring), unless --fix."
    )

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="Set drifted counters to what the rollups say")
        parser.add_argument("--all", action="store_true", dest="everyone",
                            help="Every key, user, team and organization, not only those with a budget")
        parser.add_argument("--tolerance", help="USD; smaller differences are not drift (default: the setting)")

    def handle(self, *args, fix: bool, everyone: bool, tolerance: str | None, **options):
        try:
            tolerance_usd = Decimal(tolerance) if tolerance is not None else None
        except InvalidOperation:
            raise CommandError(f"--tolerance: expected a number of USD, got {tolerance!r}") from None
        report = spend_counters_reconcile(fix=fix, tolerance=tolerance_usd, everyone=everyone)
        for drift in report.drifts:
            period = drift.period_start.isoformat() if drift.period_start else "no period"
            self.stdout.write(
                f"{drift.kind:<12} {drift.entity_id:<36} {drift.counter:<8} counted {drift.counted:.10f}  "
                f"rollups {drift.expected:.10f}  drift {drift.drift:+.10f}  ({period}){'  fixed' if drift.fixed else ''}"
            )
        limiter = "database and limiter" if report.limiter_checked else "database (no Redis: limiter not checked)"
        self.stdout.write(f"Checked {report.checked} entit{'y' if report.checked == 1 else 'ies'} ({limiter}): "
                          f"{len(report.drifts)} drift(s){' fixed' if fix and report.drifts else ''}.")
        if report.drifts and not fix:
            raise SystemExit(1)
