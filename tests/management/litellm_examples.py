"""LiteLLM's own documented management calls, as data: one entry per distinct documented request
to /key/*, /team/*, /user/*, /organization/*, /model/*, /spend/* (with /global/spend/*),
/customer/* and /budget/*. tests/management/test_litellm_examples.py sends each one.

Facts only, gathered from LiteLLM's public documentation (docs.litellm.ai, whose source is
BerriAI/litellm docs/my-website/docs/proxy/*.md) and from the docstrings of its management
endpoints (BerriAI/litellm litellm/proxy/management_endpoints/*.py, the Swagger text). `source`
names the page or file and the commit it was read at.

Each entry:
  id            readable test id: <route family>-<what the example does>
  source        where LiteLLM documents it (URL and/or repo path@commit)
  method, path  the call; path may hold placeholders (/key/sk-1234/regenerate)
  query, body   the query parameters or JSON body, as documented
  headers       extra request headers the example sends (Django's HTTP_* names)
  expect_fields the response fields the documentation shows (dotted for nested ones:
                "info.spend"); for a documented list answer, expect_list=True and
                expect_item_fields apply to each item
  setup         what must exist first. LiteLLM's placeholders (a team id such as "core-infra",
                a key such as "sk-1234", a model id) are made by the test and replaced by the
                real id wherever they appear in path, query, body and headers:
                  organizations: [placeholder]           → an organization; its id
                  teams: {placeholder: {fields}}         → a team (fields: models); its id
                  users: [user_id]                       → a user with that user_id (kept as is)
                  user_emails: {email: user_id}          → a user with that email
                  members: [[user_id, team, role]]       → team memberships
                  org_members: [[user_id, org, role]]    → organization memberships
                  keys: {placeholder: {team, user}}      → a virtual key; the raw key
                  model_ids: {placeholder: model_name}   → a deployment; its model id
                  model_names: [model_name]              → deployments of that name
                  spend_logs: {request_id: {key, tags}}  → a spend log row (kept as is)
                  budgets: {budget_id: {fields}}         → POST /budget/new (kept as is)
                  customers: {user_id: {fields}}         → POST /customer/new (kept as is)
                  env: {NAME: value}                     → an environment variable the example
                                                           assumes (os.environ/NAME references)
  as_key        a `keys` placeholder: the call is made with that key instead of the master key
                (the documentation makes it so: the route acts on the calling key)
  kind          "example" (a documented request) or "parameters" (the route documents its
                parameters but no example body; the body holds documented parameters only)
  differs       for a call this gateway answers otherwise on purpose: (status, param, phrase).
                The call must get that status with `param` naming that field, and
                docs/litellm-compat.md must hold a row containing `phrase` (which says why).
                Only for LiteLLM features refused until they exist, or refused for a reason.
  note          what was normalised: where the documentation's body is not valid JSON (a
                trailing comma, a comment, a missing quote), the entry holds the evident body

Not taken: bodies that are not requests LiteLLM itself accepts (model_management.md's
"my_awesome_model" structure has no litellm_params.model), and routes outside these families
(/v1/agents, /invitation/new, /v2/user/info, /team/available, /key/aliases).
"""

from __future__ import annotations

# --- sources ----------------------------------------------------------------------------------

_DOCS = "https://docs.litellm.ai/docs/proxy/{page} (BerriAI/litellm docs/my-website/docs/proxy/{page}.md@{commit})"
_CODE = "BerriAI/litellm {path}@{commit} ({function} docstring)"

VIRTUAL_KEYS = _DOCS.format(page="virtual_keys", commit="a65476ed")
VIRTUAL_KEYS_OLD = _DOCS.format(page="virtual_keys", commit="003feda3")
USERS = _DOCS.format(page="users", commit="00670428")
BUDGETS = _DOCS.format(page="budgets", commit="24e14d69")
TEAM_BUDGETS = _DOCS.format(page="team_budgets", commit="00670428")
CUSTOMERS = _DOCS.format(page="customers", commit="0525fb75")
CUSTOMER_ROUTING = _DOCS.format(page="customer_routing", commit="62456c54")
MULTIPLE_ADMINS = _DOCS.format(page="multiple_admins", commit="0a040d2c")
MODEL_MANAGEMENT = _DOCS.format(page="model_management", commit="0be6bbc4")
TEAM_MODEL_ADD = _DOCS.format(page="team_model_add", commit="0be6bbc4")
COST_TRACKING = _DOCS.format(page="cost_tracking", commit="17345933")
TAG_ROUTING = _DOCS.format(page="tag_routing", commit="00670428")
ENTERPRISE = _DOCS.format(page="enterprise", commit="d2f02a55")
ACCESS_CONTROL = _DOCS.format(page="access_control", commit="3bc83414")
BILLING = _DOCS.format(page="billing", commit="02bd3261")
SELF_SERVE = _DOCS.format(page="self_serve", commit="10212b3d")
DYNAMIC_RATE_LIMIT = _DOCS.format(page="dynamic_rate_limit", commit="0d4121d4")
RATE_LIMIT_TIERS = _DOCS.format(page="rate_limit_tiers", commit="539f1661")
TEMP_BUDGET = _DOCS.format(page="temporary_budget_increase", commit="02672640")
PUBLIC_TEAMS = _DOCS.format(page="public_teams", commit="68bbee46")
TEAM_BASED_ROUTING = _DOCS.format(page="team_based_routing", commit="0935d162")
MODEL_ACCESS = _DOCS.format(page="model_access", commit="0a1c69b6")
MODEL_ACCESS_GROUPS = _DOCS.format(page="model_access_groups", commit="2620c252")
SERVICE_ACCOUNTS = _DOCS.format(page="service_accounts", commit="18383d31")
TEAM_LOGGING = _DOCS.format(page="team_logging", commit="13a735dc")

KEY_ENDPOINTS = "litellm/proxy/management_endpoints/key_management_endpoints.py"
TEAM_ENDPOINTS = "litellm/proxy/management_endpoints/team_endpoints.py"
USER_ENDPOINTS = "litellm/proxy/management_endpoints/internal_user_endpoints.py"
ORG_ENDPOINTS = "litellm/proxy/management_endpoints/organization_endpoints.py"
CUSTOMER_ENDPOINTS = "litellm/proxy/management_endpoints/customer_endpoints.py"
BUDGET_ENDPOINTS = "litellm/proxy/management_endpoints/budget_management_endpoints.py"
SPEND_ENDPOINTS = "litellm/proxy/spend_tracking/spend_management_endpoints.py"
PROXY_SERVER = "litellm/proxy/proxy_server.py"
# Read in the docstring as SDKs generated from LiteLLM's OpenAPI reproduce it (no commit of
# proxy_server.py itself was read).
MODEL_GROUP_INFO = f"BerriAI/litellm {PROXY_SERVER} (model_group_info docstring)"


def _code(path: str, commit: str, function: str) -> str:
    return _CODE.format(path=path, commit=commit, function=function)


def ex(id, source, method, path, *, body=None, query=None, headers=None, expect_fields=(),
       expect_list=False, expect_item_fields=(), setup=None, as_key=None, kind="example", note="",
       differs=None):
    return {
        "id": id,
        "source": source,
        "method": method,
        "path": path,
        "body": body,
        "query": query,
        "headers": headers or {},
        "expect_fields": list(expect_fields),
        "expect_list": expect_list,
        "expect_item_fields": list(expect_item_fields),
        "setup": setup or {},
        "as_key": as_key,
        "kind": kind,
        "note": note,
        "differs": differs,
    }


# Fields LiteLLM's /team/new answer shows (users.md, "Sample Response").
TEAM_NEW_FIELDS = (
    "team_alias", "team_id", "admins", "members", "members_with_roles", "metadata", "tpm_limit",
    "rpm_limit", "max_budget", "models", "spend", "max_parallel_requests", "budget_duration",
    "budget_reset_at",
)
# Fields LiteLLM's /key/generate answer shows (users.md, "Response from /key/generate").
KEY_GENERATE_FIELDS = (
    "key", "models", "spend", "max_budget", "user_id", "team_id", "max_parallel_requests", "metadata",
    "tpm_limit", "rpm_limit", "budget_duration", "allowed_cache_controls", "soft_budget", "key_alias",
    "duration", "aliases", "config", "permissions", "model_max_budget", "key_name", "expires", "token_id",
)
# Fields LiteLLM's /user/new answer shows (virtual_keys.md@003feda3, "Response").
USER_NEW_FIELDS = (
    "models", "spend", "max_budget", "user_id", "team_id", "max_parallel_requests", "metadata", "tpm_limit",
    "rpm_limit", "budget_duration", "allowed_cache_controls", "key_alias", "duration", "aliases", "config",
    "key", "key_name", "expires",
)
CUSTOMER_FIELDS = (
    "user_id", "blocked", "alias", "spend", "allowed_model_region", "default_model", "litellm_budget_table",
)

