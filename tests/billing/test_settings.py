"""Billing settings: off by default, read from the environment in gateway_project/settings.py only."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def settings_in_subprocess(**env) -> dict:
    code = (
        "import json, django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'gateway_project.settings'; "
        "from django.conf import settings as s; "
        "print(json.dumps({'base': s.LAGO_API_BASE, 'beat': sorted(s.CELERY_BEAT_SCHEDULE), "
        "'entity': s.BILLING_ENTITY, 'rate': str(s.BILLING_CREDITS_PER_USD), "
        "'fail_open': s.BILLING_FAIL_OPEN, "
        "'rounding': s.BILLING_CREDITS_ROUNDING, 'batch': s.BILLING_BATCH_SIZE, "
        "'send': s.CELERY_BEAT_SCHEDULE.get('billing-events-send', {}).get('task')}))"
    )
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("LAGO_", "BILLING_", "DJANGO_SETTINGS"))
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**clean, "DEBUG": "1", **env},
    )
    assert result.returncode == 0, result.stderr
    import json

    return json.loads(result.stdout.strip().splitlines()[-1])


def test_billing_is_off_and_schedules_nothing_by_default():
    values = settings_in_subprocess()
    assert values["base"] is None and not [name for name in values["beat"] if name.startswith("billing")]
    assert (values["entity"], values["rate"], values["fail_open"], values["rounding"]) == (
        "organization",
        "1000",
        True,
        "ROUND_HALF_UP",
    )


def test_setting_the_base_schedules_the_beat_tasks():
    values = settings_in_subprocess(
        LAGO_API_BASE="http://lago:3000",
        BILLING_ENTITY="team",
        BILLING_CREDITS_PER_USD="250.5",
        BILLING_FAIL_OPEN="0",
        BILLING_CREDITS_ROUNDING="half_even",
        BILLING_BATCH_SIZE="500",
    )
    assert {"billing-events-send", "billing-wallets-refresh", "billing-records-purge"} <= set(values["beat"])
    assert values["send"] == "billing.events_send"
    assert (values["entity"], values["rate"], values["fail_open"], values["rounding"], values["batch"]) == (
        "team",
        "250.5",
        False,
        "ROUND_HALF_EVEN",
        100,
    )  # Lago takes at most 100 a batch


def test_a_bad_billing_entity_is_refused():
    code = "import gateway_project.settings"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DEBUG": "1", "BILLING_ENTITY": "user"},
    )
    assert result.returncode != 0 and "BILLING_ENTITY" in result.stderr


def test_the_tasks_are_registered():
    from gateway_project.celery import app

    app.loader.import_default_modules()
    assert {"billing.events_send", "billing.wallets_refresh", "billing.wallets_reread"} <= set(app.tasks)
