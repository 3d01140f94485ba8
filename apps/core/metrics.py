"""The process's registry of request-path metrics (prometheus-client), which /metrics reads
beside the database's (apps.spend.views); every app's live counters register here."""

from prometheus_client import CollectorRegistry

REGISTRY = CollectorRegistry(auto_describe=False)