LOGGING_LANGFUSE = {
    "callback_name": "langfuse",
    "callback_type": "success",
    "callback_vars": {
        "langfuse_public_key": "os.environ/LANGFUSE_PUBLIC_KEY",
        "langfuse_secret_key": "os.environ/LANGFUSE_SECRET_KEY",
        "langfuse_host": "https://cloud.langfuse.com",
    },
}
LOGGING_GCS = {
    "callback_name": "gcs_bucket",
    "callback_type": "success",
    "callback_vars": {
        "gcs_bucket_name": "my-gcs-bucket",
        "gcs_path_service_account": "os.environ/GCS_SERVICE_ACCOUNT",
    },
}
MODEL_RPM = {"gpt-4": 100, "gpt-3.5-turbo": 200}
MODEL_TPM = {"gpt-4": 10000, "gpt-3.5-turbo": 20000}
CHAT_MESSAGES = [{"role": "user", "content": "Hey, how's it going?"}]

TEAM_UUID = "e8d1460f-846c-45d7-9b43-55f3cc52ac32"

# --- /key/* -----------------------------------------------------------------------------------

KEY_EXAMPLES = [
    ex("key-generate-models-and-metadata", VIRTUAL_KEYS, "POST", "/key/generate",
       body={"models": ["gpt-3.5-turbo", "gpt-4"], "metadata": {"user": "ishaan@berri.ai"}},
       expect_fields=["key", "expires", "key_name"]),
    ex("key-generate-models-duration-team-budget", VIRTUAL_KEYS_OLD, "POST", "/key/generate",
       body={"models": ["gpt-3.5-turbo", "gpt-4", "claude-2"], "duration": "20m",
             "metadata": {"user": "ishaan@berri.ai"}, "team_id": "core-infra", "max_budget": 10},
       expect_fields=["key", "expires", "key_name"], setup={"teams": {"core-infra": {}}},
       note="the documentation's body has a trailing comma"),
    ex("key-generate-models-only", MODEL_ACCESS, "POST", "/key/generate",
       body={"models": ["gpt-3.5-turbo", "gpt-4"]}, expect_fields=["key"]),
    ex("key-generate-model-aliases", VIRTUAL_KEYS, "POST", "/key/generate",
       body={"models": ["my-free-tier"], "aliases": {"gpt-3.5-turbo": "my-free-tier"}, "duration": "30min"},
       expect_fields=["key"], note="the documentation's body has a comment after `aliases`"),
    ex("key-generate-for-user-with-models", VIRTUAL_KEYS, "POST", "/key/generate",
       body={"models": ["gpt-3.5-turbo", "gpt-4"], "user_id": "my-unique-id"},
       expect_fields=["key"], setup={"users": ["my-unique-id"]}),
    ex("key-generate-for-team-with-models", VIRTUAL_KEYS, "POST", "/key/generate",
       body={"models": ["gpt-3.5-turbo", "gpt-4"], "team_id": "my-unique-id"},
       expect_fields=["key"], setup={"teams": {"my-unique-id": {}}}),
    ex("key-generate-auto-rotate", VIRTUAL_KEYS, "POST", "/key/generate",
       body={"models": ["gpt-4o"], "auto_rotate": True, "rotation_interval": "30d"}, expect_fields=["key"],
       differs=(400, "auto_rotate", "`auto_rotate` (with `rotation_interval`)")),
    ex("key-generate-for-team", TEAM_BUDGETS, "POST", "/key/generate",
       body={"team_id": "de35b29e-6ca8-4f47-b804-2b79d07aa99a"}, expect_fields=["team_id", "key"],
       setup={"teams": {"de35b29e-6ca8-4f47-b804-2b79d07aa99a": {}}},
       note="the same body ({team_id}) is in virtual_keys.md@003feda3, model_access.md, billing.md, "
            "tag_routing.md, team_based_routing.md, team_logging.md and model_access_groups.md"),
    ex("key-generate-access-group-zero-budget", MODEL_ACCESS_GROUPS, "POST", "/key/generate",
       body={"models": ["beta-models"], "max_budget": 0}, expect_fields=["key"],
       note="the documentation's body has a comment and a trailing comma; also in virtual_keys.md@003feda3"),
    ex("key-generate-for-team-member", USERS, "POST", "/key/generate",
       body={"user_id": "ishaan", "team_id": TEAM_UUID}, expect_fields=KEY_GENERATE_FIELDS,
       setup={"teams": {TEAM_UUID: {}}, "users": ["ishaan"], "members": [["ishaan", TEAM_UUID, "user"]]},
       note="also in model_access.md ({team_id, user_id: bob}) and access_control.md"),
    ex("key-generate-for-existing-user", USERS, "POST", "/key/generate",
       body={"models": ["azure-models"], "user_id": "krrish3@berri.ai"}, expect_fields=["key"],
       setup={"users": ["krrish3@berri.ai"]}),
    ex("key-generate-team-budget", USERS, "POST", "/key/generate",
       body={"team_id": "core-infra", "max_budget": 10}, expect_fields=["key"],
       setup={"teams": {"core-infra": {}}}, note="the documentation's body has a comment and a trailing comma"),
    ex("key-generate-team-budget-duration", USERS, "POST", "/key/generate",
       body={"team_id": "core-infra", "max_budget": 10, "budget_duration": "30s"}, expect_fields=["key"],
       setup={"teams": {"core-infra": {}}}, note="the documentation's body has a comment and a trailing comma"),
    ex("key-generate-model-max-budget", USERS, "POST", "/key/generate",
       body={"model_max_budget": {"gpt-4o": {"budget_limit": "0.0000001", "time_period": "1d"}}},
       expect_fields=["key"]),
    ex("key-generate-budget-duration", USERS, "POST", "/key/generate",
       body={"max_budget": 10, "budget_duration": "30s"}, expect_fields=["key"],
       note="the documentation's body has a comment and a trailing comma"),
    ex("key-generate-rate-limits", USERS, "POST", "/key/generate",
       body={"max_parallel_requests": 10, "tpm_limit": 20, "rpm_limit": 4},
       expect_fields=["key", "expires", "user_id"]),
    ex("key-generate-model-rpm-limit", USERS, "POST", "/key/generate",
       body={"model_rpm_limit": {"gpt-4": 2}}, expect_fields=["key", "expires"],
       note="the documentation also sends model_tpm_limit but with no value ({\"gpt-4\":}), which is "
            "not JSON; the entry keeps the rest"),
    ex("key-generate-empty-body", USERS, "POST", "/key/generate", body={}, expect_fields=["key"],
       note="also in enterprise.md and dynamic_rate_limit.md"),
    ex("key-generate-spend-route-permission", COST_TRACKING, "POST", "/key/generate",
       body={"permissions": {"get_spend_routes": True}}, expect_fields=["key"]),
    ex("key-generate-metadata-tags", COST_TRACKING, "POST", "/key/generate",
       body={"metadata": {"tags": ["tag1", "tag2", "tag3"]}}, expect_fields=["key"]),
    ex("key-generate-spend-logs-metadata", COST_TRACKING, "POST", "/key/generate",
       body={"metadata": {"spend_logs_metadata": {"hello": "world"}}}, expect_fields=["key"]),
    ex("key-generate-enforced-params", ENTERPRISE, "POST", "/key/generate",
       body={"enforced_params": ["user", "metadata.generation_name"]}, expect_fields=["key"]),
    ex("key-generate-hide-secrets-off", ENTERPRISE, "POST", "/key/generate",
       body={"permissions": {"hide_secrets": False}}, expect_fields=["permissions", "key"]),
    ex("key-generate-llm-guard-check", ENTERPRISE, "POST", "/key/generate",
       body={"models": ["fake-openai-endpoint"], "permissions": {"enable_llm_guard_check": True}},
       expect_fields=["key"], note="the documentation's body has a comment",
       differs=(400, "permissions.enable_llm_guard_check", "`permissions.enable_llm_guard_check`")),
    ex("key-generate-one-model", ENTERPRISE, "POST", "/key/generate",
       body={"models": ["fake-openai-endpoint"]}, expect_fields=["key"],
       note="the documentation's body has a trailing comma"),
    ex("key-generate-wildcard-access-group", MODEL_ACCESS_GROUPS, "POST", "/key/generate",
       body={"models": ["default-models"]}, expect_fields=["key"],
       note="the documentation's body has a trailing comma"),
    ex("key-generate-priority-prod", DYNAMIC_RATE_LIMIT, "POST", "/key/generate",
       body={"metadata": {"priority": "prod"}}, expect_fields=["key", "metadata"]),
    ex("key-generate-priority-dev", DYNAMIC_RATE_LIMIT, "POST", "/key/generate",
       body={"metadata": {"priority": "dev"}}, expect_fields=["key", "metadata"]),
    ex("key-generate-langfuse-logging", TEAM_LOGGING, "POST", "/key/generate",
       body={"metadata": {"logging": [LOGGING_LANGFUSE]}}, expect_fields=["key"],
       note="the documentation's body has comments"),
    ex("key-generate-gcs-logging", TEAM_LOGGING, "POST", "/key/generate",
       body={"metadata": {"logging": [LOGGING_GCS]}}, expect_fields=["key"],
       note="the documentation's body has comments"),
    ex("key-generate-pii-controls", _code(KEY_ENDPOINTS, "00670428", "generate_key_fn"), "POST", "/key/generate",
       body={"permissions": {"allow_pii_controls": True}}, expect_fields=["key", "expires", "user_id"],
       differs=(400, "permissions.allow_pii_controls", "`permissions.allow_pii_controls`")),
    ex("key-generate-budget-id", RATE_LIMIT_TIERS, "POST", "/key/generate",
       body={"budget_id": "my-test-tier"}, expect_fields=["key", "budget_id", "litellm_budget_table"],
       setup={"budgets": {"my-test-tier": {"rpm_limit": 0}}}),
    ex("key-generate-tiny-budget", TEMP_BUDGET, "POST", "/key/generate",
       body={"max_budget": 0.0000001}, expect_fields=["key"]),
    ex("key-generate-for-user", ACCESS_CONTROL, "POST", "/key/generate",
       body={"user_id": "ishaan@berri.ai"}, expect_fields=["models", "user_id", "key", "key_name"],
       setup={"users": ["ishaan@berri.ai"]}, note="also in billing.md ({user_id: my-unique-id})"),
    ex("key-service-account-generate", SERVICE_ACCOUNTS, "POST", "/key/service-account/generate",
       body={"team_id": "my-unique-team"}, expect_fields=["key"], setup={"teams": {"my-unique-team": {}}}),
    ex("key-info-by-key", VIRTUAL_KEYS, "GET", "/key/info", query={"key": "sk-tXL0wt5-lOOVK9sfY2UacA"},
       expect_fields=["key", "info", "info.spend", "info.expires", "info.models"],
       setup={"keys": {"sk-tXL0wt5-lOOVK9sfY2UacA": {}}}),
    ex("key-info-own-key", _code(KEY_ENDPOINTS, "00670428", "info_key_fn"), "GET", "/key/info",
       expect_fields=["key", "info"], setup={"keys": {"sk-test-example-key-123": {}}},
       as_key="sk-test-example-key-123"),
    ex("key-update-models-metadata-team", VIRTUAL_KEYS_OLD, "POST", "/key/update",
       body={"key": "sk-kdEXbIqZRwEeEiHwdg7sFA", "models": ["gpt-3.5-turbo", "gpt-4", "claude-2"],
             "metadata": {"user": "ishaan@berri.ai"}, "team_id": "core-infra"},
       expect_fields=["key", "models", "metadata"],
       setup={"keys": {"sk-kdEXbIqZRwEeEiHwdg7sFA": {}}, "teams": {"core-infra": {}}}),
    ex("key-update-auto-rotate", VIRTUAL_KEYS, "POST", "/key/update",
       body={"key": "sk-existing-key", "auto_rotate": True, "rotation_interval": "90d"},
       expect_fields=["key"], setup={"keys": {"sk-existing-key": {}}},
       differs=(400, "auto_rotate", "`auto_rotate` (with `rotation_interval`)")),
    ex("key-update-temp-budget-duration", VIRTUAL_KEYS, "POST", "/key/update",
       body={"key": "sk-b3Z3Lqdb_detHXSUp4ol4Q", "temp_budget_increase": 100, "temp_budget_expiry": "10d"},
       expect_fields=["key"], setup={"keys": {"sk-b3Z3Lqdb_detHXSUp4ol4Q": {}}}),
    ex("key-update-temp-budget-date", TEMP_BUDGET, "POST", "/key/update",
       body={"key": "sk-your-new-key", "temp_budget_increase": 100, "temp_budget_expiry": "2025-01-15"},
       expect_fields=["key"], setup={"keys": {"sk-your-new-key": {}}},
       note="the documentation's date is past now: the 2xx path is key-update-temp-budget-duration",
       differs=(400, "temp_budget_expiry", "A `temp_budget_expiry` already past")),
    ex("key-update-hide-secrets-off", ENTERPRISE, "POST", "/key/update",
       body={"key": "sk-jNm1Zar7XfNdZXp49Z1kSQ", "permissions": {"hide_secrets": False}},
       expect_fields=["permissions", "key"], setup={"keys": {"sk-jNm1Zar7XfNdZXp49Z1kSQ": {}}}),
    ex("key-update-owner-team-budget", _code(KEY_ENDPOINTS, "00670428", "update_key_fn"), "POST", "/key/update",
       body={"key": "sk-1234", "key_alias": "my-key", "user_id": "user-1234", "team_id": "team-1234",
             "max_budget": 100, "metadata": {"any_key": "any-val"}},
       expect_fields=["key"],
       setup={"keys": {"sk-1234": {}}, "teams": {"team-1234": {}}, "users": ["user-1234"],
              "members": [["user-1234", "team-1234", "user"]]},
       note="the documentation's body has a trailing comma"),
    ex("key-delete", VIRTUAL_KEYS_OLD, "POST", "/key/delete", body={"keys": ["sk-kdEXbIqZRwEeEiHwdg7sFA"]},
       expect_fields=["deleted_keys"], setup={"keys": {"sk-kdEXbIqZRwEeEiHwdg7sFA": {}}},
       note="also in key_management_endpoints.py (delete_key_fn)"),
    ex("key-block", VIRTUAL_KEYS, "POST", "/key/block", body={"key": "KEY-TO-BLOCK"},
       expect_fields=["blocked"], setup={"keys": {"KEY-TO-BLOCK": {}}},
       note="also in key_management_endpoints.py (block_key)"),
    ex("key-unblock", VIRTUAL_KEYS, "POST", "/key/unblock", body={"key": "KEY-TO-UNBLOCK"},
       expect_fields=["blocked"], setup={"keys": {"KEY-TO-UNBLOCK": {}}}),
    ex("key-regenerate-with-changes", VIRTUAL_KEYS, "POST", "/key/sk-1234/regenerate",
       body={"max_budget": 100, "metadata": {"team": "core-infra"}, "models": ["gpt-4", "gpt-3.5-turbo"]},
       expect_fields=["key"], setup={"keys": {"sk-1234": {}}},
       note="also in key_management_endpoints.py (regenerate_key_fn), which accepts /key/regenerate "
            "with the key in the body too"),
    ex("key-bulk-update", _code(KEY_ENDPOINTS, "00670428", "bulk_update_keys"), "POST", "/key/bulk_update",
       body={"keys": [
           {"key": "sk-1234", "max_budget": 100.0, "team_id": "team-123", "tags": ["production", "api"]},
           {"key": "sk-5678", "budget_id": "budget-456", "tags": ["staging"]},
       ]},
       expect_fields=["total_requested", "successful_updates", "failed_updates"],
       setup={"keys": {"sk-1234": {}, "sk-5678": {}}, "teams": {"team-123": {}},
              "budgets": {"budget-456": {"max_budget": 10}}}),
    ex("key-list", _code(KEY_ENDPOINTS, "00670428", "list_keys"), "GET", "/key/list",
       expect_fields=["keys", "total_count", "current_page", "total_pages"]),
    ex("key-health", TEAM_LOGGING, "POST", "/key/health", expect_fields=["key", "logging_callbacks"],
       setup={"keys": {"<your-key>": {}}}, as_key="<your-key>",
       note="also in key_management_endpoints.py (key_health)"),
]

