"""Reads for routing come from the in-process registry (apps.providers.registry), never from the database per request."""
