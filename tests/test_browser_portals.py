"""An admin connects a simulator portal by hand in Chromium, disconnects and reconnects it."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from siq_integration.models import Portal
from tests.support.browser import console_errors_from_now

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, base: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", "a-long-test-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/portals/")
    page.wait_for_selector("h1:has-text('SalesIQ portals')")


def consent_as(page, account: str) -> None:
    page.wait_for_selector("#consent")
    page.select_option("#account", account)
    page.click("#accept")


def test_it_connects_disconnects_and_reconnects_a_portal(
    live_server, page, screenshot, simulator, sim_settings
):
    screen = f"p{uuid.uuid4().hex[:10]}"
    simulator.add_portal(screen, dialect="v2", dc="sim", open_chats=2)
    simulator.add_portal(f"{screen}x", dialect="v2", dc="sim", open_chats=0)  # a second choice
    get_user_model().objects.create_superuser("ada", "ada@example.org", "a-long-test-password")
    account = f"admin@{screen}.example"

    sign_in(page, live_server.url)
    page.click("text=Add portal")
    page.fill("#id_name", "Zylker support")
    page.select_option("#id_data_center", "sim")
    screenshot("portal-add-form")
    page.click("text=Continue to Zoho sign-in")

    consent_as(page, account)  # the simulator's own consent page

    page.wait_for_selector("h1:has-text('Which SalesIQ portal')")
    screenshot("portal-pick-screen-name")
    page.check(f"input[value='{screen}']")
    page.click("text=Connect this portal")

    page.wait_for_selector(".status-banner")
    assert "Connected" in page.inner_text(".status-banner")
    assert "Zylker support is connected." in page.inner_text(".messages")
    portal = Portal.objects.get(name="Zylker support")
    hooks = simulator.state(screen)["portals"][0]["webhooks"]
    assert [hook["url"] for hook in hooks] == [f"{live_server.url}/webhooks/salesiq/{portal.pk}/"]

    # SalesIQ delivers a signed event; the page says it arrived and checked out.
    simulator.create_conversation(screen)
    for _ in range(50):
        portal.refresh_from_db()
        if portal.last_webhook_at:
            break
        page.wait_for_timeout(100)
    page.reload()
    assert "signature verified" in page.inner_text("main")
    screenshot("portal-connected")

    page.click("text=Disconnect")
    page.click("button:has-text('Disconnect')")
    page.wait_for_selector(".status-banner")
    assert "Disconnected" in page.inner_text(".status-banner")
    assert simulator.state(screen)["portals"][0]["webhooks"] == []
    screenshot("portal-disconnected")

    page.click("button:has-text('Connect')")
    consent_as(page, account)
    page.wait_for_selector(".status-banner")
    assert "Connected" in page.inner_text(".status-banner")
    assert Portal.objects.filter(name="Zylker support").count() == 1


def test_it_saves_nothing_when_the_consent_is_refused(
    live_server, page, screenshot, simulator, sim_settings
):
    screen = f"p{uuid.uuid4().hex[:10]}"
    simulator.add_portal(screen, dialect="v2", dc="sim", open_chats=0)
    get_user_model().objects.create_superuser("ada", "ada@example.org", "a-long-test-password")

    sign_in(page, live_server.url)
    errors = console_errors_from_now(page)
    page.click("text=Add portal")
    page.fill("#id_name", "Refused")
    page.select_option("#id_data_center", "sim")
    page.fill("#id_screen_name", screen)
    page.click("text=Continue to Zoho sign-in")
    page.wait_for_selector("#consent")
    page.click("#deny")

    page.wait_for_selector("[role=alert]")
    assert "the connection was not approved" in page.inner_text("[role=alert]")
    assert "Nothing was saved: Refused was not added." in page.inner_text("main")
    assert "Try connecting again" in page.inner_text("main")
    screenshot("portal-consent-refused")
    assert not Portal.objects.exists()

    page.click("text=Back to the portals")
    page.wait_for_selector("h1:has-text('SalesIQ portals')")
    assert "Refused" not in page.inner_text("main")
    assert "No SalesIQ portal is connected yet" in page.inner_text("main")
    page.click("nav.mainnav >> text=Live")
    page.wait_for_selector("h1:has-text('Nothing to supervise yet')")
    assert page.locator(".banner").count() == 0
    assert errors == []


def test_it_refuses_the_same_salesiq_portal_twice(
    live_server, page, screenshot, simulator, sim_settings, connected_portal
):
    first = connected_portal()
    Portal.objects.filter(pk=first.pk).update(name="Zylker support")
    get_user_model().objects.create_superuser("ada", "ada@example.org", "a-long-test-password")

    sign_in(page, live_server.url)
    errors = console_errors_from_now(page)
    page.click("text=Add portal")
    page.fill("#id_name", "Zylker again")
    page.select_option("#id_data_center", "sim")
    page.fill("#id_screen_name", first.screen_name)
    page.click("text=Continue to Zoho sign-in")
    consent_as(page, f"admin@{first.screen_name}.example")

    page.wait_for_selector("[role=alert]")
    words = page.inner_text("[role=alert]")
    assert f"“{first.screen_name}”" in words
    assert "is already in the dashboard as “Zylker support”" in words
    screenshot("portal-duplicate-refused")
    assert list(Portal.objects.values_list("name", flat=True)) == ["Zylker support"]
    page.click("[data-existing-portal]")
    page.wait_for_selector("h1:has-text('Zylker support')")
    assert errors == []


def test_it_deletes_a_portal_after_saying_what_goes(
    live_server, page, screenshot, simulator, sim_settings, connected_portal, monkeypatch
):
    from dashboard.state import apply
    from siq_integration import connecting
    from siq_integration.client import SalesIQClient

    monkeypatch.setattr("dashboard.realtime.publish.send", lambda portal_id, html: None)  # no pages
    portal = connected_portal(open_chats=4)
    Portal.objects.filter(pk=portal.pk).update(name="Acme")
    apply.apply_chats(
        portal,
        SalesIQClient(portal).list_open_conversations(),
        taken_at=timezone.now(),
        complete=True,
    )
    assert connecting.register_webhooks(
        portal, url=f"{live_server.url}/webhooks/salesiq/{portal.pk}/"
    )
    get_user_model().objects.create_superuser("ada", "ada@example.org", "a-long-test-password")

    sign_in(page, live_server.url)
    errors = console_errors_from_now(page)
    page.click("text=Acme")
    page.click("a:has-text('Delete')")
    page.wait_for_selector("h1:has-text('Delete Acme?')")
    assert page.inner_text("[data-count='chats']") == "4"
    assert "webhook registration in SalesIQ" in page.inner_text("main")
    screenshot("portal-delete-confirm")

    page.click("button:has-text('Delete Acme and its history')")
    page.wait_for_selector("h1:has-text('SalesIQ portals')")
    assert "Deleted Acme with its 4 chats" in page.inner_text(".messages")
    assert not Portal.objects.exists()
    assert simulator.state(portal.screen_name)["portals"][0]["webhooks"] == []
    assert errors == []