# --- /team/* ----------------------------------------------------------------------------------

MEMBER_5C4A = "5c4a0aa3-a1e1-43dc-bd87-3c2da8382a3a"

TEAM_EXAMPLES = [
    ex("team-new-alias-only", VIRTUAL_KEYS, "POST", "/team/new", body={"team_alias": "my-awesome-team"},
       expect_fields=["team_id", "max_budget"]),
    ex("team-new-admin-and-rpm", USERS, "POST", "/team/new",
       body={"team_alias": "my-new-team_4", "members_with_roles": [{"role": "admin", "user_id": MEMBER_5C4A}],
             "rpm_limit": 99},
       expect_fields=TEAM_NEW_FIELDS, setup={"users": [MEMBER_5C4A]}, note="also in budgets.md"),
    ex("team-new-admin-and-budget-duration", USERS, "POST", "/team/new",
       body={"team_alias": "my-new-team_4", "members_with_roles": [{"role": "admin", "user_id": MEMBER_5C4A}],
             "budget_duration": "30s"},
       expect_fields=["team_id"], setup={"users": [MEMBER_5C4A]},
       note="the documentation's body has a trailing comma; budgets.md has the value unquoted (10s)"),
    ex("team-new-daily-budget", TEAM_BUDGETS, "POST", "/team/new",
       body={"team_alias": "QA Prod Bot", "max_budget": 0.000000001, "budget_duration": "1d"},
       expect_fields=["team_alias", "team_id", "max_budget", "budget_duration", "budget_reset_at"],
       note="also in team_endpoints.py (new_team)"),
    ex("team-new-budget-duration", USERS, "POST", "/team/new", body={"max_budget": 10, "budget_duration": "30s"},
       expect_fields=["team_id"], note="the documentation's body has a comment and a trailing comma"),
    ex("team-new-rate-limits", USERS, "POST", "/team/new",
       body={"team_id": "my-prod-team", "max_parallel_requests": 10, "tpm_limit": 20, "rpm_limit": 4},
       expect_fields=["team_id"]),
    ex("team-new-model-rate-limits", USERS, "POST", "/team/new",
       body={"team_id": "my-prod-team", "model_rpm_limit": MODEL_RPM, "model_tpm_limit": MODEL_TPM},
       expect_fields=["team_id"]),
    ex("team-new-metadata-tags", COST_TRACKING, "POST", "/team/new",
       body={"metadata": {"tags": ["tag1", "tag2", "tag3"]}}, expect_fields=["team_id"]),
    ex("team-new-spend-logs-metadata", COST_TRACKING, "POST", "/team/new",
       body={"metadata": {"spend_logs_metadata": {"hello": "world"}}}, expect_fields=["team_id"]),
    ex("team-new-tags", TAG_ROUTING, "POST", "/team/new", body={"tags": ["teamA"]}, expect_fields=["team_id"],
       note="tag_routing.md also creates {tags: [teamB]}"),
    ex("team-new-model-aliases", TEAM_BASED_ROUTING, "POST", "/team/new",
       body={"team_alias": "my-new-team_4", "model_aliases": {"gpt-3.5-turbo": "gpt-3.5-turbo-eu"}},
       expect_fields=["team_id"]),
    ex("team-new-models", MODEL_ACCESS, "POST", "/team/new",
       body={"team_alias": "litellm-dev", "models": ["azure-gpt-3.5"]}, expect_fields=["team_id"]),
    ex("team-new-default-models", MODEL_ACCESS, "POST", "/team/new",
       body={"team_alias": "engineering", "models": ["gpt-4", "gpt-4o-mini", "gpt-4o"],
             "default_models": ["gpt-4o-mini"]},
       expect_fields=["team_id"]),
    ex("team-new-access-group", MODEL_ACCESS_GROUPS, "POST", "/team/new", body={"models": ["beta-models"]},
       expect_fields=["team_id"]),
    ex("team-new-in-organization", ACCESS_CONTROL, "POST", "/team/new",
       body={"team_alias": "engineering_team", "organization_id": "ad15e8ca-12ae-46f4-8659-d02debef1b23"},
       expect_fields=["team_alias", "team_id", "organization_id"],
       setup={"organizations": ["ad15e8ca-12ae-46f4-8659-d02debef1b23"]},
       note="the documentation sends it with an org admin's key; here the master key"),
    ex("team-new-name-and-id", PUBLIC_TEAMS, "POST", "/team/new", body={"name": "My Team", "team_id": "team_id_1"},
       expect_fields=["team_id"]),
    ex("team-new-members-with-roles", _code(TEAM_ENDPOINTS, "0026911a", "new_team"), "POST", "/team/new",
       body={"team_alias": "my-new-team_2",
             "members_with_roles": [{"role": "admin", "user_id": "user-1234"}, {"role": "user", "user_id": "user-2434"}]},
       expect_fields=["team_id", "members_with_roles"], setup={"users": ["user-1234", "user-2434"]}),
    ex("team-update-model-rate-limits", USERS, "POST", "/team/update",
       body={"team_id": "my-prod-team", "model_rpm_limit": MODEL_RPM, "model_tpm_limit": MODEL_TPM},
       expect_fields=["team_id"], setup={"teams": {"my-prod-team": {}}}),
    ex("team-update-model-rate-limits-in-metadata", USERS, "POST", "/team/update",
       body={"team_id": "my-prod-team", "metadata": {"model_rpm_limit": MODEL_RPM, "model_tpm_limit": MODEL_TPM}},
       expect_fields=["team_id"], setup={"teams": {"my-prod-team": {}}}),
    ex("team-update-budget-changed-by", MULTIPLE_ADMINS, "POST", "/team/update",
       body={"team_id": "8bf18b11-7f52-4717-8e1f-7c65f9d01e52", "max_budget": 2000},
       headers={"HTTP_LITELLM_CHANGED_BY": "krrish@berri.ai"}, expect_fields=["team_id"],
       setup={"teams": {"8bf18b11-7f52-4717-8e1f-7c65f9d01e52": {}}}),
    ex("team-update-tpm-limit", _code(TEAM_ENDPOINTS, "0026911a", "update_team"), "POST", "/team/update",
       body={"team_id": "8d916b1c-510d-4894-a334-1c16a93344f5", "tpm_limit": 100},
       expect_fields=["team_id", "data"], setup={"teams": {"8d916b1c-510d-4894-a334-1c16a93344f5": {}}}),
    ex("team-update-max-budget", _code(TEAM_ENDPOINTS, "0026911a", "update_team"), "POST", "/team/update",
       body={"team_id": "8d916b1c-510d-4894-a334-1c16a93344f5", "max_budget": 10},
       expect_fields=["team_id", "data"], setup={"teams": {"8d916b1c-510d-4894-a334-1c16a93344f5": {}}}),
    ex("team-update-member-permissions", ACCESS_CONTROL, "POST", "/team/update",
       body={"team_id": "team-123",
             "team_member_permissions": ["/key/info", "/key/health", "/key/generate", "/key/update"]},
       expect_fields=["team_id"], setup={"teams": {"team-123": {}}},
       differs=(400, "team_member_permissions", "`team_member_permissions`")),
    ex("team-update-budget-and-rpm", ACCESS_CONTROL, "POST", "/team/update",
       body={"team_id": "01044ee8-441b-45f4-be7d-c70e002722d8", "max_budget": 100, "rpm_limit": 1000},
       expect_fields=["team_id"], setup={"teams": {"01044ee8-441b-45f4-be7d-c70e002722d8": {}}},
       note="the documentation sends it with a team admin's key; here the master key"),
    ex("team-member-add-with-team-budget", USERS, "POST", "/team/member_add",
       body={"team_id": TEAM_UUID, "max_budget_in_team": 0.000000000001,
             "member": {"role": "user", "user_id": "ishaan"}},
       expect_fields=["team_id", "updated_users", "updated_team_memberships"],
       setup={"teams": {TEAM_UUID: {}}, "users": ["ishaan"]}, note="also in budgets.md"),
    ex("team-member-add-admin", ACCESS_CONTROL, "POST", "/team/member_add",
       body={"team_id": "team-123", "member": {"role": "admin", "user_id": "user@company.com"}},
       expect_fields=["team_id", "updated_users", "updated_team_memberships"], setup={"teams": {"team-123": {}}},
       note="the user is new: LiteLLM makes it"),
    ex("team-member-add-user", _code(TEAM_ENDPOINTS, "0026911a", "team_member_add"), "POST", "/team/member_add",
       body={"team_id": "45e3e396-ee08-4a61-a88e-16b3ce7e0849",
             "member": {"role": "user", "user_id": "krrish247652@berri.ai"}},
       expect_fields=["team_id", "updated_users", "updated_team_memberships"],
       setup={"teams": {"45e3e396-ee08-4a61-a88e-16b3ce7e0849": {}}},
       note="also in access_control.md; the user is new: LiteLLM makes it"),
    ex("team-member-add-list", PUBLIC_TEAMS, "POST", "/team/member_add",
       body={"team_id": "team_id_1", "member": [{"role": "user", "user_id": "my-test-user"}]},
       expect_fields=["team_id"], setup={"teams": {"team_id_1": {}}},
       note="the documentation sends it with the joining user's key; here the master key"),
    ex("team-member-add-with-models", MODEL_ACCESS, "POST", "/team/member_add",
       body={"team_id": "<team-id>", "member": {"role": "user", "user_id": "bob", "models": ["gpt-4o"]}},
       expect_fields=["team_id"], setup={"teams": {"<team-id>": {"models": ["gpt-4", "gpt-4o-mini", "gpt-4o"]}}}),
    ex("team-member-update-models", MODEL_ACCESS, "POST", "/team/member_update",
       body={"team_id": "<team-id>", "user_id": "bob", "models": ["gpt-4o", "gpt-4"]},
       expect_fields=["team_id", "user_id"],
       setup={"teams": {"<team-id>": {"models": ["gpt-4", "gpt-4o-mini", "gpt-4o"]}}, "users": ["bob"],
              "members": [["bob", "<team-id>", "user"]]}),
    ex("team-member-update-clear-models", MODEL_ACCESS, "POST", "/team/member_update",
       body={"team_id": "<team-id>", "user_id": "bob", "models": []},
       expect_fields=["team_id", "user_id"],
       setup={"teams": {"<team-id>": {"models": ["gpt-4", "gpt-4o-mini", "gpt-4o"]}}, "users": ["bob"],
              "members": [["bob", "<team-id>", "user"]]}),
    ex("team-member-update-budget-and-role", _code(TEAM_ENDPOINTS, "0026911a", "team_member_update"), "POST",
       "/team/member_update",
       body={"team_id": "team-1234", "user_id": "krrish247652@berri.ai", "max_budget_in_team": 10, "role": "admin"},
       expect_fields=["team_id", "user_id", "user_email", "max_budget_in_team"],
       setup={"teams": {"team-1234": {}}, "users": ["krrish247652@berri.ai"],
              "members": [["krrish247652@berri.ai", "team-1234", "user"]]},
       kind="parameters"),
    ex("team-member-delete", _code(TEAM_ENDPOINTS, "0026911a", "team_member_delete"), "POST", "/team/member_delete",
       body={"team_id": "45e3e396-ee08-4a61-a88e-16b3ce7e0849", "user_id": "krrish247652@berri.ai"},
       setup={"teams": {"45e3e396-ee08-4a61-a88e-16b3ce7e0849": {}}, "users": ["krrish247652@berri.ai"],
              "members": [["krrish247652@berri.ai", "45e3e396-ee08-4a61-a88e-16b3ce7e0849", "user"]]}),
    ex("team-delete", _code(TEAM_ENDPOINTS, "0026911a", "delete_team"), "POST", "/team/delete",
       body={"team_ids": ["8d916b1c-510d-4894-a334-1c16a93344f5"]},
       setup={"teams": {"8d916b1c-510d-4894-a334-1c16a93344f5": {}}}),
    ex("team-info", _code(TEAM_ENDPOINTS, "0026911a", "team_info"), "GET", "/team/info",
       query={"team_id": "your_team_id_here"}, expect_fields=["team_id", "team_info", "keys", "team_memberships"],
       setup={"teams": {"your_team_id_here": {}}}, note="also in virtual_keys.md and team_model_add.md"),
    ex("team-block", _code(TEAM_ENDPOINTS, "0026911a", "block_team"), "POST", "/team/block",
       body={"team_id": "team-1234"}, expect_fields=["team_id", "blocked"], setup={"teams": {"team-1234": {}}}),
    ex("team-unblock", _code(TEAM_ENDPOINTS, "0026911a", "unblock_team"), "POST", "/team/unblock",
       body={"team_id": "team-1234"}, expect_fields=["team_id", "blocked"], setup={"teams": {"team-1234": {}}}),
    ex("team-list", _code(TEAM_ENDPOINTS, "0026911a", "list_team"), "GET", "/team/list", expect_list=True,
       expect_item_fields=["team_id", "team_alias"], setup={"teams": {"team-1234": {}}}),
    ex("team-model-add", _code(TEAM_ENDPOINTS, "0026911a", "team_model_add"), "POST", "/team/model/add",
       body={"team_id": "team-1234", "models": ["gpt-4", "claude-2"]}, expect_fields=["team_id", "models"],
       setup={"teams": {"team-1234": {}}}),
    ex("team-model-delete", _code(TEAM_ENDPOINTS, "0026911a", "team_model_delete"), "POST", "/team/model/delete",
       body={"team_id": "team-1234", "models": ["gpt-4"]}, expect_fields=["team_id", "models"],
       setup={"teams": {"team-1234": {"models": ["gpt-4", "claude-2"]}}}),
    ex("team-permissions-list", ACCESS_CONTROL, "GET", "/team/permissions_list", query={"team_id": "team-123"},
       expect_fields=["team_id", "team_member_permissions", "all_available_permissions"],
       setup={"teams": {"team-123": {}}}),
    ex("team-callback-add", TEAM_LOGGING, "POST", "/team/dbe2f686-a686-4896-864a-4c3924458709/callback",
       body={"callback_name": "langfuse", "callback_type": "success",
             "callback_vars": {"langfuse_public_key": "pk", "langfuse_secret_key": "sk_",
                               "langfuse_host": "https://cloud.langfuse.com"}},
       setup={"teams": {"dbe2f686-a686-4896-864a-4c3924458709": {}}}, expect_fields=["status", "data"]),
    ex("team-callback-get", TEAM_LOGGING, "GET", "/team/dbe2f686-a686-4896-864a-4c3924458709/callback",
       setup={"teams": {"dbe2f686-a686-4896-864a-4c3924458709": {}}}),
    ex("team-disable-logging", TEAM_LOGGING, "POST", "/team/YOUR_TEAM_ID/disable_logging",
       expect_fields=["status", "message", "data"], setup={"teams": {"YOUR_TEAM_ID": {}}}),
]

