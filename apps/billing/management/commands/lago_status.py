"""The billing outbox's state: backlog, oldest pending, last success, dead letters; wallet refresh."""

from datetime import datetime
from datetime import timezone as dt_timezone

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from apps.billing.selectors import billing_outbox_status
from apps.billing.wallets import wallet_store


def _when(moment) -> str:
    if moment is None:
        return "never"
    if isinstance(moment, (int, float)):
        moment = datetime.fromtimestamp(moment, dt_timezone.utc)
    return f"{moment.isoformat(timespec='seconds')} ({(timezone.now() - moment).total_seconds():.0f} s ago)"


class Command(BaseCommand):
    help = "Report the Lago billing outbox: backlog, oldest pending event, last success, dead letters."

    def add_arguments(self, parser):
        parser.add_argument("--dead-letters", type=int, default=10, help="How many dead letters to list.")

    def handle(self, *args, dead_letters=10, **options):
        out = self.stdout.write
        state = f"on, {settings.LAGO_API_BASE}" if settings.LAGO_API_BASE else "off (LAGO_API_BASE unset)"
        out(
            f"billing: {state}; billed entity: {settings.BILLING_ENTITY}; "
            f"event code: {settings.LAGO_API_EVENT_CODE}"
        )
        status = billing_outbox_status(now=timezone.now(), dead_letters=dead_letters)
        out(f"backlog: {status.pending} pending ({status.due} due now, {status.claimed} being sent)")
        out(f"oldest pending: {_when(status.oldest_pending)}")
        out(f"sent: {status.sent}; last success: {_when(status.last_success)}")
        out(f"dead letters: {status.dead}")
        for event in status.dead_letters:
            out(
                f"  #{event.pk} {event.transaction_id} ({event.external_subscription_id}): {event.last_error}"
            )
        if status.dead:
            out("  (send them again with: manage.py lago_replay --all, or --id N)")
        try:
            meta = wallet_store().meta_get()
        except Exception as exc:  # Redis down
            out(f"wallet refresh: unknown ({exc})")
            return
        if meta:
            out(
                f"wallet refresh: last success {_when(meta.get('last_success'))}"
                + (f"; last error: {meta['last_error']}" if meta.get("last_error") else "")
            )
        else:
            out(
                "wallet refresh: no record in this process"
                if not settings.REDIS_MODE
                else "wallet refresh: never"
            )
