from django.contrib.admin.apps import AdminConfig


class GatewayAdminConfig(AdminConfig):
    """django.contrib.admin with the gateway's own site (apps.management.admin_site)."""

    default_site = "apps.management.admin_site.GatewayAdminSite"
