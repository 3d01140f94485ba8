"""apps.core.hot_settings.setting reads what `settings.NAME` reads, through every way a setting
changes (the request path reads its settings through it)."""

from django.conf import settings as django_settings
from django.test import override_settings

from apps.core.hot_settings import setting


def test_it_reads_what_settings_reads_through_overrides_and_assignments(settings):
    assert setting("GATEWAY_BODY_TIMEOUT") == django_settings.GATEWAY_BODY_TIMEOUT
    original = django_settings.GATEWAY_BODY_TIMEOUT
    with override_settings(GATEWAY_BODY_TIMEOUT=original + 1):
        assert setting("GATEWAY_BODY_TIMEOUT") == original + 1
        with override_settings(GATEWAY_BODY_TIMEOUT=original + 2):
            assert setting("GATEWAY_BODY_TIMEOUT") == original + 2
        assert setting("GATEWAY_BODY_TIMEOUT") == original + 1
    assert setting("GATEWAY_BODY_TIMEOUT") == original

    settings.GATEWAY_BODY_TIMEOUT = original + 3  # pytest-django's fixture
    assert setting("GATEWAY_BODY_TIMEOUT") == original + 3
    settings.GATEWAY_NOT_A_SETTING_YET = "new"
    assert setting("GATEWAY_NOT_A_SETTING_YET") == "new"
    del settings.GATEWAY_NOT_A_SETTING_YET


def test_a_plain_assignment_and_a_deletion_are_seen(monkeypatch):
    original = django_settings.GATEWAY_HEADER_TIMEOUT
    assert setting("GATEWAY_HEADER_TIMEOUT") == original
    monkeypatch.setattr(django_settings, "GATEWAY_HEADER_TIMEOUT", original + 7)
    assert setting("GATEWAY_HEADER_TIMEOUT") == original + 7
    monkeypatch.undo()
    assert setting("GATEWAY_HEADER_TIMEOUT") == original


def test_an_unknown_setting_raises_as_settings_does():
    import pytest

    with pytest.raises(AttributeError):
        setting("GATEWAY_NO_SUCH_SETTING")
