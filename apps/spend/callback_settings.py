"""A team's or key's own logging callbacks (LiteLLM's team callbacks and a key's metadata.logging):
what an entry may hold, what of it is secret, and what only the proxy admin may set.

An entry is LiteLLM's `{"callback_name", "callback_type", "callback_vars"}`. It is stored encrypted
(the team's or key's `logging_callbacks`) and shown with its secrets masked. Its destination gets
the records of its own team's or key's requests only, with their messages and answers only where
that key or team keeps prompts.

What reaches further than its owner's own data only the proxy admin sets:
- a value `os.environ/NAME` (it would send the gateway's own environment, a provider key say, to
  a host the caller chose), or a file on the gateway (gcs_bucket's service account key file);
- a host the gateway's network reaches but the internet does not (loopback, private, link-local:
  the cloud's metadata service, the gateway's Redis), unless GATEWAY_CALLBACK_ALLOWED_HOSTS lists
  it. A host name is checked again at each send, against the addresses it resolves to then.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

CALLBACK_TYPES = {"success": "success", "failure": "failure", "success_and_failure": None}

# The callbacks a team or key may have, and the callback_vars each takes (LiteLLM's names).
CALLBACK_VARS = {
    "langfuse": {"langfuse_public_key", "langfuse_secret_key", "langfuse_secret", "langfuse_host"},
    "generic_api": {"generic_logger_endpoint", "generic_logger_headers"},
    "s3": {"s3_bucket_name", "s3_region_name", "s3_endpoint_url", "s3_path", "s3_aws_access_key_id",
           "s3_aws_secret_access_key"},
    # Its credentials are a key file on the gateway: the proxy admin's only (FILE_VARS).
    "gcs_bucket": {"gcs_bucket_name", "gcs_path_service_account", "gcs_path"},
}
REQUIRED_VARS = {
    "langfuse": ({"langfuse_public_key"}, {"langfuse_secret_key", "langfuse_secret"}),
    "generic_api": ({"generic_logger_endpoint"},),
    "s3": ({"s3_bucket_name"}, {"s3_aws_access_key_id"}, {"s3_aws_secret_access_key"}),
    "gcs_bucket": ({"gcs_bucket_name"}, {"gcs_path_service_account"}),
}
FILE_VARS = {"gcs_path_service_account"}
URL_VARS = {"langfuse_host", "generic_logger_endpoint", "s3_endpoint_url"}
SECRET_VARS = {"langfuse_secret_key", "langfuse_secret", "s3_aws_secret_access_key", "generic_logger_headers"}
MASK = "*****"
# Values that end up inside a URL the gateway builds (S3's https://s3.{region}.amazonaws.com/{bucket}):
# held to their own service's syntax, so none can move the request to another host.
SHAPED_VARS = {
    "s3_region_name": re.compile(r"[a-z]{2}(-[a-z0-9]+)+"),
    "s3_bucket_name": re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"),
}
# A host written as a number in a form ipaddress does not read (127.1, 0x7f.0.0.1, 2130706433),
# which resolvers still take as an address.
_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]*))*", re.IGNORECASE)
MAX_ENTRIES = 10


class CallbackEntryError(ValueError):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class CallbackSpec:
    """One team's or key's callback as the data plane holds it (in the key's cached context)."""

    owner: str  # "team:<id>" or "key:<id>": whose records it gets
    name: str
    only: str | None  # "success", "failure" or None (both)
    vars: tuple[tuple[str, str], ...] = field(repr=False)  # secrets: never in a log line
    trusted: bool = False  # set by the proxy admin: may reach hosts a tenant's may not


def callback_entry_parse(raw, *, param: str = "") -> dict:
    """A validated entry (LiteLLM's AddTeamCallback shape), or CallbackEntryError naming the field
    (under `param`: "metadata.logging[0]" for a key's)."""
    if not isinstance(raw, dict):
        raise CallbackEntryError("A logging callback is an object with callback_name, callback_type and "
                                 "callback_vars.", param or "callback_name")
    unknown = set(raw) - {"callback_name", "callback_type", "callback_vars"}
    if unknown:
        raise CallbackEntryError(f"Unknown field {sorted(unknown)[0]!r} in a logging callback.",
                                 _field(param, sorted(unknown)[0]))
    name = raw.get("callback_name")
    if name not in CALLBACK_VARS:
        raise CallbackEntryError(f"callback_name must be one of {sorted(CALLBACK_VARS)}.", _field(param, "callback_name"))
    callback_type = raw.get("callback_type") or "success_and_failure"
    if callback_type not in CALLBACK_TYPES:
        raise CallbackEntryError(f"callback_type must be one of {sorted(CALLBACK_TYPES)}.",
                                 _field(param, "callback_type"))
    variables = raw.get("callback_vars") or {}
    if not isinstance(variables, dict):
        raise CallbackEntryError("callback_vars is an object of strings.", _field(param, "callback_vars"))
    for var, value in variables.items():
        if var not in CALLBACK_VARS[name]:
            raise CallbackEntryError(f"{name} takes no {var!r}; it takes {sorted(CALLBACK_VARS[name])}.",
                                     _field(param, f"callback_vars.{var}"))
        if not isinstance(value, str) or not value or len(value) > 2000 or "\x00" in value:
            raise CallbackEntryError(f"{var} must be a non-empty string.", _field(param, f"callback_vars.{var}"))
        shape = SHAPED_VARS.get(var)
        if shape is not None and not value.startswith("os.environ/") and not shape.fullmatch(value):
            raise CallbackEntryError(f"{var} is not a valid value for it.", _field(param, f"callback_vars.{var}"))
        if var in URL_VARS and not value.startswith("os.environ/"):
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise CallbackEntryError(f"{var} must be an http(s) URL.", _field(param, f"callback_vars.{var}"))
    for choices in REQUIRED_VARS[name]:
        if not choices & set(variables):
            raise CallbackEntryError(f"{name} needs {' or '.join(sorted(choices))} in callback_vars.",
                                     _field(param, "callback_vars"))
    return {"callback_name": name, "callback_type": callback_type, "callback_vars": dict(variables)}


def _field(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def callback_entries_merge(entries: list[dict], stored: list[dict]) -> list[dict]:
    """`entries` where a secret was sent back masked (as a read showed it) keeps the stored value."""
    stored_by_name = {entry["callback_name"]: entry for entry in stored}
    merged = []
    for entry in entries:
        old = stored_by_name.get(entry["callback_name"], {}).get("callback_vars", {})
        variables = {var: (old[var] if value.startswith(MASK) and var in old else value)
                     for var, value in entry["callback_vars"].items()}
        merged.append({**entry, "callback_vars": variables})
        stored_entry = stored_by_name.get(entry["callback_name"])
        if stored_entry and stored_entry.get("trusted") and all(
                merged[-1][k] == stored_entry.get(k) for k in ("callback_type", "callback_vars")):
            merged[-1]["trusted"] = True  # sent back as it was: still the proxy admin's
    return merged


def callback_entries_masked(entries: list[dict]) -> list[dict]:
    """What reads show: secret values masked but for their last 4 characters."""
    return [
        {"callback_name": e["callback_name"], "callback_type": e["callback_type"],
         "callback_vars": {var: _masked(value) if var in SECRET_VARS else value
                           for var, value in e["callback_vars"].items()}}
        for e in entries
    ]


def _masked(value: str) -> str:
    return MASK + value[-4:] if len(value) > 12 and not value.startswith("os.environ/") else MASK


def callback_entry_reach(entry: dict) -> tuple[str, str] | None:
    """(param, why) if the entry reaches past its owner's data (only the proxy admin sets it)."""
    if entry.get("trusted"):
        return None  # the proxy admin's, unchanged
    for var, value in entry["callback_vars"].items():
        if value.startswith("os.environ/"):
            return (f"callback_vars.{var}", "reads the gateway's environment (os.environ/)")
        if var in FILE_VARS:
            return (f"callback_vars.{var}", "reads a file on the gateway")
        if var in URL_VARS and not callback_host_allowed(urlsplit(value).hostname or ""):
            return (f"callback_vars.{var}", "names a host on the gateway's own network")
    return None


def _allowed_hosts() -> frozenset[str]:
    return frozenset(h.strip().lower() for h in settings.GATEWAY_CALLBACK_ALLOWED_HOSTS.split(",") if h.strip())


def callback_host_allowed(host: str) -> bool:
    """May a tenant's callback send to this host name or address (before it is resolved)?"""
    host = host.lower().rstrip(".")
    if host in _allowed_hosts():
        return True
    if _is_ip(host):
        return callback_address_allowed(host, host)
    return not (host == "localhost" or host.endswith(".localhost") or host.endswith(".internal")
                or "." not in host or _NUMERIC_HOST.fullmatch(host))


def callback_address_allowed(address: str, host: str) -> bool:
    """May a tenant's callback connect to this address (what `host` resolved to)?"""
    if host.lower().rstrip(".") in _allowed_hosts() or address in _allowed_hosts():
        return True
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def callback_specs(owner: str, entries: list[dict] | None) -> tuple[CallbackSpec, ...]:
    return tuple(
        CallbackSpec(owner=owner, name=e["callback_name"], only=CALLBACK_TYPES.get(e["callback_type"]),
                     vars=tuple(sorted(e["callback_vars"].items())), trusted=bool(e.get("trusted")))
        for e in entries or () if isinstance(e, dict) and e.get("callback_name") in CALLBACK_VARS
    )
