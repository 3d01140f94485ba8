from django.core.management.base import BaseCommand

from apps.routing.batch_settlement import batches_poll


class Command(BaseCommand):
    help = ("Ask the upstreams for every /v1/batches job not settled yet, and log the cost of those that "
            "ended (what the routing.batches_poll beat task does every GATEWAY_BATCH_POLL_INTERVAL).")

    def handle(self, *args, **options):
        counts = batches_poll()
        self.stdout.write(f"{counts['settled']} settled, {counts['running']} still running, "
                          f"{counts['failed']} could not be polled.")
