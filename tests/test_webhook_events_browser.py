"""In Chromium: a portal whose webhook lacks events SalesIQ refused to add says which, in
words, and "Register again" on its page gives the webhook every event."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from dashboard import jobs
from siq_integration import connecting
from siq_integration.models import Portal
from tests.support.browser import console_errors_from_now
from tests.support.simulator import OLD_V2_EVENTS as OLD_EVENTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_portal_page_names_the_missing_events_and_registers_again(
    live_server, page, simulator, connected_portal, monkeypatch
):
    portal = connected_portal(open_chats=0)
    address = f"{live_server.url}/webhooks/salesiq/{portal.pk}/"
    with monkeypatch.context() as old:
        old.setattr(connecting, "V2_WEBHOOK_EVENTS", OLD_EVENTS)
        assert connecting.register_webhooks(portal, url=address)
    simulator.set_faults(
        portal=portal.screen_name,
        errors=[{"method": "PUT", "path_regex": "/webhooks/", "code": 1017}],
    )
    try:
        job = jobs.WebhookEvents()
        job([Portal.objects.get(pk=portal.pk)], timezone.now())
        job.running.result(timeout=30)
    finally:
        simulator.clear_faults()
    get_user_model().objects.create_superuser("ada", "ada@example.org", "a-long-test-password")

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", "a-long-test-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/portals/{portal.pk}/")
    errors = console_errors_from_now(page)
    page.reload()

    card = page.locator("section.card", has=page.locator("h2:has-text('Webhooks')"))
    said = card.inner_text()
    assert "Events missing" in said
    assert "a supervisor joining a chat (conversation.supervisor.added)" in said
    assert "a message edited (conversation.message.edited)" in said

    card.locator("button:has-text('Register again')").click()
    page.wait_for_selector(".messages")
    assert "is registered again" in page.inner_text(".messages")
    card = page.locator("section.card", has=page.locator("h2:has-text('Webhooks')"))
    assert "Events missing" not in card.inner_text()
    assert card.locator("button:has-text('Register again')").count() == 0
    (hook,) = simulator.state(portal.screen_name)["portals"][0]["webhooks"]
    assert hook["events"] == connecting.V2_WEBHOOK_EVENTS
    assert errors == []
