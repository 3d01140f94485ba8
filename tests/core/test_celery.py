from django.conf import settings


def test_celery_runs_tasks_eagerly_without_a_broker():
    from gateway_project.celery import app

    assert app.conf.task_always_eager is (settings.CELERY_BROKER_URL is None)
    assert app.conf.task_serializer == "json"
    assert app.conf.worker_prefetch_multiplier == 1
