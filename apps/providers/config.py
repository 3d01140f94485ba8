"""Reading a LiteLLM-style config.yaml into validated deployment specs.

Validation is complete before anything is written: an invalid file produces one
ConfigError naming the entry and the field, and changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from apps.providers.adapters import adapter_for, known_providers
from apps.providers.registry import ENV_REFERENCE_PREFIX

# The router settings' vocabulary (strategy names, per-error-class policy keys) is the routing app's.
from apps.routing.selection.policy import (
    ALLOWED_FAILS_POLICY_KEYS,
    RETRY_POLICY_KEYS,
    ROUTING_STRATEGIES,
    strategy_name,
)


class ConfigError(ValueError):
    pass


@dataclass
class DeploymentSpec:
    config_id: str
    model_name: str
    provider: str
    upstream_model: str
    api_base: str = ""
    api_key: str = ""
    api_version: str = ""
    rpm: int | None = None
    tpm: int | None = None
    weight: int = 1
    timeout: float | None = None
    input_cost_per_token: Decimal | None = None
    output_cost_per_token: Decimal | None = None
    cache_read_input_token_cost: Decimal | None = None
    extra_params: dict[str, Any] = field(default_factory=dict)
    secret_params: dict[str, str] = field(default_factory=dict)
    access_groups: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    max_input_tokens: int | None = None
    connect_timeout: float | None = None
    stream_timeout: float | None = None
    mode: str = "chat"


@dataclass
class ModelGroupSpec:
    """One model group's routing settings; None or empty: the router-wide value."""

    model_name: str
    routing_strategy: str = ""
    num_retries: int | None = None
    retry_policy: dict[str, int] = field(default_factory=dict)
    timeout: float | None = None
    stream_timeout: float | None = None
    allowed_fails: int | None = None
    cooldown_time: float | None = None
    fallbacks: list[str] = field(default_factory=list)
    context_window_fallbacks: list[str] = field(default_factory=list)
    content_policy_fallbacks: list[str] = field(default_factory=list)


@dataclass
class RouterSpec:
    """The routing part of router_settings and litellm_settings (router_settings wins).

    `present` is False when the file sets none of it: loading it then leaves the
    router settings as they are (edited in the admin, say).
    """

    present: bool = False
    routing_strategy: str = "simple-shuffle"
    routing_strategy_args: dict[str, Any] = field(default_factory=dict)
    num_retries: int | None = None
    retry_policy: dict[str, int] = field(default_factory=dict)
    retry_after: float = 0.0
    timeout: float | None = None
    stream_timeout: float | None = None
    allowed_fails: int | None = None
    allowed_fails_policy: dict[str, int] = field(default_factory=dict)
    cooldown_time: float | None = None
    disable_cooldowns: bool = False
    default_fallbacks: list[str] = field(default_factory=list)
    model_group_alias: dict[str, Any] = field(default_factory=dict)
    groups: list[ModelGroupSpec] = field(default_factory=list)


@dataclass
class GatewayConfig:
    deployments: list[DeploymentSpec]
    master_key: str | None = None
    general_settings: dict[str, Any] = field(default_factory=dict)
    router_settings: dict[str, Any] = field(default_factory=dict)
    litellm_settings: dict[str, Any] = field(default_factory=dict)
    router: RouterSpec = field(default_factory=RouterSpec)
    # Keys of the file the gateway does not act on, each with why: "litellm_settings.cache: ...".
    ignored: list[str] = field(default_factory=list)
    guardrails: list[dict] = field(default_factory=list)  # LiteLLM's guardrails: list (apps.routing.guardrails)


# Provider secrets besides api_key: stored encrypted, like it.
SECRET_PARAMS = {"aws_secret_access_key", "aws_session_token", "vertex_credentials"}

_KNOWN_PARAMS = SECRET_PARAMS | {
    "model",
    "api_base",
    "api_key",
    "api_version",
    "rpm",
    "tpm",
    "weight",
    "timeout",
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "tags",
    "connect_timeout",
    "stream_timeout",
}


