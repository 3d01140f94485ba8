"""Usage billing's control-plane URLs, included by gateway_project.urls under billing/."""

from django.urls import path

from apps.billing.api import lago_webhook

urlpatterns = [
    path("lago/webhook", lago_webhook, name="billing-lago-webhook"),
]
