"""The keys' pages in a real headless Chromium, against the real gateway server: the new key's Copy
button puts the key on the clipboard (the clipboard API, and the select-and-copy fallback of
origins that are not secure), a row's Block and Regenerate buttons work from the list, and Enter in
a budget saves it. Screenshots are kept under the test artifacts folder (var/test-artifacts)."""

from __future__ import annotations

import hashlib
import os
from decimal import Decimal
from pathlib import Path

import pytest

from apps.keys.models import VirtualKey
from tests.spend.test_admin_report_browser import (  # one browser set-up for every admin browser test
    chromium_context,
    chromium_path,  # noqa: F401 - a fixture
    superuser_session,
    watch_for_errors,
)

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]

ARTIFACTS = Path(os.environ.get("GATEWAY_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "var" / "test-artifacts"))

# What a page on plain http (not localhost) has: no asynchronous clipboard.
WITHOUT_CLIPBOARD_API = "Object.defineProperty(Navigator.prototype, 'clipboard', {get: () => undefined});"


@pytest.mark.parametrize("clipboard_api", [True, False], ids=["clipboard-api", "select-and-copy"])
def test_the_copy_button_copies_the_new_key(chromium_path, gateway, django_user_model, clipboard_api):  # noqa: F811
    session_key = superuser_session(django_user_model, "copy-admin")

    with chromium_context(chromium_path, session_key=session_key, server_url=gateway.url) as browser:
        browser.grant_permissions(["clipboard-read", "clipboard-write"], origin=gateway.url)
        page = browser.new_page()
        if not clipboard_api:
            page.add_init_script(WITHOUT_CLIPBOARD_API)
        console_errors, failed_responses = watch_for_errors(page)
        page.goto(f"{gateway.url}/admin/keys/virtualkey/add/")
        page.fill("#id_alias", "copied-key")
        page.click("input[name=_save]")
        page.wait_for_selector("#raw-key")
        raw_key = page.input_value("#raw-key")
        assert page.evaluate("navigator.clipboard === undefined") is not clipboard_api
        page.click("#copy-key")
        page.wait_for_selector("#copy-status.copied")
        status = page.inner_text("#copy-status")
        button = page.inner_text("#copy-key")
        if clipboard_api:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "admin-key-created.png"))
        reader = browser.new_page()  # a page with the clipboard API, whichever way the key was copied
        reader.goto(f"{gateway.url}/admin/")
        copied = reader.evaluate("navigator.clipboard.readText()")

    assert raw_key.startswith("sk-")
    assert (status, button) == ("Copied to the clipboard.", "Copied")
    assert copied == raw_key
    assert VirtualKey.objects.get(alias="copied-key").token_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert not console_errors, console_errors
    assert not failed_responses, failed_responses


def test_a_rows_block_and_regenerate_buttons_work_in_a_browser(chromium_path, gateway, make_key,  # noqa: F811
                                                               django_user_model):
    key, _ = make_key(alias="row-key")
    old_hash = key.token_hash
    session_key = superuser_session(django_user_model, "row-admin")

    with chromium_context(chromium_path, session_key=session_key, server_url=gateway.url) as browser:
        page = browser.new_page()
        console_errors, failed_responses = watch_for_errors(page)
        page.goto(f"{gateway.url}/admin/keys/virtualkey/")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "admin-keys.png"))
        page.click(".key-row-block")
        page.wait_for_selector(".messagelist .success")
        blocked_message = page.inner_text(".messagelist")
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
        page.click(".key-row-regenerate")
        page.wait_for_selector("#raw-key")
        new_raw = page.input_value("#raw-key")
        page.goto(f"{gateway.url}/admin/keys/virtualkey/")
        unblock_buttons = page.locator(".key-row-unblock").count()
        page.fill(".key-budget-input", "42.5")
        page.press(".key-budget-input", "Enter")  # saves the list (not the actions' "Go")
        page.wait_for_selector(".messagelist .success")
        saved_message = page.inner_text(".messagelist")

    key.refresh_from_db()
    assert "Blocked row-key" in blocked_message
    assert key.blocked and unblock_buttons == 1
    assert dialogs and "stops working" in dialogs[0]
    assert "changed successfully" in saved_message and key.max_budget == Decimal("42.5")
    assert key.token_hash == hashlib.sha256(new_raw.encode()).hexdigest() != old_hash
    assert not console_errors, console_errors
    assert not failed_responses, failed_responses