# --- /user/* ----------------------------------------------------------------------------------

USER_EXAMPLES = [
    ex("user-new-email-only", VIRTUAL_KEYS, "POST", "/user/new", body={"user_email": "krrish@berri.ai"},
       expect_fields=["expires", "user_id", "max_budget"],
       note="the documentation's body leaves the key unquoted ({user_email: ...})"),
    ex("user-new-role-team-budget", VIRTUAL_KEYS_OLD, "POST", "/user/new",
       body={"user_id": "ishaan1", "user_email": "ishaan@litellm.ai", "user_role": "admin", "team_id": "cto-team",
             "max_budget": 20, "budget_duration": "1h"},
       expect_fields=USER_NEW_FIELDS, setup={"teams": {"cto-team": {}}}),
    ex("user-new-id-only", USERS, "POST", "/user/new", body={"user_id": "ishaan"}, expect_fields=["user_id"],
       note="also in budgets.md"),
    ex("user-new-models-zero-budget", USERS, "POST", "/user/new",
       body={"models": ["azure-models"], "max_budget": 0, "user_id": "krrish3@berri.ai"},
       expect_fields=["key", "expires", "user_id", "max_budget"], note="also in virtual_keys.md@003feda3"),
    ex("user-new-team-budget-duration", USERS, "POST", "/user/new",
       body={"team_id": "core-infra", "max_budget": 10, "budget_duration": "30s"}, expect_fields=["user_id"],
       setup={"teams": {"core-infra": {}}}, note="the documentation's body has a comment and a trailing comma"),
    ex("user-new-budget-duration", USERS, "POST", "/user/new", body={"max_budget": 10, "budget_duration": "30s"},
       expect_fields=["user_id"], note="the documentation's body has a comment and a trailing comma"),
    ex("user-new-rate-limits", USERS, "POST", "/user/new",
       body={"user_id": "krrish@berri.ai", "max_parallel_requests": 10, "tpm_limit": 20, "rpm_limit": 4},
       expect_fields=["key", "expires", "user_id"]),
    ex("user-new-access-group", USERS, "POST", "/user/new", body={"models": ["beta-models"], "max_budget": 0},
       expect_fields=["user_id"], note="the documentation's body has a comment"),
    ex("user-new-internal-user", SELF_SERVE, "POST", "/user/new",
       body={"user_email": "krrishdholakia@gmail.com", "user_role": "internal_user"},
       expect_fields=["user_id", "user_email", "user_role"], note="the documentation's body has a comment"),
    ex("user-new-docstring-example", _code(USER_ENDPOINTS, "00025c84", "new_user"), "POST", "/user/new",
       body={"username": "new_user", "email": "new_user@example.com"},
       expect_fields=["key", "expires", "user_id", "max_budget"],
       note="the docstring's fields are not NewUserRequest fields: LiteLLM ignores them and makes a user "
            "with a generated id"),
    ex("user-info", COST_TRACKING, "GET", "/user/info", query={"user_id": "jane_smith"},
       expect_fields=["user_id", "user_info", "user_info.spend", "keys", "teams"], setup={"users": ["jane_smith"]},
       note="also in virtual_keys.md"),
    ex("user-info-email-id", _code(USER_ENDPOINTS, "00025c84", "user_info"), "GET", "/user/info",
       query={"user_id": "krrish7@berri.ai"}, expect_fields=["user_id", "user_info", "keys", "teams"],
       setup={"users": ["krrish7@berri.ai"]}),
    ex("user-update-role", _code(USER_ENDPOINTS, "00025c84", "user_update"), "POST", "/user/update",
       body={"user_id": "test-litellm-user-4", "user_role": "proxy_admin_viewer"}, expect_fields=["user_id"],
       setup={"users": ["test-litellm-user-4"]},
       differs=(400, "user_role", "`proxy_admin_viewer` (a read-only proxy admin)")),
    ex("user-bulk-update-users", _code(USER_ENDPOINTS, "00025c84", "bulk_user_update"), "POST", "/user/bulk_update",
       body={"users": [
           {"user_id": "user1", "user_role": "internal_user", "max_budget": 100.0},
           {"user_email": "user2@example.com", "user_role": "internal_user_viewer", "max_budget": 50.0},
       ]},
       expect_fields=["results", "total_requested", "successful_updates", "failed_updates"],
       setup={"users": ["user1"], "user_emails": {"user2@example.com": "user2"}}),
    ex("user-bulk-update-all", _code(USER_ENDPOINTS, "00025c84", "bulk_user_update"), "POST", "/user/bulk_update",
       body={"all_users": True, "user_updates": {"user_role": "internal_user", "max_budget": 50.0}},
       expect_fields=["results", "total_requested", "successful_updates", "failed_updates"],
       setup={"users": ["user1"]}),
    ex("user-list", _code(USER_ENDPOINTS, "00025c84", "get_users"), "GET", "/user/list",
       expect_fields=["users", "total", "page", "page_size", "total_pages"], setup={"users": ["user1"]}),
    ex("user-delete", _code(USER_ENDPOINTS, "00025c84", "delete_user"), "POST", "/user/delete",
       body={"user_ids": ["45e3e396-ee08-4a61-a88e-16b3ce7e0849"]},
       setup={"users": ["45e3e396-ee08-4a61-a88e-16b3ce7e0849"]}),
    ex("user-daily-activity", COST_TRACKING, "GET", "/user/daily/activity",
       query={"start_date": "2025-03-20", "end_date": "2025-03-27"}, expect_fields=["results", "metadata"]),
]

