"""What the data plane knows about a key: everything needed to authorize a request, in memory."""

from __future__ import annotations

from dataclasses import dataclass

from apps.keys.limits import LimitScope


@dataclass(frozen=True, slots=True)
class KeyContext:
    key_id: int | None
    token_hash: str
    alias: str
    user_id: int | None
    team_id: str | None
    organization_id: str | None
    # Allowed model names at each level that restricts them (key, user, team, organization).
    allowed_models: tuple[frozenset[str], ...]
    expires_at: float | None  # unix time
    blocked_reason: str | None  # why any level is blocked, if it is
    # The levels with limits (rpm, tpm, parallel requests, budgets), key first.
    scopes: tuple[LimitScope, ...] = ()
    is_master: bool = False

    def may_use_model(self, model: str) -> bool:
        if self.is_master:
            return True
        return all(model in allowed for allowed in self.allowed_models)


MASTER_KEY_CONTEXT = KeyContext(
    key_id=None,
    token_hash="",
    alias="master",
    user_id=None,
    team_id=None,
    organization_id=None,
    allowed_models=(),
    expires_at=None,
    blocked_reason=None,
    is_master=True,
)
