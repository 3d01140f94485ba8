"""What the data plane knows about a key: everything needed to authorize a request, in memory."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class KeyContext:
    key_id: int | None
    token_hash: str
    alias: str
    user_id: int | None
    team_id: str | None
    organization_id: str | None
    # Allowed model names at each level; None means no restriction at that level.
    key_models: frozenset[str] | None
    team_models: frozenset[str] | None
    organization_models: frozenset[str] | None
    max_budget: Decimal | None
    rpm_limit: int | None
    tpm_limit: int | None
    expires_at: float | None  # unix time
    blocked_reason: str | None  # why any level is blocked, if it is
    is_master: bool = False

    def may_use_model(self, model: str) -> bool:
        if self.is_master:
            return True
        for allowed in (self.key_models, self.team_models, self.organization_models):
            if allowed is not None and model not in allowed:
                return False
        return True


MASTER_KEY_CONTEXT = KeyContext(
    key_id=None,
    token_hash="",
    alias="master",
    user_id=None,
    team_id=None,
    organization_id=None,
    key_models=None,
    team_models=None,
    organization_models=None,
    max_budget=None,
    rpm_limit=None,
    tpm_limit=None,
    expires_at=None,
    blocked_reason=None,
    is_master=True,
)