def _resolve_env(value: Any, where: str) -> Any:
    if isinstance(value, str) and value.startswith(ENV_REFERENCE_PREFIX):
        name = value[len(ENV_REFERENCE_PREFIX) :]
        if not name:
            raise ConfigError(f"{where}: '{value}' names no environment variable")
        resolved = os.environ.get(name)
        if resolved is None:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return resolved
    return value


def _optional_int(params: dict, name: str, where: str) -> int | None:
    value = _resolve_env(params.get(name), f"{where}.{name}")
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.{name}: must be a whole number, got {value!r}") from None
    if number < 0 or (isinstance(value, float) and value != number):
        raise ConfigError(f"{where}.{name}: must be a whole number ≥ 0, got {value!r}")
    return number


def _optional_decimal(params: dict, name: str, where: str) -> Decimal | None:
    value = _resolve_env(params.get(name), f"{where}.{name}")
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{where}.{name}: must be a number, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise ConfigError(f"{where}.{name}: must be a number ≥ 0, got {value!r}")
    return number


def _optional_seconds(params: dict, name: str, where: str) -> float | None:
    value = _resolve_env(params.get(name), f"{where}.{name}")
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.{name}: must be a number of seconds, got {value!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"{where}.{name}: must be > 0, got {value!r}")
    return seconds


def _name_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: must be a list of names")
    return list(value)


def _optional_str(params: dict, name: str, where: str) -> str:
    value = params.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{name}: must be a string, got {type(value).__name__}")
    return value


# A host name (with a port and path, optional) written without a scheme, as LiteLLM's examples do
# ("my-azure-api-base", "my-endpoint.openai.azure.com"): https is what every provider serves.
_BARE_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d{1,5})?(?:/\S*)?")


def _api_base(value: str, where: str) -> str:
    if not value or value.startswith(("http://", "https://")):
        return value
    if "://" not in value and _BARE_HOST.fullmatch(value):
        return f"https://{value}"
    raise ConfigError(f"{where}: must be an http(s) URL, got {value!r}")


