"""Reading a LiteLLM-style config.yaml into validated deployment specs.

Validation is complete before anything is written: an invalid file produces one
ConfigError naming the entry and the field, and changes nothing.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from apps.providers.adapters import adapter_for, known_providers
from apps.providers.registry import ENV_REFERENCE_PREFIX


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


@dataclass
class GatewayConfig:
    deployments: list[DeploymentSpec]
    master_key: str | None = None
    general_settings: dict[str, Any] = field(default_factory=dict)
    router_settings: dict[str, Any] = field(default_factory=dict)
    litellm_settings: dict[str, Any] = field(default_factory=dict)


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


def _optional_str(params: dict, name: str, where: str) -> str:
    value = params.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{name}: must be a string, got {type(value).__name__}")
    return value


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
    api_base = _resolve_env(_optional_str(params, "api_base", f"{where}.litellm_params"), f"{where}.litellm_params.api_base")
    if api_base and not api_base.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.litellm_params.api_base: must be an http(s) URL, got {api_base!r}")
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
    )


def config_parse(text: str) -> GatewayConfig:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError("the top level must be a mapping (model_list, general_settings, ...)")
    sections = {}
    for section in ("general_settings", "router_settings", "litellm_settings", "environment_variables"):
        value = document.get(section) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"{section}: must be a mapping")
        sections[section] = value
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
    )


def config_read(path: str | Path) -> GatewayConfig:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return config_parse(text)
