"""The portal page's webhook door in Chromium: refused and rejected deliveries said in words,
fitting a phone and a laptop, in both themes. Screenshots under test-results/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from dashboard import ingest
from dashboard.models import InboxEvent, PortalSync
from tests.factories import live_portal
from tests.support.browser import ARTIFACTS, console_errors_from_now

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WINDOWS = {390: 844, 1440: 900}


def test_the_portal_page_says_what_was_refused_and_rejected(live_server, page):
    now = timezone.now()
    portal = live_portal(
        name="Zylker Customer Success and Premium Support (Europe, Middle East and Africa)",
        screen_name="zylker",
        webhook_id="1234567890123456789",
        webhook_registered_at=now - timedelta(hours=2),
        last_webhook_at=now - timedelta(seconds=40),
        last_webhook_ok=True,
    )
    PortalSync.objects.create(
        portal=portal,
        refused_deliveries=1234,
        last_refused_at=now - timedelta(minutes=3),
        last_refused_from="2001:db8:85a3:0000:0000:8a2e:0370:7334",
        last_refused_reason="A webhook arrived without a signature (x-siqsignature).",
    )
    for age, body, reason in [
        (5, b"{" * 5000, "Its JSON is nested too deeply to read."),
        (9, b'{"v":"\\ud800"}', "It holds text that is not valid Unicode (a lone surrogate)."),
        (60, b'{"event_time":99999999999999999}', "It holds a number or a date out of range."),
    ]:
        ingest.rejected(portal, body, reason, now - timedelta(minutes=age)).save()
    get_user_model().objects.create_superuser("ada", "ada@example.org", "a-long-test-password")

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", "a-long-test-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    # Leave the live page first: its websocket (which this plain HTTP server does not speak)
    # may still be failing to connect while the next page loads.
    page.goto(f"{live_server.url}/portals/{portal.pk}/")
    errors = console_errors_from_now(page)
    ARTIFACTS.mkdir(exist_ok=True)
    for theme in ("light", "dark"):
        for width, height in WINDOWS.items():
            page.set_viewport_size({"width": width, "height": height})
            page.goto(f"{live_server.url}/portals/{portal.pk}/")
            page.evaluate(f"localStorage.setItem('siq-theme', '{theme}')")
            page.reload()
            assert page.get_attribute("html", "data-theme") == theme
            text = page.inner_text("main")
            assert "1,234 refused deliveries, last from" in text
            assert "3 rejected deliveries" in text
            assert "nested too deeply" in text and "out of range" in text
            # Nothing wider than the window.
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{overflow}px too wide at {width} ({theme})"
            page.screenshot(
                path=str(ARTIFACTS / f"portal-webhook-door-{width}-{theme}.png"), full_page=True
            )
    assert InboxEvent.objects.filter(state="rejected").count() == 3
    assert errors == []
