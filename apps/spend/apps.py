import logging

from django.apps import AppConfig
from django.db.models.signals import post_migrate

logger = logging.getLogger(__name__)


class SpendConfig(AppConfig):
    name = "apps.spend"
    label = "spend"

    def ready(self) -> None:
        from apps.core.partitions import monthly_table_register
        from apps.spend.partitions import SPEND_LOG_MONTHS

        monthly_table_register(SPEND_LOG_MONTHS)
        post_migrate.connect(_default_prices_when_none, sender=self, dispatch_uid="spend-default-prices")


def _default_prices_when_none(sender, using="default", apps=None, plan=None, **kwargs) -> None:
    """A database without any price gets the shipped catalog at `migrate` (a new install, and a
    test database after each flush). Later catalog updates are `manage.py load_default_prices`:
    they never change an existing install's prices behind its operator's back."""
    if using != "default":
        return
    if apps is None:  # flush (a test database between tests) sends no migration state
        from django.apps import apps
    try:
        historical = apps.get_model("spend", "ModelPrice")
    except LookupError:
        return  # migrated to a state before the catalog
    if {f.name for f in historical._meta.concrete_fields} != _current_price_fields():
        return  # a partial migration: the table is not the one the loader writes
    if historical.objects.using(using).exists():
        return
    from apps.spend.price_imports import default_prices_load

    report = default_prices_load()
    if kwargs.get("verbosity", 1) >= 1 and report.created:
        logger.info("price catalog: %d models loaded from the shipped catalog", len(report.created))


def _current_price_fields() -> set[str]:
    from apps.spend.models import ModelPrice

    return {f.name for f in ModelPrice._meta.concrete_fields}
