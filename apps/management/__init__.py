"""The management API's framework, shared by every domain app's DRF views (keys, teams,
providers, spend): authentication and errors (framework), who may do what (permissions, and
admin_scope for the Django admin), lookups, the fields every level shares (inputs), pagination,
and the URLconf that gathers the routes (urls)."""
