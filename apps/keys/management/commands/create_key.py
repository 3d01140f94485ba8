import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.keys.services import virtual_key_create
from apps.teams.selectors import organization_get_by_ref, team_get_by_ref

_DURATION = re.compile(r"^(\d+)(s|m|h|d|mo)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_expiry(value: str) -> datetime:
    """A duration from now (30s, 30m, 30h, 30d, 1mo) or an ISO 8601 date-time."""
    match = _DURATION.match(value.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        if unit == "mo":
            return timezone.now() + timedelta(days=30 * amount)
        return timezone.now() + timedelta(**{_UNITS[unit]: amount})
    moment = parse_datetime(value)
    if moment is None:
        raise CommandError(f"--expires: expected a duration like 30d or an ISO date-time, got {value!r}")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.utc)
    return moment


class Command(BaseCommand):
    help = "Create a virtual key and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("--alias", default="")
        parser.add_argument("--models", default="", help="Comma-separated model names; empty allows all")
        parser.add_argument("--max-budget", dest="max_budget", help="USD")
        parser.add_argument("--rpm", type=int, dest="rpm_limit")
        parser.add_argument("--tpm", type=int, dest="tpm_limit")
        parser.add_argument("--team", help="Team id or alias")
        parser.add_argument("--organization", help="Organization id or name")
        parser.add_argument("--user", help="Username of the owner")
        parser.add_argument("--expires", help="A duration (30d, 12h, 1mo) or an ISO date-time")

    def handle(self, *args, **options):
        max_budget = None
        if options["max_budget"] is not None:
            try:
                max_budget = Decimal(options["max_budget"])
            except InvalidOperation:
                raise CommandError(f"--max-budget: not a number: {options['max_budget']!r}") from None
            if max_budget < 0:
                raise CommandError("--max-budget: must be ≥ 0")
        team = organization = user = None
        if options["team"]:
            team = team_get_by_ref(options["team"])
            if team is None:
                raise CommandError(f"--team: no team (or more than one) matches {options['team']!r}")
        if options["organization"]:
            organization = organization_get_by_ref(options["organization"])
            if organization is None:
                raise CommandError(f"--organization: no organization matches {options['organization']!r}")
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"--user: no user named {options['user']!r}")
        models = [m.strip() for m in options["models"].split(",") if m.strip()]
        try:
            key, raw_key = virtual_key_create(
                alias=options["alias"],
                models=models,
                max_budget=max_budget,
                rpm_limit=options["rpm_limit"],
                tpm_limit=options["tpm_limit"],
                team=team,
                organization=organization,
                user=user,
                expires_at=parse_expiry(options["expires"]) if options["expires"] else None,
                issued_by_proxy_admin=True,  # whoever runs manage.py is the operator
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {', '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stderr.write(f"Created key {key.key_display} (id {key.pk}). It is shown only this once:")
        self.stdout.write(raw_key)
