"""The audit's lines of refusals by role, at a desktop's and a phone's width, in both themes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.models import RefusalTally
from tests.support.browser import ARTIFACTS
from tests.support.history import world

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["world"]  # fixtures from tests/support


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize(("width", "height"), [(1440, 900), (390, 844)])
def test_the_refusal_lines_fit_and_follow_the_theme(world, live_server, page, theme, width, height):
    now = timezone.now()
    viewer = world["users"]["viewer"]
    viewer.first_name, viewer.last_name = "Ann", "Wiśniewska-Lindqvist"
    viewer.save()
    for kind, count, minutes in [("transfer", 37, 3), ("end", 1, 0)]:
        RefusalTally.objects.create(
            user=viewer,
            username="Ann Wiśniewska-Lindqvist",
            role="Viewer",
            portal=world["here"],
            kind=kind,
            count=count,
            first_at=now - timedelta(minutes=minutes + 1),
            last_at=now - timedelta(minutes=1),
            minute=now,
        )
    client = Client()
    client.force_login(world["users"]["ada"])
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page.set_viewport_size({"width": width, "height": height})
    page.goto(live_server.url + "/login/")
    page.evaluate("(theme) => localStorage.setItem('siq-theme', theme)", theme)
    page.goto(live_server.url + "/audit/")

    lines = page.locator("[data-refusals] li")
    assert lines.count() == 2
    said = lines.nth(1).inner_text()
    assert "Viewer Ann Wiśniewska-Lindqvist was refused 37 transfers between" in said
    assert "was refused 1 chat end at" in lines.nth(0).inner_text()
    assert page.get_attribute("html", "data-theme") == theme
    overflow = page.evaluate(
        "[...document.querySelectorAll('[data-refusals], [data-refusals] li')]"
        ".some(e => e.getBoundingClientRect().right > window.innerWidth + 1)"
    )
    assert not overflow, "a refusal line is drawn past the screen's edge"
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("[data-refusals]").screenshot(
        path=str(ARTIFACTS / f"audit-refusals-{width}-{theme}.png")
    )
    page.screenshot(path=str(ARTIFACTS / f"audit-refusals-page-{width}-{theme}.png"))
