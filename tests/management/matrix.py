"""The management API's permission matrix: the one source of docs/permissions.md's table and of
the test that checks every cell (tests/management/test_permission_matrix.py).

A cell is "403", or the scope in which the role may call the endpoint. Print the table with
`python -m tests.management.matrix`.
"""

from __future__ import annotations

ROLES = ("proxy_admin", "org_admin", "team_admin", "member", "viewer", "plain_key")
ROLE_TITLES = ("proxy admin", "org admin", "team admin", "member", "viewer", "plain key")
DENIED = "403"

# endpoint → one cell per role, in ROLES order.
MATRIX: dict[str, tuple[str, str, str, str, str, str]] = {
    "POST /key/generate": (
        "any owner",
        "in its orgs, for their users (not staff)",
        "in its teams, for their members (not staff)",
        "its own (in its teams)",
        DENIED,
        DENIED,
    ),
    "POST /key/update": (
        "any key",
        "its orgs' keys",
        "its teams' keys, its own",
        "its own: key_alias, metadata",
        DENIED,
        DENIED,
    ),
    "POST /key/delete": ("any key", "its orgs' keys", "its teams' keys, its own", "its own", DENIED, DENIED),
    "GET /key/info": (
        "any key",
        "its orgs' keys",
        "its teams' keys, its own",
        "its own",
        "its own",
        "itself",
    ),
    "GET /key/list": ("all", "its orgs' keys", "its teams' keys, its own", "its own", "its own", DENIED),
    "POST /key/regenerate": (
        "any key",
        "its orgs' keys (not staff users')",
        "its teams' keys (not staff users'), its own",
        "its own",
        DENIED,
        DENIED,
    ),
    "POST /key/block": ("any key", "its orgs' keys", "its teams' keys", DENIED, DENIED, DENIED),
    "POST /key/unblock": ("any key", "its orgs' keys", "its teams' keys", DENIED, DENIED, DENIED),
    "POST /key/bulk_update": (
        "any key",
        "its orgs' keys",
        "its teams' keys, its own",
        "its own: key_alias, metadata",
        DENIED,
        DENIED,
    ),
    "POST /key/service-account/generate": (
        "any team",
        "in its orgs' teams",
        "in its teams",
        DENIED,
        DENIED,
        DENIED,
    ),
    "POST /key/health": ("itself", "itself", "itself", "itself", "itself", "itself"),
    "POST /team/new": ("in any org", "in its orgs", DENIED, DENIED, DENIED, DENIED),
    "POST /team/update": (
        "any team",
        "its orgs' teams",
        "its teams: team_alias, metadata",
        DENIED,
        DENIED,
        DENIED,
    ),
    "POST /team/delete": ("any team", "its orgs' teams", DENIED, DENIED, DENIED, DENIED),
    "GET /team/info": (
        "any team",
        "its orgs' teams",
        "its teams",
        "its teams (own keys)",
        "its teams (own keys)",
        DENIED,
    ),
    "GET /team/list": ("all", "its orgs' teams", "its teams", "its teams", "its teams", DENIED),
    "POST /team/member_add": (
        "any team",
        "its orgs' teams: new users, its orgs' users (not staff)",
        "its teams: new users, its org's users (not staff)",
        DENIED,
        DENIED,
        DENIED,
    ),
    "POST /team/member_delete": ("any team", "its orgs' teams", "its teams", DENIED, DENIED, DENIED),
    "POST /team/member_update": (
        "any team",
        "its orgs' teams (not staff, not other orgs' users)",
        "its teams (not staff, not other orgs' users)",
        DENIED,
        DENIED,
        DENIED,
    ),
    "POST /team/block": ("any team", "its orgs' teams", DENIED, DENIED, DENIED, DENIED),
    "POST /team/unblock": ("any team", "its orgs' teams", DENIED, DENIED, DENIED, DENIED),
    "POST /team/model/add": ("any team", "its orgs' teams: models its org allows", DENIED, DENIED, DENIED, DENIED),
    "POST /team/model/delete": ("any team", "its orgs' teams", DENIED, DENIED, DENIED, DENIED),
    "GET /team/permissions_list": ("any team", "its orgs' teams", "its teams", "its teams", "its teams", DENIED),
    "GET /team/{team_id}/callback": ("any team", "its orgs' teams", "its teams", "its teams", "its teams", DENIED),
    "POST /team/{team_id}/callback": (
        "any team",
        "its orgs' teams (no os.environ/, key files or hosts on the gateway's network)",
        "its teams (no os.environ/, key files or hosts on the gateway's network)",
        DENIED,
        DENIED,
        DENIED,
    ),
    "DELETE /team/{team_id}/callback": ("any team", "its orgs' teams", "its teams", DENIED, DENIED, DENIED),
    "POST /team/{team_id}/disable_logging": ("any team", "its orgs' teams", DENIED, DENIED, DENIED, DENIED),
    "POST /user/new": ("any user", "into its orgs (not proxy_admin)", DENIED, DENIED, DENIED, DENIED),
    "POST /user/update": (
        "any user",
        "users only in its orgs, not staff, org admins or itself (user_role: internal_user or "
        "internal_user_viewer only; no password)",
        DENIED,
        DENIED,
        DENIED,
        DENIED,
    ),
    "POST /user/bulk_update": (
        "any user; all_users",
        "each as /user/update (not all_users)",
        DENIED,
        DENIED,
        DENIED,
        DENIED,
    ),
    "POST /user/delete": (
        "any user",
        "users only in its orgs, not staff, org admins or itself",
        DENIED,
        DENIED,
        DENIED,
        DENIED,
    ),
    "GET /user/info": (
        "any user",
        "users in its orgs",
        "its teams' members, itself",
        "itself",
        "itself",
        DENIED,
    ),
    "GET /user/list": ("all", "users in its orgs", "its teams' members, itself", "itself", "itself", DENIED),
    "GET /user/daily/activity": (
        "all",
        "its own; by user_id, its orgs' users'",
        "its own; by user_id, its teams' members' in its teams",
        "its own",
        "its own",
        "its own key's",
    ),
    "POST /organization/new": ("yes", DENIED, DENIED, DENIED, DENIED, DENIED),
    "POST /organization/update": (
        "any org",
        "its orgs: organization_alias, metadata",
        DENIED,
        DENIED,
        DENIED,
        DENIED,
    ),
    "PATCH /organization/update": (
        "any org",
        "its orgs: organization_alias, metadata",
        DENIED,
        DENIED,
        DENIED,
        DENIED,
    ),
    "POST /organization/delete": ("any org", DENIED, DENIED, DENIED, DENIED, DENIED),
    "DELETE /organization/delete": ("any org", DENIED, DENIED, DENIED, DENIED, DENIED),
    "GET /audit/logs": ("all entries", "its orgs' entries", DENIED, DENIED, DENIED, DENIED),
    "GET /organization/info": ("any org", "its orgs", DENIED, DENIED, DENIED, DENIED),
    "POST /organization/info": ("any org", "its orgs", DENIED, DENIED, DENIED, DENIED),
    "GET /organization/list": (
        "all",
        "its orgs",
        "its orgs (none here)",
        "its orgs (none here)",
        "its orgs (none here)",
        DENIED,
    ),
    "POST /organization/member_add": (
        "any org",
        "its orgs: new users, its orgs' users (not staff)",
        DENIED,
        DENIED,
        DENIED,
        DENIED,
    ),
    "POST /organization/member_update": (
        "any org",
        "its orgs (not staff, not other orgs' users; no role above its own)",
        DENIED,
        DENIED,
        DENIED,
        DENIED,
    ),
    "PATCH /organization/member_update": (
        "any org",
        "its orgs (not staff, not other orgs' users; no role above its own)",
        DENIED,
        DENIED,
        DENIED,
        DENIED,
    ),
    "POST /organization/member_delete": ("any org", "its orgs", DENIED, DENIED, DENIED, DENIED),
    "DELETE /organization/member_delete": ("any org", "its orgs", DENIED, DENIED, DENIED, DENIED),
    "POST /model/new": ("yes", DENIED, DENIED, DENIED, DENIED, DENIED),
    "POST /model/update": ("API-made models", DENIED, DENIED, DENIED, DENIED, DENIED),
    "POST /model/delete": ("API-made models", DENIED, DENIED, DENIED, DENIED, DENIED),
    "GET /model/info": (
        "all",
        "shared and its orgs' models",
        "what its teams allow",
        "what its teams allow",
        "what its teams allow",
        DENIED,
    ),
    "GET /v2/model/info": (
        "all",
        "what its key may use",
        "what its key may use",
        "what its key may use",
        "what its key may use",
        "what it may use",
    ),
    "GET /model_group/info": (
        "all",
        "what its key may use",
        "what its key may use",
        "what its key may use",
        "what its key may use",
        "what it may use",
    ),
    "POST /customer/new": ("in any org, or outside orgs", "in its orgs", DENIED, DENIED, DENIED, DENIED),
    "POST /customer/update": ("any end user", "its orgs' end users", DENIED, DENIED, DENIED, DENIED),
    "POST /customer/delete": ("any end user", "its orgs' end users", DENIED, DENIED, DENIED, DENIED),
    "GET /customer/info": ("any end user", "its orgs' end users", DENIED, DENIED, DENIED, DENIED),
    "GET /customer/list": ("all", "its orgs' end users", DENIED, DENIED, DENIED, DENIED),
    "POST /customer/block": ("any end user", "its orgs' end users", DENIED, DENIED, DENIED, DENIED),
    "POST /customer/unblock": ("any end user", "its orgs' end users", DENIED, DENIED, DENIED, DENIED),
    "POST /budget/new": ("in any org, or outside orgs", "in its orgs", DENIED, DENIED, DENIED, DENIED),
    "POST /budget/update": ("any budget", "its orgs' budgets", DENIED, DENIED, DENIED, DENIED),
    "POST /budget/delete": ("any budget", "its orgs' budgets", DENIED, DENIED, DENIED, DENIED),
    "POST /budget/info": ("any budget", "its orgs' budgets", DENIED, DENIED, DENIED, DENIED),
    "GET /budget/list": ("all", "its orgs' budgets", DENIED, DENIED, DENIED, DENIED),
    "GET /budget/settings": ("any budget", "its orgs' budgets", DENIED, DENIED, DENIED, DENIED),
    "GET /spend/logs": (
        "all",
        "its orgs' spend, its own",
        "its teams' spend, its own",
        "its own",
        "its own",
        "its own key's",
    ),
    "GET /spend/report": (
        "all",
        "its orgs' spend, its own",
        "its teams' spend, its own",
        "its own",
        "its own",
        "its own key's",
    ),
    "GET /global/spend": (
        "all",
        "its orgs' spend, its own",
        "its teams' spend, its own",
        "its own",
        "its own",
        "its own key's",
    ),
    "GET /global/spend/report": (
        "all",
        "its orgs' spend, its own",
        "its teams' spend, its own",
        "its own",
        "its own",
        "its own key's",
    ),
    "GET /global/spend/teams": (
        "all",
        "its orgs' spend, its own",
        "its teams' spend, its own",
        "its own",
        "its own",
        "its own key's",
    ),
    "POST /global/spend/reset": ("every budget", DENIED, DENIED, DENIED, DENIED, DENIED),
    "GET /global/spend/logs": (
        "all",
        "its orgs' spend, its own",
        "its teams' spend, its own",
        "its own",
        "its own",
        "its own key's",
    ),
    "GET /global/spend/keys": (
        "all",
        "its orgs' spend, its own",
        "its teams' spend, its own",
        "its own",
        "its own",
        "its own key's",
    ),
    "GET /global/spend/models": (
        "all",
        "its orgs' spend, its own",
        "its teams' spend, its own",
        "its own",
        "its own",
        "its own key's",
    ),
    "GET /global/spend/tags": (
        "all",
        "its orgs' spend, its own",
        "its teams' spend, its own",
        "its own",
        "its own",
        "its own key's",
    ),
    "GET /spend/tags": (
        "all",
        "its orgs' spend, its own",
        "its teams' spend, its own",
        "its own",
        "its own",
        "its own key's",
    ),
    "POST /spend/calculate": (
        "any model",
        "shared and its orgs' models, the catalog",
        "what its teams allow, the catalog",
        "what its teams allow, the catalog",
        "what its teams allow, the catalog",
        "what it may call, the catalog",
    ),
}


# Routes that are only another name of a route of the matrix (LiteLLM's older names): the same
# view, so the same rights; test_permission_matrix checks that each serves its target's view.
ALIASES = {f"/end_user/{action}": f"/customer/{action}"
           for action in ("new", "update", "delete", "info", "list", "block", "unblock")}
ALIASES["/v1/model/info"] = "/model/info"
ALIASES["/model/{model_id}/update"] = "/model/update"  # LiteLLM's PATCH form
ALIASES["/key/{key}/regenerate"] = "/key/regenerate"  # the key in the path rather than the body


def render_markdown() -> str:
    """The matrix as the Markdown table docs/permissions.md carries."""
    lines = [
        "| Endpoint | " + " | ".join(ROLE_TITLES) + " |",
        "|---|" + "---|" * len(ROLES),
    ]
    for endpoint, cells in MATRIX.items():
        lines.append(f"| `{endpoint}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
