"""The management API's /model routes (LiteLLM's shapes).

Deployments are validated exactly like config.yaml's model_list entries. The proxy admin
changes them (a model_info.organization_id makes one its organization's own; a model_info.team_id
its team's own, LiteLLM's team model, with the team's limits on it); everyone else
with a user lists the models it may use. Deployments written
by load_config belong to the file: the API does not change or delete them.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.response import Response

from apps.management.framework import (
    Forbidden,
    ManagementAPIView,
    NotFoundError,
    model_errors_as_fields,
    validated_body,
)
from apps.management.lookups import organization_or_404, team_or_404
from apps.management.permissions import model_access, model_access_of_key, request_actor, require_proxy_admin
from apps.providers import selectors, services
from apps.providers import serializers as s
from apps.providers.models import ModelDeployment
from apps.spend.selectors import deployment_catalog_entries


def deployment_or_404(model_id: str, *, param: str) -> ModelDeployment:
    deployment = selectors.deployment_get_by_model_id(model_id=model_id)
    if deployment is None:
        raise NotFoundError(f"No model with id {model_id!r}.", param=param)
    return deployment


def _spec(entry: dict):
    try:
        return services.deployment_spec_from_entry(entry)
    except services.DeploymentEntryError as error:
        raise exceptions.ValidationError({error.param or "litellm_params": [error.message]}) from None


def _organization(model_info: dict):
    """The organization a model_info names (only its keys may use the model); None: shared."""
    if not model_info.get("organization_id"):
        return None
    return organization_or_404(model_info["organization_id"], param="model_info.organization_id")


TEAM_MODEL_LIMITS = ("team_model_rpm_limit", "team_model_tpm_limit")


def _team_fields(model_info: dict) -> dict:
    """What a model_info says of LiteLLM's team models: `team` (model_info.team_id; null: no
    team) and the team's limits on the model, each only when given."""
    fields = {}
    if "team_id" in model_info:
        team_id = model_info["team_id"]
        fields["team"] = team_or_404(team_id, param="model_info.team_id") if team_id else None
    for name in TEAM_MODEL_LIMITS:
        if name in model_info:
            value = model_info[name]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise exceptions.ValidationError({f"model_info.{name}": ["Must be a whole number ≥ 0, or null."]})
            fields[name] = value
    return fields


def _team_fields_checked(*, team, organization, limits: dict) -> None:
    """A team model is its team's organization's; team limits need a team to apply to."""
    if team is not None and organization is not None and organization.pk != team.organization_id:
        raise exceptions.ValidationError(
            {"model_info.organization_id": ["A team's model belongs to the team's organization."]}
        )
    if team is None:
        for name, value in limits.items():
            if value is not None:
                raise exceptions.ValidationError(
                    {f"model_info.{name}": ["A team limit needs the team: give model_info.team_id."]}
                )


_FROM_CONFIG = "This model comes from the config file, which overwrites it at the next load: change it there."


def _refuse_config_managed(deployment: ModelDeployment, *, param: str) -> None:
    if deployment.managed_by_config:
        raise exceptions.ValidationError({param: [_FROM_CONFIG]})


class ModelNewApi(ManagementAPIView):
    """A new deployment from a model_list entry (validated like config.yaml's)."""

    input_serializer = s.ModelNewInput

    def post(self, request):
        data = self.validated(request)
        require_proxy_admin(request_actor(request), "add models")
        model_info = data.get("model_info") or {}
        spec = _spec(
            {
                "model_name": data["model_name"],
                "litellm_params": data["litellm_params"],
                "model_info": model_info,
            }
        )
        model_id = str(model_info["id"]) if model_info.get("id") is not None else None
        organization = _organization(model_info)
        team_fields = _team_fields(model_info)
        team = team_fields.pop("team", None)
        _team_fields_checked(team=team, organization=organization, limits=team_fields)
        with model_errors_as_fields({"config_id": "model_info.id"}):
            deployment = services.deployment_create(
                spec=spec, model_id=model_id, organization=organization, team=team, **team_fields
            )
        return Response({"model_id": s.model_id_of(deployment), **s.model_data(deployment)})


