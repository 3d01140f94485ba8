"""Writes of the routing app: config.yaml applied (its deployments and router settings),
health-check results."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from apps.core import invalidation
from apps.keys.limits import NANOS_PER_USD
from apps.providers.config import GatewayConfig, RouterSpec
from apps.providers.models import ModelDeployment
from apps.providers.registry import (
    ENV_REFERENCE_PREFIX,
    deployment_from_row,
    deployments_load,
    resolve_secret,
)
from apps.providers.services import ConfigSyncReport, deployments_config_plan_apply
from apps.providers.transport import UpstreamTransport
from apps.routing.models import ModelGroupSettings, RouterSettings
from apps.routing.selection.health import ConnectionCheck, deployment_connection_check, deployments_probe
from apps.routing.selectors import (
    GatewayConfigPlan,
    gateway_config_plan,
    model_group_settings_values,
    router_settings_values,
)


class ConfigPlanChanged(Exception):
    """The file would no longer change what the operator was shown (the database changed since,
    or the preview was applied already): nothing was applied. `plan`: what it would change now."""

    def __init__(self, plan: GatewayConfigPlan) -> None:
        super().__init__("the changes differ from the preview")
        self.plan = plan


@transaction.atomic
def gateway_config_apply(*, config: GatewayConfig,
                         expected_fingerprint: str | None = None) -> ConfigSyncReport:
    """Apply a config file: its router settings (router_settings, litellm_settings), then its
    model_list as deployments. One transaction: every replica sees the old file or the new one.

    `expected_fingerprint` (the admin's import): apply only if the plan, made now with its rows
    locked, is the one previewed (selectors.GatewayConfigPlan.fingerprint); else ConfigPlanChanged.
    """
    plan = gateway_config_plan(config=config, for_update=True)
    if expected_fingerprint is not None and plan.fingerprint() != expected_fingerprint:
        raise ConfigPlanChanged(plan)
    router_report = router_settings_sync_from_config(spec=config.router)
    report = deployments_config_plan_apply(plan=plan.deployments)
    report.router_settings = router_report
    return report


@transaction.atomic
def router_settings_sync_from_config(*, spec: RouterSpec) -> str:
    """Apply a config file's router settings; what happened, in words ("" if it has none).

    A file with router settings owns them: every router-wide value is set from it (the
    default where it says nothing), its model groups' settings are upserted, and groups
    it set before but no longer lists are removed. Groups set up in the admin are kept.
    """
    if not spec.present:
        return ""
    router = RouterSettings.objects.select_for_update().order_by("pk").first() or RouterSettings()
    for name, value in router_settings_values(spec).items():
        setattr(router, name, value)
    router.full_clean()
    router.save()

    existing = {row.model_name: row for row in ModelGroupSettings.objects.select_for_update()}
    for group in spec.groups:
        row = existing.pop(group.model_name, None) or ModelGroupSettings(model_name=group.model_name)
        for name, value in model_group_settings_values(group).items():
            setattr(row, name, value)
        row.full_clean()
        row.save()
    removed = [row for row in existing.values() if row.managed_by_config]
    for row in removed:
        row.delete()
    return f"router settings loaded, {len(spec.groups)} model groups with settings of their own" + (
        f", {len(removed)} removed" if removed else ""
    )


def deployment_health_record(
    *, deployment_id: int, healthy: bool, error: str, latency_ms: int | None, checked_at: datetime
) -> bool:
    """Record a check's result. True when the deployment's health changed (routing must know)."""
    status = ModelDeployment.Health.HEALTHY if healthy else ModelDeployment.Health.UNHEALTHY
    previous = ModelDeployment.objects.filter(pk=deployment_id).values_list("health_status", flat=True).first()
    # update(), not save(): no post_save signal; the caller reloads registries once, on a change.
    ModelDeployment.objects.filter(pk=deployment_id).update(
        health_status=ModelDeployment.Health.HEALTHY if healthy else ModelDeployment.Health.UNHEALTHY,
        health_error="" if healthy else error[:2000],
        health_latency_ms=latency_ms,
        health_checked_at=checked_at,
    )
    return previous is not None and previous != status and (
        status == ModelDeployment.Health.UNHEALTHY or previous == ModelDeployment.Health.UNHEALTHY
    )


MASK = "••••"


def _masked(text: str, secrets: list[str]) -> str:
    # An upstream may quote the key it refused ("Incorrect API key provided: sk-..."); an exception
    # may carry a URL with one in it.
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def deployment_connection_test(*, deployment: ModelDeployment) -> ConnectionCheck:
    """The admin's "Test connection": one cheap call to the deployment (what its health probe sends,
    by its mode), its answer or its error, with the credentials masked. Records nothing: the
    deployment's health is the beat task's to write.

    Called from a synchronous admin view: under ASGI, async_to_sync runs the call on the server's
    event loop while the view's thread waits; over a transport of its own, closed after (the process's
    pooled session belongs to one loop, and a test client's call gets a new loop each time)."""
    if "*" in deployment.model_name:
        return ConnectionCheck("skipped",
                               error="A wildcard deployment names no one model to call: nothing was sent.")
    runtime_deployment = deployment_from_row(deployment)
    if runtime_deployment is None:
        return ConnectionCheck("error", error=f"Unknown provider {deployment.provider!r}: nothing was sent.")
    unset = [value.removeprefix(ENV_REFERENCE_PREFIX)
             for value in (deployment.api_key, *(deployment.secret_params or {}).values())
             if isinstance(value, str) and value.startswith(ENV_REFERENCE_PREFIX)
             and resolve_secret(value) is None]

    async def call() -> ConnectionCheck:
        transport = UpstreamTransport()
        try:
            return await deployment_connection_check(runtime_deployment, transport)
        finally:
            await transport.close()

    result = async_to_sync(call)()
    # The values sent (a literal stored, or what an os.environ/NAME resolved to); not the references.
    secrets = [value for value in (runtime_deployment.api_key, *runtime_deployment.secret_params.values())
               if value and len(value) >= 4]
    result.error = _masked(result.error, secrets)
    result.reply = _masked(result.reply, secrets)
    if unset and result.status == "error":
        result.error += f" (not set in this server's environment: {', '.join(unset)})"
    return result


