"""The service rules in Chromium: the alert rules page at a desktop's and a phone's width, in
both themes (their fields fit, saving a bad window says what is wrong in words, a good one is
saved), and a department's alert raised by `manage.py serve`'s worker on the live page.

Set SIQ_SCREENS_SHOTS to a directory to keep the screenshots there too (rules-*.png).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.models import Alert, AlertKind, AlertRule, Department, Role
from tests.factories import make_admin, make_portal
from tests.support.browser import ARTIFACTS, console_errors, shown, sign_in, watched

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["console_errors"]  # fixtures from tests/support: no console error allowed

SHOTS = os.environ.get("SIQ_SCREENS_SHOTS", "")


def keep(page, locator, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    folders = [ARTIFACTS] + ([Path(SHOTS)] if SHOTS else [])
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"))
        page.screenshot(path=str(folder / f"{name}-full.png"), full_page=True)
        locator.screenshot(path=str(folder / f"{name}-rule.png"))


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize(("width", "height"), [(1440, 900), (390, 844)])
def test_the_service_rules_fit_and_save_with_errors_in_words(
    live_server, page, theme, width, height
):
    portal = make_portal("Zylker Customer Success and Premium Support")
    for remote_id, name in (("d1", "Sales"), ("d2", "Billing and Invoicing"), ("d3", "Returns")):
        Department.objects.create(
            portal=portal, remote_id=remote_id, name=name, seen_at=timezone.now()
        )
    client = Client()
    client.force_login(make_admin("ada"))
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page.set_viewport_size({"width": width, "height": height})
    rules_page = f"{live_server.url}/portals/{portal.pk}/alerts/"
    page.goto(rules_page)
    page.evaluate("(theme) => localStorage.setItem('siq-theme', theme)", theme)
    page.goto(rules_page)
    assert page.get_attribute("html", "data-theme") == theme

    level = page.locator("#rule-service_level_low")
    assert "Service level too low" in level.locator("legend").inner_text()
    assert page.input_value("#id_service_level_low-threshold") == "80"
    assert page.input_value("#id_service_level_low-window_minutes") == "30"
    assert page.input_value("#id_missed_share_high-minimum_chats") == "5"

    page.fill("#id_service_level_low-window_minutes", "2")
    page.fill("#id_missed_share_high-threshold", "25")
    page.click(".rules-form button[type=submit]")
    level = page.locator("#rule-service_level_low")
    error = level.locator(".errorlist")
    assert error.inner_text() == "Say over how many minutes: 5 to 480."
    assert (
        AlertRule.objects.get(portal=portal, kind=AlertKind.SERVICE_LEVEL_LOW).window_minutes == 30
    )

    overflow = page.evaluate(
        "[...document.querySelectorAll('.rules-form *')]"
        ".filter(e => { const r = e.getBoundingClientRect();"
        " return r.width && (r.right > window.innerWidth + 1 || r.left < -1); })"
        ".map(e => e.tagName + '#' + e.id + '.' + e.className)"
    )
    assert overflow == [], f"drawn past the screen's edge: {overflow[:5]}"
    level.scroll_into_view_if_needed()
    page.evaluate("document.getElementById('rule-service_level_low').scrollIntoView()")
    keep(page, level, f"rules-{width}-{theme}")

    page.fill("#id_service_level_low-window_minutes", "45")
    page.click(".rules-form button[type=submit]")
    page.wait_for_selector("text=Saved the alert rules")
    saved = AlertRule.objects.get(portal=portal, kind=AlertKind.SERVICE_LEVEL_LOW)
    missed = AlertRule.objects.get(portal=portal, kind=AlertKind.MISSED_SHARE_HIGH)
    assert (saved.window_minutes, missed.threshold) == (45, 25)


def test_a_department_in_trouble_reaches_the_panel_from_the_worker(
    server, simulator, connected_portal, page
):
    """Against `manage.py serve` and the simulator: five visitors of one department waiting
    past the target raise one service-level alert in every supervisor's panel, linking to the
    department's day; switched off, the rule's alert goes from the page."""
    portal = watched(server, connected_portal(open_chats=0, operators=4))
    department = simulator.state(portal.screen_name)["portals"][0]["departments"][0]
    for n in range(5):
        simulator.create_conversation(
            portal.screen_name, department_id=department["id"], waiting_seconds=120 + n
        )
    sign_in(page, server, role=Role.SUPERVISOR, portals=[portal])

    row = shown(page.locator("#alerts-list li[data-kind=service_level_low]"))
    title = row.locator(".alert-title")
    expected = f"{department['name']}: service level 0 % over the last 30 min (target 80 %)"
    assert title.inner_text() == expected
    assert "0 of 5 chats picked up within 60 s; 5 waiting past 60 s now." in row.inner_text()
    assert title.get_attribute("href") == (
        f"/day/?portal={portal.pk}&department={department['id']}"
    )
    assert page.locator("#alerts-list li[data-kind=service_level_low]").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    row.screenshot(path=str(ARTIFACTS / "rules-panel-row.png"))
    if SHOTS:
        row.screenshot(path=str(Path(SHOTS) / "rules-panel-row.png"))

    AlertRule.objects.filter(portal=portal, kind=AlertKind.SERVICE_LEVEL_LOW).update(enabled=False)
    page.wait_for_selector("#alerts-list li[data-kind=service_level_low]", state="detached")
    alert = Alert.objects.get(portal=portal, kind=AlertKind.SERVICE_LEVEL_LOW)
    assert alert.resolved_reason == "The rule or its departments changed."
