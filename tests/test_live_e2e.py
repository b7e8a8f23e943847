"""The live page end to end: the simulator → webhooks and polls → `manage.py serve` →
websocket → a real Chromium page, without reloading; and back after a server restart."""

from __future__ import annotations

import uuid

import pytest
from django.conf import global_settings
from django.contrib.auth import get_user_model
from django.test import override_settings

from dashboard.models import Chat, Operator
from siq_integration import connecting
from tests.support.servers import Server
from tests.support.waits import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, server: Server) -> None:
    # The server process hashes with Django's own hashers, not the tests' fast one.
    with override_settings(PASSWORD_HASHERS=global_settings.PASSWORD_HASHERS):
        get_user_model().objects.create_superuser("ada", "ada@example.org", "a-long-test-password")
    page.goto(f"{server.url}/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", "a-long-test-password")
    page.click("button[type=submit]")
    page.wait_for_selector("#connection[data-state=open]", timeout=15_000)


def chat_row(page, remote_id: str):
    chat = wait_for(
        lambda: Chat.objects.filter(remote_id=remote_id).first(), timeout=15, what="the chat stored"
    )
    return page.locator(f"#chat-{chat.pk}")


def test_it_shows_chats_come_and_go_and_operators_change_without_reloading(
    server, simulator, connected_portal, page, screenshot
):
    portal = connected_portal(open_chats=2, operators=4)
    assert connecting.register_webhooks(portal, url=f"{server.url}/webhooks/salesiq/{portal.pk}/")
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    sign_in(page, server)
    opened_at = page.evaluate("performance.timeOrigin")

    # A visitor arrives: the row appears, the name shown as the text it is.
    name = f"<b>Bold</b> Zoë {uuid.uuid4().hex[:4]}"
    chat = simulator.create_conversation(portal.screen_name, visitor_name=name)["id"]
    row = chat_row(page, chat)
    row.wait_for(timeout=15_000)
    assert name in row.inner_text()
    assert row.locator("b").count() == 0  # no markup from the visitor reached the page
    assert row.get_attribute("data-status") == "waiting"

    # An operator's presence changes: v2 has no webhook for it, the worker's poll brings it.
    state = simulator.state(portal.screen_name)["portals"][0]
    someone = next(o for o in state["operators"] if o["presence"] == "online")
    simulator.set_operator_status(someone["id"], "busy")
    operator = wait_for(
        lambda: Operator.objects.filter(portal=portal, remote_id=someone["id"]).first(),
        timeout=20,
        what="the operator polled",
    )
    page.wait_for_selector(f"#op-{operator.pk}[data-status=busy]", timeout=30_000)
    screenshot("live-e2e")

    # The chat ends: its row goes.
    simulator.end(chat)
    row.wait_for(state="detached", timeout=15_000)

    # None of it needed a reload, and nothing went wrong in the page on the way (a new row
    # used to make htmx log that it found no target for it).
    assert page.evaluate("performance.timeOrigin") == opened_at
    assert errors == []


def test_it_reconnects_after_a_restart_and_shows_what_happened_meanwhile(
    server, simulator, connected_portal, page
):
    portal = connected_portal(open_chats=1, operators=3)
    connecting.register_webhooks(portal, url=f"{server.url}/webhooks/salesiq/{portal.pk}/")
    sign_in(page, server)
    opened_at = page.evaluate("performance.timeOrigin")

    server.stop()
    page.wait_for_selector("#connection:not([data-state=open])", timeout=15_000)
    # While the server is away a visitor arrives; SalesIQ's deliveries fail meanwhile.
    simulator.pause_webhooks()
    chat = simulator.create_conversation(portal.screen_name, visitor_name="Came while away")["id"]
    server.start()
    simulator.resume_webhooks()

    page.wait_for_selector("#connection[data-state=open]", timeout=40_000)
    # The worker's reconciliation finds the chat; the page shows it without a reload.
    row = chat_row(page, chat)
    row.wait_for(timeout=40_000)
    assert "Came while away" in row.inner_text()
    assert page.evaluate("performance.timeOrigin") == opened_at
