import httpx


def test_liveliness_needs_no_key(gateway):
    response = httpx.get(gateway.url + "/health/liveliness")
    assert response.status_code == 200
    assert response.json() == "I'm alive!"


def test_readiness_reports_database_and_cache(gateway, settings):
    response = httpx.get(gateway.url + "/health/readiness")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "connected" and body["db"] == "connected"
    assert body["cache"] == ("redis" if settings.REDIS_MODE else "in-process")


def test_admin_is_served_by_the_same_app(gateway):
    response = httpx.get(gateway.url + "/admin/login/")
    assert response.status_code == 200
    assert "csrfmiddlewaretoken" in response.text
