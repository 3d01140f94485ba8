"""Authentication, errors and the base view of the management API (/key, /team, /user,
/organization, /model): LiteLLM's routes on Django REST framework.

Callers authenticate like on the data plane (`Authorization: Bearer`, `api-key`, `x-api-key`):
the master key is the proxy admin; a virtual key acts as the user it belongs to (a key without
a user may only read itself). Logged-in staff may also use their admin session (with CSRF,
as DRF's SessionAuthentication does). Who may do what is decided in apps.management.permissions.

Every error has OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, like the
data plane's.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, serializers
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.parsers import BaseParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.schemas.openapi import AutoSchema
from rest_framework.settings import api_settings
from rest_framework.views import APIView, set_rollback

from apps.core.errors import GatewayError
from apps.core.audit import audit_actor_reset, audit_actor_token, request_audit_actor
from apps.core.fields import json_depth_exceeds, json_holds_nul
from apps.keys.auth import raw_key_from_request
from apps.keys.master import is_master_key, key_grants_proxy_admin
from apps.keys.selectors import virtual_key_get_for_auth

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the proxy admin, a user (through one of its keys or its session), or a
    key that belongs to no user."""

    via: str  # "master_key", "virtual_key" or "session"
    user: AbstractBaseUser | None = None
    key: Any = None  # the calling VirtualKey, when a virtual key was sent
    is_proxy_admin: bool = False


# --- authentication ------------------------------------------------------------------------


class ManagementKeyAuthentication(BaseAuthentication):
    """The master key or a virtual key, read from the same headers as on the data plane."""

    def authenticate(self, request):
        raw_key = raw_key_from_request(request._request)
        if not raw_key:
            return None
        if is_master_key(raw_key):
            return AnonymousUser(), Principal(via="master_key", is_proxy_admin=True)
        key = virtual_key_get_for_auth(raw_key=raw_key)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.", code="invalid_api_key")
        if key.blocked:
            raise exceptions.AuthenticationFailed("This key is blocked.", code="key_blocked")
        if key.is_expired:
            raise exceptions.AuthenticationFailed("This key has expired.", code="key_expired")
        user = key.user
        if user is not None and not user.is_active:
            raise exceptions.AuthenticationFailed("The key's user is inactive.", code="user_inactive")
        principal = Principal(via="virtual_key", user=user, key=key, is_proxy_admin=key_grants_proxy_admin(key))
        return user or AnonymousUser(), principal

    def authenticate_header(self, request) -> str:
        # A value here makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="management"'


class ManagementSessionAuthentication(SessionAuthentication):
    """A logged-in staff user of the admin (a superuser is the proxy admin). CSRF is enforced."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        if not user.is_staff:
            return None
        return user, Principal(via="session", user=user, is_proxy_admin=user.is_superuser)


def _audit_name(principal: Principal) -> str:
    """How the audit log names a caller: never by its key, only the key's hash prefix."""
    if principal.via == "master_key":
        return "master_key"
    if principal.via == "session":
        return f"user:{principal.user.get_username()}"
    name = f"key:{principal.key.token_hash[:8]}"
    return f"{name} (user:{principal.user.get_username()})" if principal.user is not None else name


class IsAuthenticatedPrincipal(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Principal)


# --- errors -------------------------------------------------------------------------------

_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    500: "server_error",
}
# DRF's default codes → the gateway's (the data plane's where they exist).
_CODE_ALIASES = {
    "not_authenticated": "missing_api_key",
    "authentication_failed": "invalid_api_key",
    "parse_error": "invalid_json",
    "error": None,
}
_DEFAULT_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    415: "unsupported_media_type",
}


def _error_response(
    status: int, message: str, *, param: str | None, code: str | None, headers: dict | None = None
) -> Response:
    body = {
        "error": {
            "message": message,
            "type": _ERROR_TYPES.get(status, "invalid_request_error"),
            "param": param,
            "code": code or _DEFAULT_CODES.get(status),
        }
    }
    return Response(body, status=status, headers=headers)


