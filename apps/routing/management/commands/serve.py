"""The production server.

uvicorn with uvloop and httptools: on the measured hot path it and granian are
close (834 vs 937 req/s), daphne far behind (483); uvicorn is the one Django,
the tests and most operators already know. See README "Choosing the server".
"""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from apps.core.server import uvicorn_options
from apps.core.services import admin_user_ensure
from apps.providers.config import ConfigError, config_read
from apps.routing.services import gateway_config_apply


class Command(BaseCommand):
    help = "Serve the gateway (data plane and admin) with uvicorn."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="0.0.0.0")
        parser.add_argument("--port", type=int, default=4000)
        parser.add_argument("--workers", type=int, default=1, help="Server processes")
        parser.add_argument("--migrate", action="store_true", help="Apply migrations first")
        parser.add_argument(
            "--limit-max-requests", type=int, default=None,
            help="Restart a worker after this many requests (caps memory growth)",
        )

    def handle(self, *args, host, port, workers, migrate, limit_max_requests, **options):
        if migrate:
            call_command("migrate", interactive=False, verbosity=1)
        if settings.GATEWAY_CONFIG:
            try:
                config = config_read(settings.GATEWAY_CONFIG)
            except ConfigError as exc:
                raise CommandError(f"GATEWAY_CONFIG {settings.GATEWAY_CONFIG}: {exc}") from None
            for line in config.ignored:
                self.stderr.write(f"Warning: GATEWAY_CONFIG {settings.GATEWAY_CONFIG}: not acted on {line}")
            report = gateway_config_apply(config=config)
            self.stdout.write(f"Loaded {settings.GATEWAY_CONFIG}: {report.summary()}.")
        if settings.GATEWAY_ADMIN_USER and settings.GATEWAY_ADMIN_PASSWORD:
            created = admin_user_ensure(
                username=settings.GATEWAY_ADMIN_USER, password=settings.GATEWAY_ADMIN_PASSWORD
            )
            self.stdout.write(
                f"Admin user {settings.GATEWAY_ADMIN_USER!r} {'created' if created else 'updated'}."
            )
        if workers > 1 and not settings.REDIS_MODE:
            self.stderr.write(
                "Warning: several workers without Redis keep separate caches and counters; "
                "a change made in the admin reaches the other workers only after their cache TTL."
            )
        import uvicorn

        self.stdout.write(f"Serving on http://{host}:{port} (admin at /admin/, API at /v1/)")
        uvicorn.run(
            "gateway_project.asgi:application",
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            timeout_graceful_shutdown=settings.GATEWAY_SHUTDOWN_DRAIN_SECONDS,  # on SIGTERM
            limit_max_requests=limit_max_requests,
            log_level=settings.LOG_LEVEL.lower(),
            **uvicorn_options(),  # httptools with the slow-client guard (apps.core.server)
        )