def _parse_deployment(index: int, entry: Any, seen: dict[str, int]) -> DeploymentSpec:
    where = f"model_list[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a mapping with model_name and litellm_params")
    model_name = entry.get("model_name")
    if not isinstance(model_name, str) or not model_name.strip():
        raise ConfigError(f"{where}.model_name: required, a non-empty string")
    where = f"model_list[{index}] ({model_name})"
    params = entry.get("litellm_params")
    if not isinstance(params, dict):
        raise ConfigError(f"{where}.litellm_params: required, a mapping")
    model = params.get("model")
    if not isinstance(model, str) or "/" not in model:
        raise ConfigError(
            f"{where}.litellm_params.model: must be 'provider/model' "
            f"(e.g. openai/gpt-4o-mini), got {model!r}"
        )
    provider, upstream_model = model.split("/", 1)
    if adapter_for(provider) is None:
        raise ConfigError(
            f"{where}.litellm_params.model: unknown provider {provider!r}; "
            f"known: {', '.join(known_providers())}"
        )
    if not upstream_model:
        raise ConfigError(f"{where}.litellm_params.model: the model after '{provider}/' is empty")
    api_key = _optional_str(params, "api_key", f"{where}.litellm_params")
    if api_key:
        # Checked now so a missing variable fails the load, but stored as the
        # reference: the secret itself never lands in the database.
        _resolve_env(api_key, f"{where}.litellm_params.api_key")
    api_base = _api_base(
        _resolve_env(_optional_str(params, "api_base", f"{where}.litellm_params"), f"{where}.litellm_params.api_base"),
        f"{where}.litellm_params.api_base",
    )
    model_info = entry.get("model_info") or {}
    if not isinstance(model_info, dict):
        raise ConfigError(f"{where}.model_info: must be a mapping")
    config_id = model_info.get("id")
    if config_id is not None and not isinstance(config_id, (str, int)):
        raise ConfigError(f"{where}.model_info.id: must be a string")
    if config_id is None:
        identity = f"{model_name}|{model}|{api_base}"
        occurrence = seen.get(identity, 0)
        seen[identity] = occurrence + 1
        config_id = "cfg-" + hashlib.sha256(f"{identity}|{occurrence}".encode()).hexdigest()[:24]
    access_groups = model_info.get("access_groups") or []
    if not isinstance(access_groups, list) or not all(isinstance(g, str) and g for g in access_groups):
        raise ConfigError(f"{where}.model_info.access_groups: must be a list of names")
    timeout = params.get("timeout")
    if timeout is not None:
        try:
            timeout = float(timeout)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}.litellm_params.timeout: must be a number of seconds") from None
        if timeout <= 0:
            raise ConfigError(f"{where}.litellm_params.timeout: must be > 0")
    mode = model_info.get("mode") or "chat"
    if mode not in _MODES:
        raise ConfigError(f"{where}.model_info.mode: must be one of {', '.join(_MODES)}, got {mode!r}")
    weight = _optional_int(params, "weight", f"{where}.litellm_params")
    secret_params = {}
    for name in sorted(SECRET_PARAMS & set(params)):
        value = params[name]
        if isinstance(value, dict):  # vertex_credentials given inline as a mapping
            import json

            value = json.dumps(value)
        if not isinstance(value, str):
            raise ConfigError(f"{where}.litellm_params.{name}: must be a string")
        _resolve_env(value, f"{where}.litellm_params.{name}")
        secret_params[name] = value
    return DeploymentSpec(
        config_id=str(config_id),
        model_name=model_name.strip(),
        provider=provider,
        upstream_model=upstream_model,
        api_base=api_base or "",
        api_key=api_key,
        api_version=_optional_str(params, "api_version", f"{where}.litellm_params"),
        rpm=_optional_int(params, "rpm", f"{where}.litellm_params"),
        tpm=_optional_int(params, "tpm", f"{where}.litellm_params"),
        weight=1 if weight is None else weight,
        timeout=timeout,
        input_cost_per_token=_optional_decimal(params, "input_cost_per_token", f"{where}.litellm_params"),
        output_cost_per_token=_optional_decimal(params, "output_cost_per_token", f"{where}.litellm_params"),
        cache_read_input_token_cost=_optional_decimal(
            params, "cache_read_input_token_cost", f"{where}.litellm_params"
        ),
        extra_params={k: v for k, v in params.items() if k not in _KNOWN_PARAMS},
        secret_params=secret_params,
        access_groups=access_groups,
        tags=_name_list(params.get("tags"), f"{where}.litellm_params.tags"),
        max_input_tokens=_optional_int(model_info, "max_input_tokens", f"{where}.model_info"),
        connect_timeout=_optional_seconds(params, "connect_timeout", f"{where}.litellm_params"),
        stream_timeout=_optional_seconds(params, "stream_timeout", f"{where}.litellm_params"),
        mode=mode,
    )


# LiteLLM's model_info.mode values the gateway serves.
_MODES = ("chat", "completion", "embedding", "rerank", "moderation", "image_generation", "audio_speech",
          "audio_transcription")

# Routing keys of router_settings (and of litellm_settings, where LiteLLM also reads them).
_ROUTER_KEYS = {
    "routing_strategy", "routing_strategy_args", "num_retries", "retry_policy", "retry_after", "timeout",
    "stream_timeout", "allowed_fails", "allowed_fails_policy", "cooldown_time", "disable_cooldowns",
    "fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks",
    "model_group_alias", "model_group_retry_policy", "model_group_settings",
}
_LITELLM_ROUTER_KEYS = {
    "num_retries", "request_timeout", "fallbacks", "context_window_fallbacks", "content_policy_fallbacks",
    "default_fallbacks", "allowed_fails", "cooldown_time",
}
_GROUP_KEYS = {"routing_strategy", "num_retries", "retry_policy", "timeout", "stream_timeout", "allowed_fails",
               "cooldown_time", "fallbacks", "context_window_fallbacks", "content_policy_fallbacks"}


def _policy(value: Any, keys: dict, where: str) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a mapping")
    for name in value:
        if name not in keys:
            raise ConfigError(f"{where}.{name}: unknown; known: {', '.join(keys)}")
    return {name: _optional_int(value, name, where) for name in value if value[name] is not None}


def _strategy(value: Any, where: str) -> str:
    if not isinstance(value, str) or strategy_name(value) is None:
        raise ConfigError(f"{where}: must be one of {', '.join(ROUTING_STRATEGIES)}, got {value!r}")
    return strategy_name(value)