def _param_path(parts: list[str | int]) -> str | None:
    text = ""
    for part in parts:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or None


def first_validation_error(detail: Any, path: list | None = None) -> tuple[str | None, str]:
    """The first failing field of a DRF error detail (nested fields as `a.b`, list items as
    `a[0]`) and its message."""
    path = path or []
    if isinstance(detail, dict):
        for field, value in detail.items():
            if not value:
                continue
            is_field = field not in (api_settings.NON_FIELD_ERRORS_KEY, NON_FIELD_ERRORS)
            return first_validation_error(value, path + [field] if is_field else path)
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if not item:
                continue
            if isinstance(item, (dict, list)):
                return first_validation_error(item, path + [index])
            return _param_path(path), str(item)
    return _param_path(path), str(detail)


def _as_api_exception(exc: Exception) -> Exception:
    if isinstance(exc, Http404):
        return exceptions.NotFound(str(exc) or "Not found.")
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
        )
    return exc


def management_exception_handler(exc: Exception, context: dict) -> Response:
    exc = _as_api_exception(exc)
    set_rollback()
    if isinstance(exc, GatewayError):
        return _error_response(exc.status, exc.message, param=exc.param, code=exc.code, headers=exc.headers)
    if isinstance(exc, exceptions.ValidationError):
        param, message = first_validation_error(exc.detail)
        if param and not message.startswith(param):
            message = f"{param}: {message}"
        return _error_response(400, message, param=param, code="invalid_request")
    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):  # set by APIView.handle_exception for 401s
            headers["WWW-Authenticate"] = exc.auth_header
        codes = exc.get_codes()
        code = _CODE_ALIASES.get(codes, codes) if isinstance(codes, str) else None
        message = str(exc.detail)
        if isinstance(exc, exceptions.NotAuthenticated):
            message = (
                "No API key provided. Send it as 'Authorization: Bearer <key>', 'api-key' or 'x-api-key'."
            )
        return _error_response(
            exc.status_code, message, param=getattr(exc, "param", None), code=code, headers=headers
        )
    logger.exception("management API: unexpected error", exc_info=exc)
    return _error_response(
        500, "The gateway failed to process the request.", param=None, code="internal_error"
    )


class Forbidden(exceptions.PermissionDenied):
    """403 naming the request field that made the request go beyond the caller's rights."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class FieldRefused(exceptions.APIException):
    """400 naming a body field the route does not act on (see body_field_refusal)."""

    status_code = 400

    def __init__(self, message: str, *, param: str, code: str) -> None:
        super().__init__(message, code=code)
        self.param = param


class NotFoundError(exceptions.NotFound):
    """404 naming the request field whose id matched nothing."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@contextmanager
def model_errors_as_fields(field_names: dict[str, str], *, other: str | None = None):
    """Turn a model's ValidationError (from a service's full_clean) into a 400 naming the API's
    field: `field_names` maps model field names to request field names; errors that name no
    field (unique-together constraints) are reported on `other`."""
    try:
        yield
    except DjangoValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
        detail = {}
        for field, messages in errors.items():
            name = other if field == NON_FIELD_ERRORS and other else field_names.get(field, field)
            detail.setdefault(name, []).extend(messages)
        raise exceptions.ValidationError(detail) from None


# --- fields a route does not act on -------------------------------------------------------
# DRF drops the fields a serializer does not declare. Here a body field the route does not act on
# is a 400 naming it (a typo'd limit would otherwise make an unlimited key, a LiteLLM feature
# would seem on when it is off), with one allowance: LiteLLM's UI and SDK send every field of
# LiteLLM's request models, the unset ones empty, so a LiteLLM field of the route sent empty is
# accepted and ignored. An input serializer names LiteLLM's fields on its route in
# `litellm_fields` (declared or not), and LiteLLM fields accepted at a value with no effect in
# `ignored_values` ({"key_type": ("default", "llm_api")}).


