"""The master key, in one place: where it comes from (GATEWAY_MASTER_KEY, else
general_settings.master_key of GATEWAY_CONFIG), how a presented key is compared with it
(sha256, constant time), which virtual keys act as the proxy admin, and the gateway-wide
defaults read beside it from the same file."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
from dataclasses import dataclass, replace

from django.conf import settings

from apps.keys.context import MASTER_KEY_CONTEXT, KeyContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _ConfigDefaults:
    master_key: str | None = None
    store_prompts: bool = False


def _config_defaults() -> _ConfigDefaults:
    """What GATEWAY_CONFIG says, read once per version of the file (the management API asks on
    every request; a stat is all it costs)."""
    if not settings.GATEWAY_CONFIG:
        return _ConfigDefaults()
    try:
        modified = os.stat(settings.GATEWAY_CONFIG).st_mtime_ns
    except OSError:
        return _ConfigDefaults()
    return _config_defaults_read(settings.GATEWAY_CONFIG, modified)


@functools.lru_cache(maxsize=4)
def _config_defaults_read(path: str, modified: int) -> _ConfigDefaults:
    from apps.providers.config import ConfigError, config_read  # the config format's home; it imports models

    try:
        config = config_read(path)
    except ConfigError:
        logger.exception("GATEWAY_CONFIG could not be read for its general_settings")
        return _ConfigDefaults()
    return _ConfigDefaults(
        master_key=config.master_key,
        store_prompts=config.general_settings.get("store_prompts_in_spend_logs") is True,
    )


def configured_master_key() -> str | None:
    """GATEWAY_MASTER_KEY, else general_settings.master_key of GATEWAY_CONFIG."""
    return settings.GATEWAY_MASTER_KEY or _config_defaults().master_key


def prompts_stored_by_default() -> bool:
    """GATEWAY_STORE_PROMPTS, else general_settings.store_prompts_in_spend_logs of GATEWAY_CONFIG
    (LiteLLM's name), else off. Read when a key's context is built, not per request."""
    if settings.GATEWAY_STORE_PROMPTS is not None:
        return settings.GATEWAY_STORE_PROMPTS
    return _config_defaults().store_prompts


def is_master_key(raw_key: str) -> bool:
    """For the management plane, which reads the configured key on each request."""
    master = configured_master_key()
    if not master:
        return False
    return hmac.compare_digest(hashlib.sha256(raw_key.encode()).digest(), hashlib.sha256(master.encode()).digest())


# --- the data plane's copy, set once per process by its runtime --------------------------------

_master_key_hash: bytes | None = None
_master_key_loaded = False
_master_context: KeyContext = MASTER_KEY_CONTEXT


def master_key_set(raw_key: str | None, *, store_prompts: bool = False) -> None:
    """Set the master key of this process, and whether its requests' prompts are stored."""
    global _master_key_hash, _master_key_loaded, _master_context
    _master_key_hash = hashlib.sha256(raw_key.encode()).digest() if raw_key else None
    _master_key_loaded = True
    _master_context = replace(MASTER_KEY_CONTEXT, store_prompts=store_prompts)


def master_key_load() -> None:
    """From the environment or the config file (the process runtime's start)."""
    master_key_set(configured_master_key(), store_prompts=prompts_stored_by_default())


def master_key_hash() -> bytes | None:
    if not _master_key_loaded:
        master_key_set(settings.GATEWAY_MASTER_KEY)
    return _master_key_hash


def master_key_context() -> KeyContext:
    return _master_context


def key_grants_proxy_admin(key) -> bool:
    """A superuser's key acts as the proxy admin only if the proxy admin issued it, outside every
    team and organization (anyone else, or a key confined to a team, gets the user's memberships)."""
    user = key.user
    return bool(
        user is not None
        and user.is_superuser
        and user.is_active
        and key.issued_by_proxy_admin
        and key.team_id is None
        and key.organization_id is None
    )
