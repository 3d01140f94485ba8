"""The audit log: every change to the gateway's configuration, written where the change is.

One place: model signals on the audited models (AUDITED), whatever made the change (the
management API, the admin, a manage.py command, a service called from anywhere). The entry
is written in the change's own transaction. Who made it comes from a context variable the
entry points set: the management API per request (its principal), the admin per request (its
user, apps.core.audit.AuditContextMiddleware), manage.py per command; anything else is
"system". Volatile fields (spend counters, health checks, timestamps) are not changes;
secrets are redacted, never written.
"""

from __future__ import annotations

import contextvars
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.apps import apps
from django.db.models.signals import post_delete, post_save, pre_save
from apps.core.fields import EncryptedTextField
from apps.core.partitions import MonthlyTable, month_partitions_drop_before

AUDITED = (
    "keys.VirtualKey", "teams.Organization", "teams.Team", "teams.OrganizationMembership",
    "teams.TeamMembership", "teams.UserLimits", "providers.ModelDeployment", "spend.ModelPrice",
    "routing.RouterSettings", "routing.ModelGroupSettings", "customers.Budget", "customers.EndUser",
    "auth.User",
)
# Counters and timestamps the gateway moves by itself: a save that changes only these is no change.
VOLATILE = frozenset({
    "spend", "budget_period_start", "updated_at", "created_at", "last_login", "health_status", "health_error",
    "health_latency_ms", "health_checked_at", "last_used_at", "date_joined",
})
_SECRET_WORDS = ("secret", "password", "api_key", "token", "credential", "private")
REDACTED = "[redacted]"


@dataclass(frozen=True)
class AuditActor:
    actor: str
    via: str
    ip: str | None = None
    user_agent: str = ""
    request_id: str = ""


_current: contextvars.ContextVar[AuditActor | None] = contextvars.ContextVar("audit_actor", default=None)
_before: contextvars.ContextVar[dict | None] = contextvars.ContextVar("audit_before", default=None)


@contextmanager
def audit_actor(actor: AuditActor):
    """Changes made inside the block are the actor's."""
    token = _current.set(actor)
    try:
        yield
    finally:
        _current.reset(token)


def audit_actor_token(actor: AuditActor) -> contextvars.Token:
    """The actor from now on, until audit_actor_reset(token)."""
    return _current.set(actor)


def audit_actor_reset(token: contextvars.Token) -> None:
    _current.reset(token)


def request_audit_actor(request, actor: str, via: str) -> AuditActor:
    from apps.core.edge import REQUEST_ID_SCOPE_KEY

    scope = getattr(request, "scope", None) or {}
    request_id = scope.get(REQUEST_ID_SCOPE_KEY) or request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    return AuditActor(actor=actor[:255], via=via, ip=_client_ip(request),
                      user_agent=request.headers.get("User-Agent", "")[:255], request_id=request_id)


def _client_ip(request) -> str | None:
    import ipaddress

    address = request.META.get("REMOTE_ADDR")
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


# --- what a change was ----------------------------------------------------------------------------