# --- /organization/* --------------------------------------------------------------------------

ORG_UUID = "ad15e8ca-12ae-46f4-8659-d02debef1b23"
ORG_UUID_2 = "45e3e396-ee08-4a61-a88e-16b3ce7e0849"

ORGANIZATION_EXAMPLES = [
    ex("organization-new-models-budget", ACCESS_CONTROL, "POST", "/organization/new",
       body={"organization_alias": "marketing_department", "models": ["gpt-4"], "max_budget": 20},
       expect_fields=["organization_id", "organization_alias", "budget_id", "metadata", "models", "created_by",
                      "updated_by", "created_at", "updated_at"]),
    ex("organization-new-without-budget-id", _code(ORG_ENDPOINTS, "8f29fdbc", "new_organization"), "POST",
       "/organization/new",
       body={"organization_alias": "my-secret-org", "models": ["model1", "model2"], "max_budget": 100},
       expect_fields=["organization_id", "organization_alias"]),
    ex("organization-new-with-budget-id", _code(ORG_ENDPOINTS, "8f29fdbc", "new_organization"), "POST",
       "/organization/new",
       body={"organization_alias": "my-secret-org", "models": ["model1", "model2"],
             "budget_id": "428eeaa8-f3ac-4e85-a8fb-7dc8d7aa8689"},
       expect_fields=["organization_id", "organization_alias", "budget_id"],
       setup={"budgets": {"428eeaa8-f3ac-4e85-a8fb-7dc8d7aa8689": {"max_budget": 100}}}),
    ex("organization-member-add-org-admin", ACCESS_CONTROL, "POST", "/organization/member_add",
       body={"organization_id": ORG_UUID, "member": {"role": "org_admin", "user_id": "ishaan@berri.ai"}},
       expect_fields=["organization_id", "updated_users", "updated_organization_memberships"],
       setup={"organizations": [ORG_UUID]}, note="the user is new: LiteLLM makes it"),
    ex("organization-member-add-with-budget", _code(ORG_ENDPOINTS, "8f29fdbc", "organization_member_add"), "POST",
       "/organization/member_add",
       body={"organization_id": ORG_UUID_2, "member": {"role": "internal_user", "user_id": "krrish247652@berri.ai"},
             "max_budget_in_organization": 100.0},
       expect_fields=["organization_id", "updated_users", "updated_organization_memberships"],
       setup={"organizations": [ORG_UUID_2]},
       differs=(400, "max_budget_in_organization", "`max_budget_in_organization`, a budget per member")),
    ex("organization-list", _code(ORG_ENDPOINTS, "8f29fdbc", "list_organization"), "GET", "/organization/list",
       expect_list=True, expect_item_fields=["organization_id", "organization_alias"],
       setup={"organizations": [ORG_UUID]}),
    ex("organization-info", _code(ORG_ENDPOINTS, "8f29fdbc", "info_organization"), "GET", "/organization/info",
       query={"organization_id": ORG_UUID}, expect_fields=["organization_id", "organization_alias"],
       setup={"organizations": [ORG_UUID]}, kind="parameters"),
    ex("organization-info-post", _code(ORG_ENDPOINTS, "8f29fdbc", "deprecated_info_organization"), "POST",
       "/organization/info", body={"organizations": [ORG_UUID]}, expect_list=True,
       expect_item_fields=["organization_id"], setup={"organizations": [ORG_UUID]}, kind="parameters",
       note="LiteLLM marks it deprecated (use GET) but still serves it"),
    ex("organization-update-patch", _code(ORG_ENDPOINTS, "8f29fdbc", "update_organization"), "PATCH",
       "/organization/update", body={"organization_id": ORG_UUID, "organization_alias": "marketing_department"},
       expect_fields=["organization_id", "organization_alias"], setup={"organizations": [ORG_UUID]},
       kind="parameters"),
    ex("organization-delete-delete", _code(ORG_ENDPOINTS, "8f29fdbc", "delete_organization"), "DELETE",
       "/organization/delete", body={"organization_ids": [ORG_UUID]}, expect_list=True,
       setup={"organizations": [ORG_UUID]}, kind="parameters"),
    ex("organization-member-update-patch", _code(ORG_ENDPOINTS, "8f29fdbc", "organization_member_update"), "PATCH",
       "/organization/member_update",
       body={"organization_id": ORG_UUID, "user_id": "ishaan@berri.ai", "role": "org_admin"},
       expect_fields=["user_id", "organization_id"],
       setup={"organizations": [ORG_UUID], "users": ["ishaan@berri.ai"],
              "org_members": [["ishaan@berri.ai", ORG_UUID, "internal_user"]]},
       kind="parameters"),
    ex("organization-member-delete-delete", _code(ORG_ENDPOINTS, "8f29fdbc", "organization_member_delete"),
       "DELETE", "/organization/member_delete", body={"organization_id": ORG_UUID, "user_id": "ishaan@berri.ai"},
       setup={"organizations": [ORG_UUID], "users": ["ishaan@berri.ai"],
              "org_members": [["ishaan@berri.ai", ORG_UUID, "internal_user"]]},
       kind="parameters"),
]

