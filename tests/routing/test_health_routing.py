"""Deployments that fail the beat health check sit out of routing until a check passes, unless
every deployment of the group failed (then requests, retries and cooldowns decide)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.providers.models import ModelDeployment
from apps.routing.services import deployments_health_check
from tests.routing.conftest import unique


@pytest.fixture
def group(make_deployment):
    """One model name, two deployments: one answers, one fails every request (a 500)."""
    good = make_deployment("gpt-test", upstream_model=unique("good"))
    bad = make_deployment("gpt-test", upstream_model=unique("error-500"))
    return good, bad


def test_a_deployment_that_fails_its_health_check_gets_no_requests(gateway, chat, group, fake_openai):
    good, bad = group
    deployments_health_check()
    checked = fake_openai.count_for(bad.upstream_model)

    answers = [chat("gpt-test") for _ in range(20)]

    assert [a.status_code for a in answers] == [200] * 20
    assert {a.headers["x-gateway-model-id"] for a in answers} == {str(good.pk)}
    assert all(a.headers["x-gateway-attempted-retries"] == "0" for a in answers)
    assert fake_openai.count_for(bad.upstream_model) == checked  # not one request reached it


def test_it_comes_back_when_a_check_passes(gateway, chat, group, fake_openai):
    good, bad = group
    deployments_health_check()
    ModelDeployment.objects.filter(pk=bad.pk).update(upstream_model=unique("mended"))  # no reload by itself
    bad.refresh_from_db()

    deployments_health_check()  # passes now: every replica reloads and routes to it again

    models = {chat("gpt-test").headers["x-gateway-model-id"] for _ in range(40)}
    assert models == {str(good.pk), str(bad.pk)}


def test_when_every_deployment_failed_its_check_requests_still_try_them(gateway, chat, make_deployment):
    only = make_deployment("lonely", upstream_model=unique("flaky"))
    ModelDeployment.objects.filter(pk=only.pk).update(
        health_status=ModelDeployment.Health.UNHEALTHY, health_checked_at=timezone.now())
    from apps.core import invalidation

    invalidation.publish({"kind": invalidation.KIND_DEPLOYMENTS})
    assert chat("lonely").status_code == 200


def test_an_old_failed_check_decides_nothing(gateway, chat, group, settings):
    good, bad = group
    stale = timezone.now() - timedelta(seconds=4 * settings.GATEWAY_HEALTH_CHECK_INTERVAL)
    ModelDeployment.objects.filter(pk=bad.pk).update(health_status=ModelDeployment.Health.UNHEALTHY,
                                                     health_checked_at=stale)
    ModelDeployment.objects.filter(pk=bad.pk).update(upstream_model=unique("answers"))
    from apps.core import invalidation

    invalidation.publish({"kind": invalidation.KIND_DEPLOYMENTS})
    models = {chat("gpt-test").headers["x-gateway-model-id"] for _ in range(40)}
    assert str(bad.pk) in models


def test_health_routing_can_be_turned_off(gateway, chat, group, settings, fake_openai, fast_retries):
    settings.GATEWAY_HEALTH_CHECK_ROUTING = False
    good, bad = group
    deployments_health_check()
    before = fake_openai.count_for(bad.upstream_model)
    for _ in range(20):
        chat("gpt-test")
    assert fake_openai.count_for(bad.upstream_model) > before