class ModelUpdateApi(ManagementAPIView):
    """Change a deployment: litellm_params merge into its own (null removes one). POST
    /model/update names it in the body; PATCH /model/{model_id}/update in the path (LiteLLM's
    two routes)."""

    input_serializer = s.ModelUpdateInput

    def post(self, request):
        return self._update(request, self.validated(request))

    def patch(self, request, model_id: str):
        body = request.data
        if isinstance(body, dict) and body.get("model_id") not in (None, model_id):
            raise exceptions.ValidationError({"model_id": ["The path names another model."]})
        if isinstance(body, dict):
            body = {**body, "model_id": model_id}
        return self._update(request, validated_body(self.input_serializer, body))

    def _update(self, request, data: dict):
        require_proxy_admin(request_actor(request), "change models")
        deployment = deployment_or_404(data["model_id"], param="model_id")
        _refuse_config_managed(deployment, param="model_id")
        stored = s.deployment_entry(deployment)
        changed = s.entry_with_changes(stored, data)
        model_info = data.get("model_info") or {}
        fields = {"organization": _organization(model_info)} if "organization_id" in model_info else {}
        fields.update(_team_fields(model_info))
        team = fields["team"] if "team" in fields else deployment.team
        limits = {name: fields.get(name, getattr(deployment, name)) for name in TEAM_MODEL_LIMITS}
        organization = fields["organization"] if "organization" in fields else None
        _team_fields_checked(team=team, organization=organization, limits=limits)
        with model_errors_as_fields({}):
            # Only what the request changes is written (base_spec: the deployment as stored).
            deployment = services.deployment_update(
                deployment=deployment, spec=_spec(changed), base_spec=_spec(stored), **fields
            )
        return Response({"model_id": s.model_id_of(deployment), **s.model_data(deployment)})


class ModelDeleteApi(ManagementAPIView):
    """Delete a deployment made through the API."""

    input_serializer = s.ModelDeleteInput

    def post(self, request):
        data = self.validated(request)
        require_proxy_admin(request_actor(request), "delete models")
        deployment = deployment_or_404(data["id"], param="id")
        _refuse_config_managed(deployment, param="id")
        services.deployment_delete(deployment=deployment)
        return Response({"message": f"Model: {data['id']} deleted successfully"})


class ModelInfoApi(ManagementAPIView):
    """Deployments the caller may use (secrets never shown); litellm_model_id picks one."""

    query_serializer = s.ModelInfoQuery

    def get(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        access = model_access(actor)
        if data.get("litellm_model_id"):
            deployment = deployment_or_404(data["litellm_model_id"], param="litellm_model_id")
            if access is not None and not (deployment.is_active and access.allows(deployment)):
                raise Forbidden("You may not use this model.", param="litellm_model_id")
            deployments = [deployment]
        else:
            deployments = selectors.deployment_list(include_inactive=access is None)
            deployments = [d for d in deployments if access is None or access.allows(d)]
        # Only the proxy admin sees where deployments live (api_base, provider parameters).
        return Response({"data": [s.model_data(d, with_endpoint=access is None) for d in deployments]})


def _deployments_of_key(actor) -> tuple[list[ModelDeployment], bool]:
    """(the active deployments the caller's key may use, whether the caller is the proxy admin)."""
    access = model_access_of_key(actor)
    deployments = selectors.deployment_list()
    return [d for d in deployments if access is None or access.allows(d)], access is None


class ModelInfoV2Api(ManagementAPIView):
    """LiteLLM's /v2/model/info: the deployments the caller's key may use, with what the price
    catalog knows of each (context window, prices, supports_* flags); secrets never shown. Paged by
    page and size; model, modelId and search filter."""

    query_serializer = s.ModelInfoV2Query

    def get(self, request):
        data = self.validated(request)
        deployments, is_proxy_admin = _deployments_of_key(request_actor(request))
        if data.get("model"):
            deployments = [d for d in deployments if d.model_name == data["model"]]
        if data.get("modelId"):
            deployments = [d for d in deployments if s.model_id_of(d) == data["modelId"]]
        if data.get("search"):
            deployments = [d for d in deployments if data["search"].lower() in d.model_name.lower()]
        page, size = data["page"], data["size"]
        shown = deployments[(page - 1) * size : page * size]
        catalog = deployment_catalog_entries(deployments=shown)
        return Response(
            {
                "data": [
                    s.model_data_v2(d, catalog_entry=catalog[d.pk], with_endpoint=is_proxy_admin)
                    for d in shown
                ],
                "total_count": len(deployments),
                "current_page": page,
                "total_pages": max(1, -(-len(deployments) // size)),
                "size": size,
            }
        )


class ModelGroupInfoApi(ManagementAPIView):
    """LiteLLM's /model_group/info: one entry per public model name the caller's key may use
    (model_group picks one), with its providers, limits, prices and capabilities."""

    query_serializer = s.ModelGroupInfoQuery

    def get(self, request):
        data = self.validated(request)
        deployments, _ = _deployments_of_key(request_actor(request))
        if data.get("model_group"):
            deployments = [d for d in deployments if d.model_name == data["model_group"]]
        groups: dict[str, list[ModelDeployment]] = {}
        for deployment in deployments:
            groups.setdefault(deployment.model_name, []).append(deployment)
        catalog = deployment_catalog_entries(deployments=deployments)
        data = [s.model_group_data(name, group, catalog) for name, group in groups.items()]
        return Response({"data": data})
