"""Core has no models of its own in the admin."""