def deployments_health_check() -> dict:
    """Check every active deployment with a minimal request and record the results.
    Runs in a Celery worker (apps.routing.tasks), never on the request path."""
    import asyncio

    from django.utils import timezone

    deployments = [d for group in deployments_load().values() for d in group if not d.is_wildcard]
    results = asyncio.run(deployments_probe(deployments))
    checked_at = timezone.now()
    changed = False
    for result in results:
        changed |= deployment_health_record(
            deployment_id=result.deployment_id, healthy=result.healthy, error=result.error,
            latency_ms=result.latency_ms, checked_at=checked_at,
        )
    if changed or any(not r.healthy for r in results):
        # Every replica reloads its registry: routing leaves out (or takes back) the deployments
        # whose health changed, and a failing one's exclusion is extended to this check.
        invalidation.publish({"kind": invalidation.KIND_DEPLOYMENTS})
    healthy = sum(1 for r in results if r.healthy)
    return {"healthy": healthy, "unhealthy": len(results) - healthy}


def stored_responses_write(*, records: list) -> int:
    """Write buffered /v1/responses records (idempotent: a record already written is kept)."""
    from apps.routing.models import StoredResponse

    rows = [
        StoredResponse(
            id=r.id, key_hash=r.key_hash, key_id=r.key_id, team_id=r.team_id, organization_id=r.organization_id,
            model=r.model, deployment_id=r.deployment_id, native=r.native,
            previous_response_id=r.previous_response_id or "", input_items=r.input_items,
            output_items=r.output_items, response=r.response, created_at=r.created_at,
        )
        for r in records
    ]
    StoredResponse.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def stored_response_delete(response_id: str) -> None:
    """Delete a stored response for good: its row becomes a tombstone with no content, written
    even when the response is not in the database yet (still in some replica's buffer), so the
    buffered write finds the id taken and leaves it deleted. The purge removes tombstones."""
    from apps.routing.models import StoredResponse

    now = timezone.now()
    emptied = {"deleted_at": now, "input_items": [], "output_items": [], "response": {}}
    if StoredResponse.objects.filter(pk=response_id).update(**emptied):
        return
    StoredResponse.objects.bulk_create(
        [StoredResponse(id=response_id, key_hash="", model="", created_at=now, **emptied)], ignore_conflicts=True
    )
    # A buffered write may have landed between the two statements: empty it too.
    StoredResponse.objects.filter(pk=response_id).update(**emptied)


def stored_responses_purge(*, older_than: datetime, dry_run: bool = False) -> int:
    """Retention: delete stored responses created before `older_than`, in short chunks."""
    from apps.core.db import delete_in_chunks
    from apps.routing.models import StoredResponse

    queryset = StoredResponse.objects.filter(created_at__lt=older_than)
    if dry_run:
        return queryset.count()
    return delete_in_chunks(queryset)


def managed_files_write(*, records: list) -> int:
    """Write buffered /v1/files records (idempotent; a tombstone written first stays deleted)."""
    from apps.routing.models import ManagedFile

    rows = [
        ManagedFile(
            id=r.id, key_hash=r.key_hash, key_id=r.key_id, team_id=r.team_id, organization_id=r.organization_id,
            deployment_id=r.deployment_id, purpose=r.purpose, filename=r.filename[:255], bytes=r.bytes,
            model=r.model, endpoint=r.endpoint, request_count=r.request_count,
            max_cost=Decimal(r.max_cost_nanos) / NANOS_PER_USD if r.max_cost_nanos else None,
            batch_id=r.batch_id, created_at=r.created_at, file=r.file,
        )
        for r in records
    ]
    ManagedFile.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def managed_file_delete(file_id: str) -> None:
    """A deleted file stays as a tombstone (as a stored response does: see stored_response_delete)."""
    from apps.routing.models import ManagedFile

    now = timezone.now()
    if ManagedFile.objects.filter(pk=file_id).update(deleted_at=now):
        return
    ManagedFile.objects.bulk_create(
        [ManagedFile(id=file_id, key_hash="", purpose="", created_at=now, deleted_at=now)], ignore_conflicts=True
    )
    ManagedFile.objects.filter(pk=file_id).update(deleted_at=now)


def managed_batches_write(*, records: list) -> int:
    """Write buffered /v1/batches records; the poller (apps.routing.batch_settlement) updates
    their status, so a record already written is kept as it is."""
    from apps.routing.models import ManagedBatch

    rows = [
        ManagedBatch(
            id=r.id, key_hash=r.key_hash, key_id=r.key_id, team_id=r.team_id, organization_id=r.organization_id,
            user_id=r.user_id, deployment_id=r.deployment_id, model=r.model, input_file_id=r.input_file_id,
            endpoint=r.endpoint, reservation_id=r.reservation_id, limit_scopes=r.limit_scopes,
            reserved_cost=Decimal(r.reserved_nanos) / NANOS_PER_USD, status=r.batch.get("status") or "validating",
            batch=r.batch, created_at=r.created_at,
        )
        for r in records
    ]
    ManagedBatch.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)