def _is_secret(name: str) -> bool:
    name = name.lower()
    return any(word in name for word in _SECRET_WORDS) and name != "token_hash"


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: (REDACTED if _is_secret(str(k)) else _plain(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _values(instance) -> dict:
    values = {}
    for field in instance._meta.concrete_fields:
        name = field.attname
        if field.name in VOLATILE:
            continue
        value = getattr(instance, name)
        if name == "token_hash" and isinstance(value, str):
            value = value[:8] + "…"  # enough to tell keys apart; the hash itself is a lookup key
        secret = _is_secret(field.name) or isinstance(field, EncryptedTextField)  # stored encrypted: secret
        values[name] = REDACTED if secret and value not in (None, "", {}, []) else _plain(value)
    return values


def _organization_of(instance) -> str:
    for name in ("organization_id",):
        value = getattr(instance, name, None)
        if value:
            return str(value)
    team = getattr(instance, "team", None) if hasattr(instance, "team_id") else None
    if team is not None and getattr(team, "organization_id", None):
        return str(team.organization_id)
    if instance._meta.label == "teams.Organization":
        return str(instance.pk)
    return ""


def _write(instance, action: str, changes: dict) -> None:
    from apps.core.models import AuditLog

    actor = _current.get() or AuditActor(actor="system", via="system")
    AuditLog.objects.create(
        actor=actor.actor, via=actor.via, action=action, object_type=instance._meta.label_lower,
        object_id=str(instance.pk)[:64], object_repr=str(instance)[:255], organization_id=_organization_of(instance),
        changes=changes, ip=actor.ip, user_agent=actor.user_agent, request_id=actor.request_id,
    )


def audit_bulk_created(instances) -> None:
    """Entries for rows a bulk_create made (which sends no signals): one each, in one insert.
    Only for a change someone made (an API call, the admin, a command): the catalog the gateway
    loads by itself into a new database is not an operator's change."""
    from apps.core.models import AuditLog

    actor = _current.get()
    if actor is None:
        return
    AuditLog.objects.bulk_create([
        AuditLog(actor=actor.actor, via=actor.via, action="create", object_type=instance._meta.label_lower,
                 object_id=str(instance.pk)[:64], object_repr=str(instance)[:255],
                 organization_id=_organization_of(instance),
                 changes={name: [None, value] for name, value in _values(instance).items() if value not in (None, "")},
                 ip=actor.ip, user_agent=actor.user_agent, request_id=actor.request_id)
        for instance in instances
    ], batch_size=500)


def _pre_save(sender, instance, raw=False, **kwargs) -> None:
    if raw or instance.pk is None or instance._state.adding:
        return
    old = sender._default_manager.filter(pk=instance.pk).first()
    befores = dict(_before.get() or {})
    befores[(sender, instance.pk)] = _values(old) if old is not None else None
    _before.set(befores)


def _post_save(sender, instance, created, raw=False, **kwargs) -> None:
    if raw:
        return
    after = _values(instance)
    if created:
        _write(instance, "create", {name: [None, value] for name, value in after.items() if value not in (None, "")})
        return
    befores = _before.get() or {}
    before = befores.pop((sender, instance.pk), None)
    if before is None:
        return
    changes = {name: [before.get(name), value] for name, value in after.items() if before.get(name) != value}
    if changes:
        _write(instance, "update", changes)


def _post_delete(sender, instance, **kwargs) -> None:
    _write(instance, "delete", {name: [value, None] for name, value in _values(instance).items()
                                if value not in (None, "")})


def audit_receivers_connect() -> None:
    for label in AUDITED:
        model = apps.get_model(label)
        uid = f"audit-{label}"
        pre_save.connect(_pre_save, sender=model, dispatch_uid=f"{uid}-pre", weak=False)
        post_save.connect(_post_save, sender=model, dispatch_uid=f"{uid}-post", weak=False)
        post_delete.connect(_post_delete, sender=model, dispatch_uid=f"{uid}-delete", weak=False)


class AuditContextMiddleware:
    """The control plane's requests: an admin page's changes are its user's (the management
    API names its own principal, apps.management.framework)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return self.get_response(request)
        with audit_actor(request_audit_actor(request, f"admin:{user.get_username()}", "admin")):
            return self.get_response(request)


# On PostgreSQL the audit log is in month tables by created_at (apps.core.partitions).
AUDIT_LOG_MONTHS = MonthlyTable(table="core_auditlog", column="created_at")


def audit_logs_purge(*, older_than: datetime) -> int:
    """Retention: the entries older than `older_than` go (the only deletion there is): on
    PostgreSQL whole months as tables, the rest in short chunks."""
    from apps.core.db import delete_in_chunks
    from apps.core.models import AuditLog

    _, dropped = month_partitions_drop_before(AUDIT_LOG_MONTHS, cutoff=older_than)
    return dropped + delete_in_chunks(AuditLog.objects.filter(created_at__lt=older_than))
