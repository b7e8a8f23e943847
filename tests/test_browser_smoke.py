"""The first browser test: a real page of the project in a real headless Chromium."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_signs_in_and_says_what_to_do_without_portals(live_server, page, screenshot):
    get_user_model().objects.create_user("sam", password="a-long-test-password")

    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url  # anonymous visitors are sent to sign in
    page.fill("#id_username", "sam")
    page.fill("#id_password", "a-long-test-password")
    page.click("button[type=submit]")

    page.wait_for_selector("h1:has-text('Nothing to supervise yet')")
    # A new user is a Viewer with no portal yet, and is told what to do about it.
    assert "Ask an admin to give you access" in page.inner_text("main")
    # The stylesheet is vendored and served by the app itself.
    background = page.evaluate(
        "getComputedStyle(document.querySelector('.topbar')).backgroundColor"
    )
    assert background == "rgb(23, 32, 44)"
    screenshot()


def test_it_tells_a_wrong_password_in_plain_words(live_server, page):
    get_user_model().objects.create_user("sam", password="a-long-test-password")

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "sam")
    page.fill("#id_password", "not-it")
    page.click("button[type=submit]")

    assert "That username and password do not match" in page.inner_text("[role=alert]")


def test_it_shows_a_connected_portal_truthfully(live_server, page, connected_portal, screenshot):
    from dashboard.models import Profile, Role
    from siq_integration.client import SalesIQClient

    portal = connected_portal()
    SalesIQClient(portal).list_departments()  # one real call, so "last call" has a time
    sam = get_user_model().objects.create_user("sam", password="a-long-test-password")
    Profile.objects.create(user=sam, role=Role.SUPERVISOR).portals.add(portal)

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "sam")
    page.fill("#id_password", "a-long-test-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/portals/")

    row = page.locator("tr", has_text=portal.name)
    row.wait_for()
    assert "Connected" in row.inner_text()
    assert "Simulator" in row.inner_text()  # the data centre by name, from the table
    assert "just now" in row.inner_text()
    screenshot()
