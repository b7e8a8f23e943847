"""Driving the pages in Chromium: signing in, reading tables, console errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import global_settings
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from dashboard.models import Chat, Profile, Role
from siq_integration import connecting
from tests.support.servers import Server
from tests.support.simulator import synced

# Screenshots and traces of the browser tests (CI keeps them).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-results"
PASSWORD = "a-long-test-password"


REFUSAL_STATUS = "Failed to load resource: the server responded with a status of 400"


@pytest.fixture(autouse=True)
def no_push(monkeypatch):
    """Changes made in this process are handed to the page explicitly (or come from the
    server's own process): nothing here publishes."""
    monkeypatch.setattr("dashboard.realtime.publish.send", lambda portal_id, html: None)


@pytest.fixture(autouse=True)
def console_errors(page):
    """Every test here fails on anything the page logs as an error (htmx logs each piece it
    finds no target for) and on any uncaught exception."""
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    yield errors
    assert errors == [], f"{len(errors)} console error(s), first: {errors[:5]}"


def open_live(page, base: str, user, query: str = "") -> None:
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}]
    )
    page.goto(f"{base}/{query}")
    page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
    page.wait_for_selector("#connection[data-state='open']")


def send(page, html: str) -> None:
    """Hand ``html`` to the ws extension's socket as if the server had sent it."""
    page.evaluate(
        """(html) => {
            const socket = document.getElementById("live")["htmx-internal-data"].webSocket.socket;
            socket.dispatchEvent(new MessageEvent("message", { data: html }));
        }""",
        html,
    )


def order(page) -> list[str]:
    return page.evaluate("[...document.querySelectorAll('#chats-body > tr')].map(r => r.id)")


def row_id(remote_id: str) -> str:
    return f"chat-{Chat.objects.get(remote_id=remote_id).pk}"


def poll(portal):
    """Store the portal's live state as the worker's poll would. In a thread of its own: the
    publishing that follows needs no event loop running (Playwright keeps one in this thread),
    and nobody listens to this process's channel layer anyway."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def in_thread():
        try:
            return synced(portal)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(in_thread).result(timeout=60)


def watched(server: Server, portal):
    """The portal's live state stored and its webhooks pointed at the server, as in production."""
    poll(portal)
    assert connecting.register_webhooks(portal, url=f"{server.url}/webhooks/salesiq/{portal.pk}/")
    return portal


def sign_in(page, server: Server, *, role: Role | None = None, portals=()) -> None:
    """An Admin (no role given) or a user of ``role`` on ``portals``, signed in on the live page."""
    username = "ada" if role is None else f"{role}-user"
    # The server process hashes with Django's own hashers, not the tests' fast one.
    with override_settings(PASSWORD_HASHERS=global_settings.PASSWORD_HASHERS):
        users = get_user_model().objects
        if role is None:
            users.create_superuser(username, "ada@example.org", PASSWORD)
        else:
            user = users.create_user(username, password=PASSWORD)
            Profile.objects.create(user=user, role=role).portals.set(portals)
    page.goto(f"{server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#connection[data-state=open]", timeout=15_000)


def shown(locator):
    locator.first.wait_for(timeout=15_000)
    return locator.first


# A failed connection answers 400 on purpose (its page says why); Chromium logs the status.


def console_errors_from_now(page) -> list[str]:
    """Console errors from now on (sign in first: the live page it lands on wants a
    websocket, which the test's plain HTTP server does not speak)."""
    errors: list[str] = []

    def heard(message) -> None:
        if message.type == "error" and not message.text.startswith(REFUSAL_STATUS):
            errors.append(message.text)

    page.on("console", heard)
    return errors