# --- /model/* (and /model_group/info, /v1 and /v2 model info) --------------------------------

MODEL_EXAMPLES = [
    ex("model-info", MODEL_MANAGEMENT, "GET", "/model/info", expect_fields=["data"],
       setup={"model_names": ["gpt-4"]}),
    ex("model-info-v1", MODEL_MANAGEMENT, "GET", "/v1/model/info", expect_fields=["data"],
       setup={"model_names": ["gpt-4"]}),
    ex("model-info-by-id", "https://docs.litellm.ai/docs/proxy/model_management; LiteLLM's model_info route "
       "(litellm/proxy/proxy_server.py) takes litellm_model_id", "GET", "/model/info",
       query={"litellm_model_id": "<model_id>"}, expect_fields=["data"],
       setup={"model_ids": {"<model_id>": "gpt-4"}}, kind="parameters"),
    ex("model-info-v2", "BerriAI/litellm litellm/proxy/proxy_server.py (GET /v2/model/info; no example)", "GET",
       "/v2/model/info", expect_fields=["data"], setup={"model_names": ["gpt-4"]}, kind="parameters"),
    ex("model-group-info", MODEL_GROUP_INFO, "GET", "/model_group/info", expect_fields=["data"],
       setup={"model_names": ["gpt-3.5-turbo"]}),
    ex("model-group-info-one-group", MODEL_GROUP_INFO, "GET", "/model_group/info",
       query={"model_group": "rerank-english-v3.0"}, expect_fields=["data"],
       setup={"model_names": ["rerank-english-v3.0"]}),
    ex("model-group-info-wildcard", MODEL_GROUP_INFO, "GET", "/model_group/info",
       query={"model_group": "openai/tts-1"}, expect_fields=["data"], setup={"model_names": ["openai/*"]}),
    ex("model-new-azure-env-key", MODEL_MANAGEMENT, "POST", "/model/new",
       body={"model_name": "azure-gpt-turbo",
             "litellm_params": {"model": "azure/gpt-3.5-turbo", "api_key": "os.environ/AZURE_API_KEY",
                                "api_base": "my-azure-api-base"}},
       expect_fields=["model_id"], setup={"env": {"AZURE_API_KEY": "sk-azure-test"}},
       note="response field from /work/shared/reference/litellm-compat.md (\"Includes model_id\")"),
    ex("model-new-team-model", TEAM_MODEL_ADD, "POST", "/model/new",
       body={"model_name": "my-team-model",
             "litellm_params": {"model": "openai/gpt-4o", "custom_llm_provider": "openai", "api_key": "******ccb07",
                                # The documented host, under .invalid: stored only, never resolvable.
                                "api_base": "https://my-endpoint-sweden-berri992.openai.azure.invalid",
                                "api_version": "2023-12-01-preview"},
             "model_info": {"team_id": "e59e2671-a064-436a-a0fa-16ae96e5a0a1"}},
       expect_fields=["model_id"], setup={"teams": {"e59e2671-a064-436a-a0fa-16ae96e5a0a1": {}}},
       note="the documentation sends it with the team's key; here the master key; it has comments"),
    ex("model-new-team-model-limits", TEAM_MODEL_ADD, "POST", "/model/new",
       body={"model_name": "my-team-model",
             "litellm_params": {"model": "openai/gpt-4o", "custom_llm_provider": "openai", "api_key": "******ccb07"},
             "model_info": {"team_id": "e59e2671-a064-436a-a0fa-16ae96e5a0a1", "team_model_rpm_limit": 60,
                            "team_model_tpm_limit": 120000}},
       expect_fields=["model_id"], setup={"teams": {"e59e2671-a064-436a-a0fa-16ae96e5a0a1": {}}},
       note="also in model_management.md"),
    ex("model-patch-team-limits", TEAM_MODEL_ADD, "PATCH", "/model/<model_id>/update",
       body={"model_info": {"team_id": "e59e2671-a064-436a-a0fa-16ae96e5a0a1", "team_model_rpm_limit": 80,
                            "team_model_tpm_limit": 180000}},
       setup={"teams": {"e59e2671-a064-436a-a0fa-16ae96e5a0a1": {}}, "model_ids": {"<model_id>": "my-team-model"}},
       note="also in model_management.md"),
    ex("model-update-legacy-team-limits", TEAM_MODEL_ADD, "POST", "/model/update",
       body={"model_info": {"id": "<model_id>", "team_id": "e59e2671-a064-436a-a0fa-16ae96e5a0a1",
                            "team_model_rpm_limit": 80, "team_model_tpm_limit": 180000},
             "litellm_params": {"model": "openai/gpt-4o"}},
       setup={"teams": {"e59e2671-a064-436a-a0fa-16ae96e5a0a1": {}}, "model_ids": {"<model_id>": "my-team-model"}}),
    ex("model-delete", "BerriAI/litellm litellm/proxy/proxy_server.py (POST /model/delete, body ModelInfoDelete "
       "{id})", "POST", "/model/delete", body={"id": "<model_id>"}, setup={"model_ids": {"<model_id>": "gpt-4"}},
       kind="parameters"),
]