def _fallback_map(value: Any, where: str) -> dict[str, list[str]]:
    """LiteLLM's [{"gpt-4o": ["gpt-4o-mini", ...]}, ...] (a plain mapping is accepted too)."""
    if value is None:
        return {}
    entries = [value] if isinstance(value, dict) else value
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: must be a list like [{{model: [fallback, ...]}}]")
    result: dict[str, list[str]] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}[{index}]: must be a mapping {{model: [fallback, ...]}}")
        for model, fallbacks in entry.items():
            if isinstance(fallbacks, str):
                fallbacks = [fallbacks]
            result.setdefault(str(model), []).extend(_name_list(fallbacks, f"{where}[{index}].{model}"))
    return result


def _router_spec(router_settings: dict, litellm_settings: dict) -> RouterSpec:
    values = {k: v for k, v in litellm_settings.items() if k in _LITELLM_ROUTER_KEYS}
    if "request_timeout" in values:
        values["timeout"] = values.pop("request_timeout")
    values.update({k: v for k, v in router_settings.items() if k in _ROUTER_KEYS})
    spec = RouterSpec(present=bool(values))
    if not values:
        return spec
    where = "router_settings"
    if values.get("routing_strategy") is not None:
        spec.routing_strategy = _strategy(values["routing_strategy"], f"{where}.routing_strategy")
    args = values.get("routing_strategy_args") or {}
    if not isinstance(args, dict):
        raise ConfigError(f"{where}.routing_strategy_args: must be a mapping")
    spec.routing_strategy_args = args
    spec.num_retries = _optional_int(values, "num_retries", where)
    spec.allowed_fails = _optional_int(values, "allowed_fails", where)
    spec.timeout = _optional_seconds(values, "timeout", where)
    spec.stream_timeout = _optional_seconds(values, "stream_timeout", where)
    spec.cooldown_time = _optional_seconds(values, "cooldown_time", where)
    spec.retry_after = float(_optional_decimal(values, "retry_after", where) or 0)
    spec.disable_cooldowns = bool(values.get("disable_cooldowns"))
    spec.retry_policy = _policy(values.get("retry_policy"), RETRY_POLICY_KEYS, f"{where}.retry_policy")
    spec.allowed_fails_policy = _policy(
        values.get("allowed_fails_policy"), ALLOWED_FAILS_POLICY_KEYS, f"{where}.allowed_fails_policy"
    )
    spec.default_fallbacks = _name_list(values.get("default_fallbacks"), f"{where}.default_fallbacks")
    aliases = values.get("model_group_alias") or {}
    if not isinstance(aliases, dict):
        raise ConfigError(f"{where}.model_group_alias: must be a mapping {{alias: model group}}")
    for alias, target in aliases.items():
        name = target.get("model") if isinstance(target, dict) else target
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}.model_group_alias.{alias}: must name a model group")
    spec.model_group_alias = dict(aliases)

    groups: dict[str, ModelGroupSpec] = {}

    def group(name: str) -> ModelGroupSpec:
        return groups.setdefault(name, ModelGroupSpec(model_name=name))

    for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        for model, fallbacks in _fallback_map(values.get(key), f"{where}.{key}").items():
            if model == "*":  # LiteLLM's "every group": the default fallbacks
                spec.default_fallbacks = spec.default_fallbacks or fallbacks
                continue
            setattr(group(model), key, fallbacks)
    retry_by_group = values.get("model_group_retry_policy") or {}
    if not isinstance(retry_by_group, dict):
        raise ConfigError(f"{where}.model_group_retry_policy: must be a mapping {{model group: retry policy}}")
    for model, policy in retry_by_group.items():
        group(str(model)).retry_policy = _policy(policy, RETRY_POLICY_KEYS, f"{where}.model_group_retry_policy.{model}")
    settings_by_group = values.get("model_group_settings") or {}
    if not isinstance(settings_by_group, dict):
        raise ConfigError(f"{where}.model_group_settings: must be a mapping {{model group: settings}}")
    for model, settings in settings_by_group.items():
        at = f"{where}.model_group_settings.{model}"
        if not isinstance(settings, dict):
            raise ConfigError(f"{at}: must be a mapping")
        for name in settings:
            if name not in _GROUP_KEYS:
                raise ConfigError(f"{at}.{name}: unknown; known: {', '.join(sorted(_GROUP_KEYS))}")
        entry = group(str(model))
        if settings.get("routing_strategy") is not None:
            entry.routing_strategy = _strategy(settings["routing_strategy"], f"{at}.routing_strategy")
        entry.num_retries = _optional_int(settings, "num_retries", at)
        entry.allowed_fails = _optional_int(settings, "allowed_fails", at)
        entry.timeout = _optional_seconds(settings, "timeout", at)
        entry.stream_timeout = _optional_seconds(settings, "stream_timeout", at)
        entry.cooldown_time = _optional_seconds(settings, "cooldown_time", at)
        if "retry_policy" in settings:
            entry.retry_policy = _policy(settings["retry_policy"], RETRY_POLICY_KEYS, f"{at}.retry_policy")
        for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            if key in settings:
                setattr(entry, key, _name_list(settings[key], f"{at}.{key}"))
    spec.groups = sorted(groups.values(), key=lambda g: g.model_name)
    return spec


