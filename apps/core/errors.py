"""The gateway's one error type and its OpenAI-shaped rendering.

Every error a client of /v1 sees is {"error": {"message", "type", "param", "code"}}
with a status the official SDKs map to the matching exception class.
"""

from __future__ import annotations

import orjson
from django.http import HttpResponse


class GatewayError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_response(self) -> HttpResponse:
        response = HttpResponse(
            orjson.dumps(self.body()), status=self.status, content_type="application/json"
        )
        for name, value in self.headers.items():
            response[name] = value
        return response

    def __repr__(self) -> str:
        return f"GatewayError({self.status}, {self.type!r}, {self.code!r}, {self.message!r})"


def invalid_request(message: str, *, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(message, status=400, param=param, code=code)


def authentication_failed(message: str, *, code: str = "invalid_api_key") -> GatewayError:
    return GatewayError(message, status=401, type="authentication_error", code=code)


def permission_denied(message: str, *, param: str | None = None, code: str) -> GatewayError:
    return GatewayError(message, status=403, type="permission_error", param=param, code=code)


def not_found(message: str, *, param: str | None = None, code: str = "not_found") -> GatewayError:
    return GatewayError(message, status=404, param=param, code=code)


def internal_error(message: str = "The gateway failed to process the request.") -> GatewayError:
    return GatewayError(message, status=500, type="server_error", code="internal_error")
