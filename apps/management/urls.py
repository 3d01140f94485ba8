"""The management API's URLconf (LiteLLM's routes), included by gateway_project.urls.

These paths are none of the data plane's prefixes (apps.routing.urls.DATA_PLANE_PREFIXES), or are
named in apps.routing.urls.CONTROL_PLANE_PATHS, so gateway_project.asgi sends them through Django's
ordinary stack.
"""

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONOpenAPIRenderer
from rest_framework.schemas import get_schema_view

from apps.customers import api as customers
from apps.keys import api as keys
from apps.providers import api as models
from apps.spend import api as spend
from apps.teams import api as teams

api_urlpatterns = [
    path("key/generate", keys.KeyGenerateApi.as_view(), name="key-generate"),
    path("key/update", keys.KeyUpdateApi.as_view(), name="key-update"),
    path("key/delete", keys.KeyDeleteApi.as_view(), name="key-delete"),
    path("key/info", keys.KeyInfoApi.as_view(), name="key-info"),
    path("key/list", keys.KeyListApi.as_view(), name="key-list"),
    path("key/regenerate", keys.KeyRegenerateApi.as_view(), name="key-regenerate"),
    path("key/block", keys.KeyBlockApi.as_view(), name="key-block"),
    path("key/unblock", keys.KeyUnblockApi.as_view(), name="key-unblock"),
    path("key/bulk_update", keys.KeyBulkUpdateApi.as_view(), name="key-bulk-update"),
    path("key/<str:key>/regenerate", keys.KeyRegenerateApi.as_view(), name="key-regenerate-path"),
    path("key/service-account/generate", keys.KeyServiceAccountGenerateApi.as_view(),
         name="key-service-account-generate"),
    path("key/health", keys.KeyHealthApi.as_view(), name="key-health"),
    path("team/new", teams.TeamNewApi.as_view(), name="team-new"),
    path("team/update", teams.TeamUpdateApi.as_view(), name="team-update"),
    path("team/delete", teams.TeamDeleteApi.as_view(), name="team-delete"),
    path("team/info", teams.TeamInfoApi.as_view(), name="team-info"),
    path("team/list", teams.TeamListApi.as_view(), name="team-list"),
    path("team/member_add", teams.TeamMemberAddApi.as_view(), name="team-member-add"),
    path("team/member_delete", teams.TeamMemberDeleteApi.as_view(), name="team-member-delete"),
    path("team/member_update", teams.TeamMemberUpdateApi.as_view(), name="team-member-update"),
    path("team/block", teams.TeamBlockApi.as_view(), name="team-block"),
    path("team/unblock", teams.TeamUnblockApi.as_view(), name="team-unblock"),
    path("team/model/add", teams.TeamModelAddApi.as_view(), name="team-model-add"),
    path("team/model/delete", teams.TeamModelDeleteApi.as_view(), name="team-model-delete"),
    path("team/permissions_list", teams.TeamPermissionsListApi.as_view(), name="team-permissions-list"),
    path("team/<str:team_id>/callback", teams.TeamCallbackApi.as_view(), name="team-callback"),
    path("team/<str:team_id>/disable_logging", teams.TeamDisableLoggingApi.as_view(), name="team-disable-logging"),
    path("user/new", teams.UserNewApi.as_view(), name="user-new"),
    path("user/update", teams.UserUpdateApi.as_view(), name="user-update"),
    path("user/delete", teams.UserDeleteApi.as_view(), name="user-delete"),
    path("user/info", teams.UserInfoApi.as_view(), name="user-info"),
    path("user/list", teams.UserListApi.as_view(), name="user-list"),
    path("user/bulk_update", teams.UserBulkUpdateApi.as_view(), name="user-bulk-update"),
    path("user/daily/activity", teams.UserDailyActivityApi.as_view(), name="user-daily-activity"),
    path("audit/logs", teams.AuditLogsApi.as_view(), name="audit-logs"),
    path("organization/new", teams.OrganizationNewApi.as_view(), name="organization-new"),
    path("organization/update", teams.OrganizationUpdateApi.as_view(), name="organization-update"),
    path("organization/delete", teams.OrganizationDeleteApi.as_view(), name="organization-delete"),
    path("organization/info", teams.OrganizationInfoApi.as_view(), name="organization-info"),
    path("organization/list", teams.OrganizationListApi.as_view(), name="organization-list"),
    path("organization/member_add", teams.OrganizationMemberAddApi.as_view(), name="organization-member-add"),
    path(
        "organization/member_update",
        teams.OrganizationMemberUpdateApi.as_view(),
        name="organization-member-update",
    ),
    path(
        "organization/member_delete",
        teams.OrganizationMemberDeleteApi.as_view(),
        name="organization-member-delete",
    ),
    path("model/new", models.ModelNewApi.as_view(), name="model-new"),
    path("model/update", models.ModelUpdateApi.as_view(http_method_names=["post", "options"]), name="model-update"),
    path(
        "model/<str:model_id>/update",
        models.ModelUpdateApi.as_view(http_method_names=["patch", "options"]),
        name="model-patch",
    ),
    path("model/delete", models.ModelDeleteApi.as_view(), name="model-delete"),
    path("model/info", models.ModelInfoApi.as_view(), name="model-info"),
    # LiteLLM serves /model/info under /v1 too (its clients use the OpenAI base URL); the data
    # plane hands this one path to the control plane (apps.routing.urls.CONTROL_PLANE_PATHS).
    path("v1/model/info", models.ModelInfoApi.as_view(), name="model-info-v1"),
    path("v2/model/info", models.ModelInfoV2Api.as_view(), name="model-info-v2"),
    path("model_group/info", models.ModelGroupInfoApi.as_view(), name="model-group-info"),
    path("customer/new", customers.CustomerNewApi.as_view(), name="customer-new"),
    path("customer/update", customers.CustomerUpdateApi.as_view(), name="customer-update"),
    path("customer/delete", customers.CustomerDeleteApi.as_view(), name="customer-delete"),
    path("customer/info", customers.CustomerInfoApi.as_view(), name="customer-info"),
    path("customer/list", customers.CustomerListApi.as_view(), name="customer-list"),
    path("customer/block", customers.CustomerBlockApi.as_view(), name="customer-block"),
    path("customer/unblock", customers.CustomerUnblockApi.as_view(), name="customer-unblock"),
    # LiteLLM's older names of the /customer/* routes, which its clients still call.
    *[path(f"end_user/{action}", view.as_view(), name=f"end-user-{action}") for action, view in (
        ("new", customers.CustomerNewApi), ("update", customers.CustomerUpdateApi),
        ("delete", customers.CustomerDeleteApi), ("info", customers.CustomerInfoApi),
        ("list", customers.CustomerListApi), ("block", customers.CustomerBlockApi),
        ("unblock", customers.CustomerUnblockApi))],
    path("budget/new", customers.BudgetNewApi.as_view(), name="budget-new"),
    path("budget/update", customers.BudgetUpdateApi.as_view(), name="budget-update"),
    path("budget/delete", customers.BudgetDeleteApi.as_view(), name="budget-delete"),
    path("budget/info", customers.BudgetInfoApi.as_view(), name="budget-info"),
    path("budget/list", customers.BudgetListApi.as_view(), name="budget-list"),
    path("budget/settings", customers.BudgetSettingsApi.as_view(), name="budget-settings"),
    path("spend/logs", spend.SpendLogsApi.as_view(), name="spend-logs"),
    path("spend/report", spend.SpendReportApi.as_view(), name="spend-report"),
    path("global/spend", spend.GlobalSpendApi.as_view(), name="global-spend"),
    path("global/spend/report", spend.GlobalSpendReportApi.as_view(), name="global-spend-report"),
    path("global/spend/teams", spend.GlobalSpendTeamsApi.as_view(), name="global-spend-teams"),
    path("global/spend/reset", spend.GlobalSpendResetApi.as_view(), name="global-spend-reset"),
    path("global/spend/logs", spend.GlobalSpendLogsApi.as_view(), name="global-spend-logs"),
    path("global/spend/keys", spend.GlobalSpendKeysApi.as_view(), name="global-spend-keys"),
    path("global/spend/models", spend.GlobalSpendModelsApi.as_view(), name="global-spend-models"),
    path("global/spend/tags", spend.GlobalSpendTagsApi.as_view(), name="global-spend-tags"),
    path("spend/tags", spend.SpendTagsApi.as_view(), name="spend-tags"),
    path("spend/calculate", spend.SpendCalculateApi.as_view(), name="spend-calculate"),
]

schema_view = get_schema_view(
    title="LLM gateway management API",
    description="LiteLLM-compatible management routes. Authenticate with 'Authorization: Bearer <key>'.",
    version="1",
    patterns=api_urlpatterns,
    renderer_classes=[JSONOpenAPIRenderer],
    public=True,
    authentication_classes=[],
    permission_classes=[AllowAny],
)

urlpatterns = [
    *api_urlpatterns,
    path("management/openapi.json", schema_view, name="management-openapi"),
]