@dataclass(frozen=True)
class FieldRefusal:
    name: str
    message: str
    code: str  # "unsupported_field": LiteLLM's, not acted on here; "unknown_field"


def is_empty_value(value: Any) -> bool:
    """null, false, "", [] or {}: what LiteLLM's clients send for a field they leave unset."""
    return value is None or value is False or (isinstance(value, (str, list, dict)) and not value)


@functools.cache
def _declared_fields(serializer_class) -> frozenset[str]:
    return frozenset(serializer_class().fields)


def _is_ignored_value(value: Any, ignored: tuple) -> bool:
    return not isinstance(value, bool) and any(value == accepted for accepted in ignored)


def body_field_refusal(serializer_class, data: dict) -> FieldRefusal | None:
    """The first field of `data` the serializer does not declare, unless it is one of LiteLLM's
    fields on the route sent empty or at an ignored value; None when every field is acted on."""
    declared = _declared_fields(serializer_class)
    litellm_fields = frozenset(getattr(serializer_class, "litellm_fields", ()))
    ignored_values = getattr(serializer_class, "ignored_values", {})
    for name, value in data.items():
        if name in declared:
            continue
        if name in litellm_fields:
            ignored = ignored_values.get(name, ())
            if is_empty_value(value) or _is_ignored_value(value, ignored):
                continue
            accepted = "".join(f", {json.dumps(accepted)}" for accepted in ignored)
            return FieldRefusal(
                name,
                f"'{name}' is a LiteLLM field this gateway does not act on yet: leave it out (or send "
                f"null{accepted}) rather than rely on it.",
                "unsupported_field",
            )
        close = difflib.get_close_matches(name, sorted(declared | litellm_fields), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return FieldRefusal(name, f"Unknown field '{name}'.{hint}", "unknown_field")
    return None


def validated_body(serializer_class, data: Any, *, param: str | None = None) -> dict:
    """A JSON object validated by `serializer_class`, every field acted on (body_field_refusal).
    `param`: where the object sits in the request ("keys[2]"), prefixed to the field named."""
    if not isinstance(data, dict):
        raise exceptions.ValidationError(
            {param or api_settings.NON_FIELD_ERRORS_KEY: ["Must be a JSON object."]}
        )
    refusal = body_field_refusal(serializer_class, data)
    if refusal is not None:
        name = f"{param}.{refusal.name}" if param else refusal.name
        raise FieldRefused(refusal.message, param=name, code=refusal.code)
    serializer = serializer_class(data=data)
    if param is None:
        serializer.is_valid(raise_exception=True)
    elif not serializer.is_valid():
        raise exceptions.ValidationError({param: serializer.errors})
    return serializer.validated_data


class StrictNestedInput(serializers.Serializer):
    """A nested object (a member, a team) held to the same rule as a body: a field it does not
    declare is refused, unless it is one of LiteLLM's (`litellm_fields`) sent empty."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            refusal = body_field_refusal(type(self), data)
            if refusal is not None:
                raise serializers.ValidationError({refusal.name: [refusal.message]})
        return super().to_internal_value(data)


# --- the body parser ---------------------------------------------------------------------


class ManagementJSONParser(BaseParser):
    """JSON bodies by orjson, refused past GATEWAY_MAX_JSON_DEPTH levels of nesting: a body 10,000
    levels deep would otherwise fail deep inside the ORM (the size is limited in apps.core.edge)."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        import orjson
        from django.conf import settings

        raw = stream.read() if stream is not None else b""
        try:
            data = orjson.loads(raw or b"null")
        except orjson.JSONDecodeError as exc:
            raise exceptions.ParseError(f"The request body is not valid JSON: {exc}.") from None
        if json_depth_exceeds(data, settings.GATEWAY_MAX_JSON_DEPTH):
            raise exceptions.ParseError(
                f"The request body is nested deeper than {settings.GATEWAY_MAX_JSON_DEPTH} levels."
            )
        if b"\\u0000" in raw and json_holds_nul(data):  # as DRF's CharField does, in JSON fields too
            if isinstance(data, dict):
                param = next((k for k, v in data.items() if json_holds_nul(k) or json_holds_nul(v)), None)
                raise exceptions.ValidationError({param: ["Null characters are not allowed."]})
            raise exceptions.ParseError("Null characters are not allowed.")
        return data


# --- the OpenAPI schema -------------------------------------------------------------------


class ManagementSchema(AutoSchema):
    """Documents each view's `input_serializer` (a POST body) or `query_serializer` (a GET
    query). Operation ids come from the path; its variables (LiteLLM's /team/{team_id}/callback)
    are string path parameters."""

    def get_operation_id(self, path: str, method: str) -> str:
        words = [w.strip("{}") for w in re.split(r"[/_]", path) if w and not w.endswith(".json")]
        operation_id = words[0] + "".join(w.capitalize() for w in words[1:]) if words else method.lower()
        # A route's other methods (LiteLLM's PATCH and DELETE forms beside our POST) are named apart.
        primary = "GET" if hasattr(self.view, "get") else "POST"
        return operation_id if method.upper() == primary else operation_id + method.capitalize()

    def get_path_parameters(self, path, method):
        return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in re.findall(r"{(\w+)}", path)]

    def get_filter_parameters(self, path, method):
        serializer_class = getattr(self.view, "query_serializer", None)
        if method != "GET" or serializer_class is None:
            return []
        parameters = []
        for name, field in serializer_class().fields.items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": field.required,
                    "description": str(field.help_text or ""),
                    "schema": self.map_field(field),
                }
            )
        return parameters

    def get_request_serializer(self, path, method):
        serializer_class = getattr(self.view, "input_serializer", None)
        return serializer_class() if serializer_class else None

    def get_response_serializer(self, path, method):
        return None

    def get_components(self, path, method):
        serializer = self.get_request_serializer(path, method)
        if not isinstance(serializer, serializers.Serializer):
            return {}
        return {self.get_component_name(serializer): self.map_serializer(serializer)}