_SECTIONS = ("model_list", "general_settings", "router_settings", "litellm_settings", "environment_variables")
_GENERAL_KEYS = {"master_key", "store_prompts_in_spend_logs"}
# The logging callbacks are read by each server process at its start (apps.spend.callbacks).
_LITELLM_KEYS = _LITELLM_ROUTER_KEYS | {"drop_params", "callbacks", "success_callback", "failure_callback",
                                        "s3_callback_params", "default_team_settings", "cache", "cache_params"}
_MODEL_INFO_KEYS = {"id", "mode", "access_groups", "max_input_tokens"}
# Why a key LiteLLM reads is not read here, where a reason helps more than "not supported".
_IGNORED_BECAUSE = {
    "database_url": "the gateway reads DATABASE_URL from the environment",
    "redis_host": "the gateway reads REDIS_URL from the environment",
    "redis_port": "the gateway reads REDIS_URL from the environment",
    "redis_password": "the gateway reads REDIS_URL from the environment",
    "redis_url": "the gateway reads REDIS_URL from the environment",
    "enable_tag_filtering": "tags filter the deployments of every group whose deployments carry tags, "
                            "and only label requests elsewhere",
    "provider_budget_config": "provider budgets are not available yet",
}


def _not_acted_on(where: str, name: str) -> str:
    reason = _IGNORED_BECAUSE.get(name, "not read by this gateway")
    return f"{where}{name}: {reason}"


def config_ignored(document: dict) -> list[str]:
    """Every key of a config file that the gateway does not act on: an operator moving a LiteLLM
    config across must not believe a feature is on when it is off."""
    ignored = [_not_acted_on("", str(name)) for name in document if name not in (*_SECTIONS, "guardrails")]
    for section, known in (("general_settings", _GENERAL_KEYS), ("router_settings", _ROUTER_KEYS),
                           ("litellm_settings", _LITELLM_KEYS)):
        values = document.get(section) or {}
        ignored += [_not_acted_on(f"{section}.", str(name)) for name in values if name not in known]
    for index, entry in enumerate(document.get("model_list") or []):
        model_info = entry.get("model_info") if isinstance(entry, dict) else None
        if isinstance(model_info, dict):
            ignored += [_not_acted_on(f"model_list[{index}].model_info.", str(name))
                        for name in model_info if name not in _MODEL_INFO_KEYS]
    return ignored


def _resolve_guardrail_env(entry: dict) -> dict:
    """A guardrail's `os.environ/NAME` values (its api_key, say) read from the environment."""
    params = {name: (os.environ.get(value.removeprefix("os.environ/"), "")
                     if isinstance(value, str) and value.startswith("os.environ/") else value)
              for name, value in (entry.get("litellm_params") or {}).items()}
    return {**entry, "litellm_params": params}


