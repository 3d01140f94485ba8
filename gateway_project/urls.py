"""The control plane's URLs. The data plane (/v1) has its own: apps.routing.urls."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from apps.spend.views import metrics_view

admin.site.site_header = "LLM gateway"
admin.site.site_title = "LLM gateway admin"
admin.site.index_title = "Dashboard"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    # The admin's single sign-on (apps.management.admin_sso): 404 unless GATEWAY_SSO_ISSUER is set.
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("", include("apps.management.urls")),
    path("billing/", include("apps.billing.urls")),  # the Lago webhook
    path("metrics", metrics_view, name="metrics"),  # Prometheus, as LiteLLM's callbacks: ["prometheus"]
]

# Errors no view answered: OpenAI-shaped JSON, except on the admin's pages (apps.core.views).
handler400 = "apps.core.views.bad_request"
handler403 = "apps.core.views.permission_denied_view"
handler404 = "apps.core.views.page_not_found"
handler500 = "apps.core.views.server_error"