# --- /spend/* and /global/spend/* --------------------------------------------------------------

REQUEST_ID = "chatcmpl-6dcb2540-d3d7-4e49-bb27-291f863f112e"
SPEND_LOG_SETUP = {"keys": {"sk-Fn8Ej39NkBQmUagFEoUWPQ": {"user": "ishaan@berri.ai"}},
                   "users": ["ishaan@berri.ai"],
                   "spend_logs": {REQUEST_ID: {"key": "sk-Fn8Ej39NkBQmUagFEoUWPQ",
                                               "tags": ["model-anthropic-claude-v2.1", "app-ishaan-prod"]}}}
SPEND_LOG_FIELDS = ["request_id", "call_type", "metadata"]
REPORT_DATES = {"start_date": "2024-04-01", "end_date": "2024-06-30"}

SPEND_EXAMPLES = [
    ex("spend-logs-all", _code(SPEND_ENDPOINTS, "00bc59b8", "view_spend_logs"), "GET", "/spend/logs",
       expect_list=True, expect_item_fields=SPEND_LOG_FIELDS, setup=SPEND_LOG_SETUP),
    ex("spend-logs-by-request-id", COST_TRACKING, "GET", "/spend/logs", query={"request_id": REQUEST_ID},
       expect_list=True, expect_item_fields=SPEND_LOG_FIELDS, setup=SPEND_LOG_SETUP,
       note="also in spend_management_endpoints.py (view_spend_logs)"),
    ex("spend-logs-by-api-key", _code(SPEND_ENDPOINTS, "00bc59b8", "view_spend_logs"), "GET", "/spend/logs",
       query={"api_key": "sk-Fn8Ej39NkBQmUagFEoUWPQ"}, expect_list=True, expect_item_fields=SPEND_LOG_FIELDS,
       setup=SPEND_LOG_SETUP),
    ex("spend-logs-by-user-id", _code(SPEND_ENDPOINTS, "00bc59b8", "view_spend_logs"), "GET", "/spend/logs",
       query={"user_id": "ishaan@berri.ai"}, expect_list=True, expect_item_fields=SPEND_LOG_FIELDS,
       setup=SPEND_LOG_SETUP),
    ex("spend-logs-date-range-unsummarized", COST_TRACKING, "GET", "/spend/logs",
       query={"start_date": "2024-01-01", "end_date": "2024-01-02", "summarize": "false"}, expect_list=True,
       note="also in spend_management_endpoints.py (view_spend_logs)"),
    ex("spend-logs-date-range-summarized", COST_TRACKING, "GET", "/spend/logs",
       query={"start_date": "2024-01-01", "end_date": "2024-01-02"}, expect_list=True),
    ex("spend-tags", ENTERPRISE, "GET", "/spend/tags", expect_list=True,
       expect_item_fields=["individual_request_tag", "log_count", "total_spend"], setup=SPEND_LOG_SETUP,
       note="also in spend_management_endpoints.py (view_spend_tags)"),
    ex("spend-tags-date-range", _code(SPEND_ENDPOINTS, "00bc59b8", "view_spend_tags"), "GET", "/spend/tags",
       query={"start_date": "2022-01-01", "end_date": "2022-02-01"}, expect_list=True,
       expect_item_fields=["individual_request_tag", "log_count", "total_spend"]),
    ex("spend-calculate-before-call", ENTERPRISE, "POST", "/spend/calculate",
       body={"model": "gpt-4", "messages": CHAT_MESSAGES}, expect_fields=["cost"],
       note="enterprise.md calls it without a key (a public route there); here with the master key"),
    ex("spend-calculate-model-not-on-proxy", _code(SPEND_ENDPOINTS, "00bc59b8", "calculate_spend"), "POST",
       "/spend/calculate", body={"model": "anthropic.claude-v2", "messages": CHAT_MESSAGES},
       expect_fields=["cost"]),
    ex("spend-calculate-after-call", _code(SPEND_ENDPOINTS, "00bc59b8", "calculate_spend"), "POST",
       "/spend/calculate",
       body={"completion_response": {
           "id": "chatcmpl-123", "object": "chat.completion", "created": 1677652288,
           "model": "gpt-3.5-turbo-0125", "system_fingerprint": "fp_44709d6fcb",
           "choices": [{"index": 0, "message": {"role": "assistant",
                                                "content": "Hello there, how may I assist you today?"},
                        "logprobs": None, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}}},
       expect_fields=["cost"], note="the docstring's body misses a comma before \"usage\""),
    ex("global-spend-report", COST_TRACKING, "GET", "/global/spend/report", query=REPORT_DATES, expect_list=True),
    ex("global-spend-report-by-team", COST_TRACKING, "GET", "/global/spend/report",
       query={**REPORT_DATES, "group_by": "team"}, expect_list=True),
    ex("global-spend-report-by-customer", COST_TRACKING, "GET", "/global/spend/report",
       query={**REPORT_DATES, "group_by": "customer"}, expect_list=True),
    ex("global-spend-report-for-key", COST_TRACKING, "GET", "/global/spend/report",
       query={**REPORT_DATES, "api_key": "sk-1234"}, expect_list=True, setup={"keys": {"sk-1234": {}}}),
    ex("global-spend-report-for-user", COST_TRACKING, "GET", "/global/spend/report",
       query={"start_date": "2024-04-01", "end_date": "2024-12-30", "internal_user_id": "ishaan"},
       expect_list=True, setup={"users": ["ishaan"]}),
    ex("global-spend-reset", COST_TRACKING, "POST", "/global/spend/reset", expect_fields=["message", "status"]),
    ex("global-spend-logs", _code(SPEND_ENDPOINTS, "00bc59b8", "global_spend_logs"), "GET", "/global/spend/logs",
       expect_list=True, kind="parameters"),
    ex("global-spend-keys", _code(SPEND_ENDPOINTS, "00bc59b8", "global_spend_keys"), "GET", "/global/spend/keys",
       query={"limit": "5"}, expect_list=True, kind="parameters"),
    ex("global-spend-models", _code(SPEND_ENDPOINTS, "00bc59b8", "global_spend_models"), "GET",
       "/global/spend/models", query={"limit": "10"}, expect_list=True, kind="parameters"),
    ex("global-spend-tags", _code(SPEND_ENDPOINTS, "00bc59b8", "global_view_spend_tags"), "GET",
       "/global/spend/tags", query={"start_date": "2022-01-01", "end_date": "2022-02-01"},
       expect_fields=["spend_per_tag"], kind="parameters",
       note="the docstring's curl shows /spend/tags with these dates. The route declares List[LiteLLM_SpendLogs] "
            "as its answer only as OpenAPI text (`responses=`); it returns ui_get_spend_by_tags's "
            "{\"spend_per_tag\": [{name, spend, log_count}]} (BerriAI/litellm "
            "litellm/proxy/spend_tracking/spend_management_endpoints.py), which LiteLLM's UI reads"),
    ex("global-spend-total", _code(SPEND_ENDPOINTS, "00bc59b8", "global_spend"), "GET", "/global/spend",
       expect_fields=["spend", "max_budget"], kind="parameters"),
    ex("global-spend-teams", _code(SPEND_ENDPOINTS, "00bc59b8", "global_spend_per_team"), "GET",
       "/global/spend/teams", expect_fields=["daily_spend", "teams", "total_spend_per_team"], kind="parameters"),
]

# --- /customer/* ------------------------------------------------------------------------------

CUSTOMER_EXAMPLES = [
    ex("customer-new-with-budget", CUSTOMERS, "POST", "/customer/new",
       body={"user_id": "my-customer-id", "max_budget": "0"}, expect_fields=["user_id"],
       note="the documentation's body has a comment and a trailing comma; max_budget is the string \"0\""),
    ex("customer-new-on-budget-tier", CUSTOMERS, "POST", "/customer/new",
       body={"user_id": "my-customer-id", "budget_id": "my-free-tier"}, expect_fields=["user_id"],
       setup={"budgets": {"my-free-tier": {"max_budget": 4}}},
       note="also in users.md ({user_id: palantir, budget_id: free-tier})"),
    ex("customer-new-region-and-default-model", _code(CUSTOMER_ENDPOINTS, "029f645f", "new_end_user"), "POST",
       "/customer/new",
       body={"user_id": "ishaan-jaff-3", "allowed_region": "eu", "budget_id": "free_tier",
             "default_model": "azure/gpt-3.5-turbo-eu"},
       expect_fields=["user_id"],
       setup={"budgets": {"free_tier": {"max_budget": 4}}, "model_names": ["azure/gpt-3.5-turbo-eu"]},
       differs=(400, "allowed_region", "`allowed_model_region` (and `allowed_region`")),
    ex("customer-new-object-permission", _code(CUSTOMER_ENDPOINTS, "029f645f", "new_end_user"), "POST",
       "/customer/new",
       body={"user_id": "user_1", "object_permission": {"mcp_servers": ["server_1"],
                                                        "mcp_access_groups": ["public_group"],
                                                        "vector_stores": ["vector_store_1"]}},
       expect_fields=["user_id"],
       differs=(400, "object_permission", "`object_permission` grants MCP servers")),
    ex("end-user-new-allowed-region", CUSTOMER_ROUTING, "POST", "/end_user/new",
       body={"user_id": "ishaan-jaff-45", "allowed_model_region": "eu"}, expect_fields=["user_id"],
       note="the documentation's body has a comment and a trailing comma; /end_user/* is LiteLLM's older "
            "name of /customer/*, still served",
       differs=(400, "allowed_model_region", "`allowed_model_region` (and `allowed_region`")),
    ex("customer-info", CUSTOMERS, "GET", "/customer/info", query={"end_user_id": "ishaan3"},
       expect_fields=CUSTOMER_FIELDS, setup={"customers": {"ishaan3": {}}},
       note="also in customer_endpoints.py (end_user_info)"),
    ex("customer-update-budget-tier", _code(CUSTOMER_ENDPOINTS, "029f645f", "update_end_user"), "POST",
       "/customer/update", body={"user_id": "test-litellm-user-4", "budget_id": "paid_tier"},
       expect_fields=["user_id"],
       setup={"customers": {"test-litellm-user-4": {}}, "budgets": {"paid_tier": {"max_budget": 100}}}),
    ex("customer-update-object-permission", _code(CUSTOMER_ENDPOINTS, "029f645f", "update_end_user"), "POST",
       "/customer/update",
       body={"user_id": "user_1", "object_permission": {"mcp_servers": ["server_3"],
                                                        "vector_stores": ["vector_store_2", "vector_store_3"]}},
       expect_fields=["user_id"], setup={"customers": {"user_1": {}}},
       differs=(400, "object_permission", "`object_permission` grants MCP servers")),
    ex("customer-delete", _code(CUSTOMER_ENDPOINTS, "029f645f", "delete_end_user"), "POST", "/customer/delete",
       body={"user_ids": ["ishaan-jaff-5"]}, expect_fields=["deleted_customers", "message"],
       setup={"customers": {"ishaan-jaff-5": {}}}),
    ex("customer-list", _code(CUSTOMER_ENDPOINTS, "029f645f", "list_end_user"), "GET", "/customer/list",
       expect_list=True, expect_item_fields=["user_id", "blocked", "spend"], setup={"customers": {"ishaan3": {}}}),
    ex("customer-block", ENTERPRISE, "POST", "/customer/block", body={"user_ids": ["user_id_1"]},
       expect_fields=["blocked_users"], setup={"customers": {"user_id_1": {}}},
       note="the documentation's body holds a placeholder list ([<user_id>, ...]); also in "
            "customer_endpoints.py (block_user)"),
    ex("customer-unblock", _code(CUSTOMER_ENDPOINTS, "029f645f", "unblock_user"), "POST", "/customer/unblock",
       body={"user_ids": ["user_id_1"]}, expect_fields=["blocked_users"], setup={"customers": {"user_id_1": {}}},
       note="the docstring's curl names /user/unblock; the route is /customer/unblock"),
]

# --- /budget/* --------------------------------------------------------------------------------

BUDGET_EXAMPLES = [
    ex("budget-new-max-budget", CUSTOMERS, "POST", "/budget/new", body={"budget_id": "my-free-tier", "max_budget": 4},
       expect_fields=["budget_id", "max_budget"]),
    ex("budget-new-tpm-limit", USERS, "POST", "/budget/new", body={"budget_id": "free-tier", "tpm_limit": 5},
       expect_fields=["budget_id", "tpm_limit"]),
    ex("budget-new-rpm-limit", RATE_LIMIT_TIERS, "POST", "/budget/new",
       body={"budget_id": "my-test-tier", "rpm_limit": 0}, expect_fields=["budget_id", "rpm_limit"]),
    ex("budget-update", _code(BUDGET_ENDPOINTS, "023475ef", "update_budget"), "POST", "/budget/update",
       body={"budget_id": "my-free-tier", "max_budget": 10}, expect_fields=["budget_id", "max_budget"],
       setup={"budgets": {"my-free-tier": {"max_budget": 4}}}, kind="parameters"),
    ex("budget-info", _code(BUDGET_ENDPOINTS, "023475ef", "info_budget"), "POST", "/budget/info",
       body={"budgets": ["my-free-tier"]}, expect_list=True, expect_item_fields=["budget_id", "max_budget"],
       setup={"budgets": {"my-free-tier": {"max_budget": 4}}}, kind="parameters"),
    ex("budget-list", _code(BUDGET_ENDPOINTS, "023475ef", "list_budget"), "GET", "/budget/list", expect_list=True,
       expect_item_fields=["budget_id"], setup={"budgets": {"my-free-tier": {"max_budget": 4}}},
       kind="parameters"),
    ex("budget-settings", _code(BUDGET_ENDPOINTS, "023475ef", "budget_settings"), "GET", "/budget/settings",
       query={"budget_id": "my-free-tier"}, expect_list=True,
       expect_item_fields=["field_name", "field_type", "field_value"],
       setup={"budgets": {"my-free-tier": {"max_budget": 4}}}, kind="parameters"),
    ex("budget-delete", _code(BUDGET_ENDPOINTS, "023475ef", "delete_budget"), "POST", "/budget/delete",
       body={"id": "my-free-tier"}, setup={"budgets": {"my-free-tier": {"max_budget": 4}}}, kind="parameters"),
]

EXAMPLES = [
    *KEY_EXAMPLES,
    *TEAM_EXAMPLES,
    *USER_EXAMPLES,
    *ORGANIZATION_EXAMPLES,
    *MODEL_EXAMPLES,
    *SPEND_EXAMPLES,
    *CUSTOMER_EXAMPLES,
    *BUDGET_EXAMPLES,
]