def _yaml_error_text(exc: yaml.YAMLError) -> str:
    """A YAML error with its line and column, without the snippet of the file PyYAML quotes
    (that line may hold a key: the message is shown in the admin and in logs)."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return type(exc).__name__
    parts = [part for part in (exc.context, exc.problem) if part]
    mark = exc.problem_mark or exc.context_mark
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{', '.join(parts) or 'syntax error'}{where}"


def config_parse(text: str, *, apply_environment: bool = True) -> GatewayConfig:
    """`apply_environment`: set the file's environment_variables in this process (as LiteLLM
    does) where they are not set. A file uploaded in the admin does not: one server process's
    environment would differ from the others', and a preview must change nothing."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {_yaml_error_text(exc)}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError("the top level must be a mapping (model_list, general_settings, ...)")
    sections = {}
    for section in _SECTIONS[1:]:
        value = document.get(section) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"{section}: must be a mapping")
        sections[section] = value
    if apply_environment:
        for name, value in sections["environment_variables"].items():
            os.environ.setdefault(str(name), str(value))
    model_list = document.get("model_list") or []
    if not isinstance(model_list, list):
        raise ConfigError("model_list: must be a list")
    seen: dict[str, int] = {}
    deployments = [_parse_deployment(i, entry, seen) for i, entry in enumerate(model_list)]
    if sections["litellm_settings"].get("drop_params") is True:
        for spec in deployments:  # the file-wide default, unless an entry says otherwise
            spec.extra_params.setdefault("drop_params", True)
    ids = [d.config_id for d in deployments]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"model_list: model_info.id used more than once: {', '.join(duplicates)}")
    guardrails = document.get("guardrails") or []
    if not isinstance(guardrails, list) or not all(
            isinstance(g, dict) and isinstance(g.get("guardrail_name"), str) for g in guardrails):
        raise ConfigError("guardrails: must be a list of {guardrail_name, litellm_params}")
    master_key = sections["general_settings"].get("master_key")
    if master_key is not None:
        master_key = _resolve_env(master_key, "general_settings.master_key")
        if not isinstance(master_key, str) or not master_key:
            raise ConfigError("general_settings.master_key: must be a non-empty string")
    return GatewayConfig(
        deployments=deployments,
        master_key=master_key,
        general_settings=sections["general_settings"],
        router_settings=sections["router_settings"],
        litellm_settings=sections["litellm_settings"],
        guardrails=[_resolve_guardrail_env(g) for g in guardrails],
        router=_router_spec(sections["router_settings"], sections["litellm_settings"]),
        ignored=config_ignored(document) + (
            ["environment_variables: not set by an upload; set them in the servers' environment"]
            if sections["environment_variables"] and not apply_environment else []
        ),
    )


def config_read(path: str | Path) -> GatewayConfig:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return config_parse(text)


def config_error_line(text: str, message: str) -> int | None:
    """The line of the file a ConfigError's location points at ("model_list[1] (name).litellm_params.rpm:
    ..." → that rpm's line, or the deepest part of the path found); None when it names none."""
    found = re.search(r"\(line (\d+), column \d+\)", message)  # a YAML syntax error names it
    if found:
        return int(found.group(1))
    location = re.sub(r" \([^)]*\)", "", message.split(": ", 1)[0])  # drop "(model name)"
    parts = re.findall(r"\[\d+\]|[^.\[\]]+", location)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    index = 0
    while index < len(parts) and node is not None:
        part = parts[index]
        if part.startswith("["):
            position = int(part[1:-1])
            if not isinstance(node, yaml.SequenceNode) or position >= len(node.value):
                break
            node, index = node.value[position], index + 1
        else:
            if not isinstance(node, yaml.MappingNode):
                break
            keys = {str(key.value): (key, value) for key, value in node.value
                    if isinstance(key, yaml.ScalarNode)}
            # A key may hold dots itself (a model group "gpt-4.1"): the longest one that exists.
            end = index + 1
            while end < len(parts) and not parts[end].startswith("["):
                end += 1
            for stop in range(end, index, -1):
                if ".".join(parts[index:stop]) in keys:
                    key, node = keys[".".join(parts[index:stop])]
                    line, index = key.start_mark.line + 1, stop
                    break
            else:
                break
            continue
        line = node.start_mark.line + 1
    return line