# --- the base view ------------------------------------------------------------------------


class ManagementAPIView(APIView):
    """The base of every management API view: authentication, OpenAI-shaped errors, JSON only.

    Subclasses name `input_serializer` (POST body) or `query_serializer` (GET query) and call
    `self.validated(request)`. A body field the input serializer does not declare is a 400 naming
    it, unless it is one of LiteLLM's fields on the route sent empty (body_field_refusal); a query
    may carry parameters the view does not read (LiteLLM's clients add paging and filters)."""

    authentication_classes = (ManagementKeyAuthentication, ManagementSessionAuthentication)
    permission_classes = (IsAuthenticatedPrincipal,)
    parser_classes = (ManagementJSONParser,)
    renderer_classes = (JSONRenderer,)
    schema = ManagementSchema()
    input_serializer: type[serializers.Serializer] | None = None
    query_serializer: type[serializers.Serializer] | None = None

    def get_exception_handler(self):
        return management_exception_handler

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # What this request changes is its principal's (apps.core.audit).
        self._audit_token = audit_actor_token(request_audit_actor(request._request, _audit_name(request.auth),
                                                                  "management_api"))

    def finalize_response(self, request, response, *args, **kwargs):
        token = getattr(self, "_audit_token", None)
        if token is not None:
            audit_actor_reset(token)
            self._audit_token = None
        return super().finalize_response(request, response, *args, **kwargs)

    def validated(self, request) -> dict:
        """The request's body (POST) or query (GET) validated by the view's serializer."""
        if request.method == "GET":
            serializer = self.query_serializer(data=request.query_params)
            serializer.is_valid(raise_exception=True)
            return serializer.validated_data
        data = request.data
        if not isinstance(data, dict):
            raise exceptions.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: ["The body must be a JSON object."]}
            )
        return validated_body(self.input_serializer, data)
