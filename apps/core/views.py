"""The control plane's answers to what no view handled: OpenAI-shaped JSON errors for API clients
(the management API, webhooks, /metrics, unknown paths), Django's pages for the admin's users."""

from __future__ import annotations

from django.views import defaults

from apps.core.errors import internal_error, invalid_request, not_found, permission_denied


def _for_admin(request) -> bool:
    return request.path.startswith("/admin/")


def bad_request(request, exception=None, template_name="400.html"):
    if _for_admin(request):
        return defaults.bad_request(request, exception)
    return invalid_request("The request could not be understood (a malformed body or Host header).",
                           code="bad_request").to_response()


def permission_denied_view(request, exception=None, template_name="403.html"):
    if _for_admin(request):
        return defaults.permission_denied(request, exception)
    return permission_denied("Forbidden.", code="permission_denied").to_response()


def page_not_found(request, exception=None, template_name="404.html"):
    if _for_admin(request):
        return defaults.page_not_found(request, exception)
    return not_found(f"Unknown route: {request.method} {request.path}", code="unknown_route").to_response()


def server_error(request, template_name="500.html"):
    if _for_admin(request):
        return defaults.server_error(request)
    return internal_error().to_response()

