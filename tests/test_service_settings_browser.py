"""The service levels page in Chromium: an admin gives a department business hours (the
hours table shows only then), is told in words when a day closes before it opens, saves;
both themes, a desktop's and a phone's width, nothing past the screen's edge, no console
error (the strict CSP included).

Set SIQ_SETTINGS_SHOTS to a directory to keep screenshots of the page there
(settings-1440-light.png … settings-390-dark.png).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.models import Department, DepartmentService, ServiceSettings
from tests.factories import make_admin, make_portal
from tests.support.browser import console_errors

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["console_errors"]  # fixtures from tests/support

SHOTS = os.environ.get("SIQ_SETTINGS_SHOTS", "")
NAMES = [
    ("d1", "Sales"),
    ("d2", "Billing"),
    ("d3", "Technical support for enterprise customers in Europe, the Middle East and Africa"),
]
FITS = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('main *')].filter(
    (el) => el.getBoundingClientRect().right > width + 1 && el.getClientRects().length);
  return { page: document.documentElement.scrollWidth, width,
           wide: wide.map((el) => el.tagName + '.' + el.className) };
}"""


@pytest.fixture
def portal():
    portal = make_portal("Zylker")
    now = timezone.now()
    for remote_id, name in NAMES:
        Department.objects.create(portal=portal, remote_id=remote_id, name=name, seen_at=now)
    ServiceSettings.objects.create(portal=portal, time_zone="Europe/Berlin", target_seconds=45)
    DepartmentService.objects.create(
        portal=portal,
        department_id="d2",
        target_seconds=30,
        target_share=90,
        hours={str(day): ["08:00", "18:00"] for day in range(5)},
    )
    return portal


def open_page(page, base: str, portal) -> None:
    client = Client()
    client.force_login(make_admin("ada"))
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}]
    )
    page.goto(f"{base}/portals/{portal.pk}/service/")


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"settings-{name}.png"), full_page=True)


def fits_the_screen(page) -> None:
    fits = page.evaluate(FITS)
    assert fits["page"] <= fits["width"] and not fits["wide"], fits


def department(page, remote_id: str):
    return page.locator(f"#department-{remote_id}")


def test_an_admin_gives_a_department_hours_and_is_told_what_is_wrong(live_server, page, portal):
    open_page(page, live_server.url, portal)
    sales = department(page, "d1")
    # Nothing of its own: closed, and its hours hidden until "During these hours" is chosen.
    assert sales.get_attribute("open") is None
    sales.locator("summary").click()
    assert sales.locator(".service-hours").is_hidden()
    sales.get_by_label("During these hours").check()
    assert sales.locator(".service-hours").is_visible()
    sales.get_by_label("Monday opens").fill("17:00")
    sales.get_by_label("Monday closes").fill("09:00")
    sales.get_by_label("Own T (seconds)").fill("20")
    page.get_by_role("button", name="Save the service levels").click()

    page.wait_for_selector(".message.error")
    said = department(page, "d1").inner_text()
    assert "Monday: it closes at 09:00, which is not after it opens (17:00)." in said
    assert not DepartmentService.objects.filter(portal=portal, department_id="d1").exists()

    sales = department(page, "d1")
    sales.get_by_label("Monday closes").fill("21:30")
    page.get_by_role("button", name="Save the service levels").click()
    page.wait_for_selector(".message.success")
    own = DepartmentService.objects.get(portal=portal, department_id="d1")
    assert (own.target_seconds, own.hours) == (20, {"0": ["17:00", "21:30"]})
    assert "own target: 80 % within 20 s; business hours" in department(page, "d1").inner_text()


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (390, 844)])
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_it_reads_in_both_themes_at_a_desktops_and_a_phones_width(
    live_server, page, portal, width, height, theme
):
    page.set_viewport_size({"width": width, "height": height})
    page.goto(live_server.url + "/login/")
    page.evaluate("(theme) => localStorage.setItem('siq-theme', theme)", theme)
    open_page(page, live_server.url, portal)
    assert page.get_attribute("html", "data-theme") == theme
    # Billing has its own settings: shown open, its hours visible, Sales and the long one not.
    assert department(page, "d2").get_attribute("open") is not None
    assert department(page, "d2").locator(".service-hours").is_visible()
    assert department(page, "d3").get_attribute("open") is None
    fits_the_screen(page)
    shot(page, f"{width}-{theme}")
    # An unknown zone, to see the refusal as an admin would.
    page.get_by_label("Time zone").fill("Europe/Berln")
    page.get_by_role("button", name="Save the service levels").click()
    page.wait_for_selector(".message.error")
    assert "Did you mean Europe/Berlin?" in page.inner_text(".service-form")
    fits_the_screen(page)
    shot(page, f"{width}-{theme}-refused")
