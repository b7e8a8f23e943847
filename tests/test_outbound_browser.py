"""What a Viewer and an Admin see of an escalation in a real browser: the webhook's address
masked for both, why it failed for the Admin only; both themes, desktop and phone widths
(screenshots under test-results/)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from dashboard.alerts.rules import ensure_rules
from dashboard.models import Alert, AlertKind, Escalation, Profile, Role
from siq_integration.models import Portal

SECRET_PATH = "/services/T0ABC/B0DEF/s3cretPathPart"


@pytest.fixture
def escalated(db):
    portal = Portal.objects.create(name="Zylker Support", data_center="sim", screen_name="zylker")
    users = {}
    for name, role in (("vic", Role.VIEWER), ("adele", Role.ADMIN)):
        user = get_user_model().objects.create_user(name, password="pw-for-tests-1")
        Profile.objects.create(user=user, role=role).portals.set([portal])
        users[name] = user
    rule = ensure_rules(portal)[AlertKind.LONG_WAIT]
    raised = timezone.now() - timedelta(minutes=12)
    alert = Alert.objects.create(
        portal=portal,
        rule=rule,
        kind=rule.kind,
        severity=rule.severity,
        target="chat:9001",
        title="Zoë has waited 12m 00s for pickup (Support)",
        raised_at=raised,
        changed_at=raised,
        escalated_at=raised + timedelta(minutes=5),
    )
    for channel, destination, ok, status, error in (
        (Escalation.Channel.EMAIL, "lead@zylker.example", True, None, ""),
        (
            Escalation.Channel.WEBHOOK,
            f"https://hooks.slack.com{SECRET_PATH}",
            False,
            500,
            "HTTP 500 Internal Server Error",
        ),
    ):
        Escalation.objects.create(
            alert=alert,
            channel=channel,
            destination=destination,
            sent_at=raised + timedelta(minutes=5),
            ok=ok,
            http_status=status,
            error=error,
        )
    return alert, users


def sign_in(page, live_server, user, theme: str) -> None:
    client = Client()
    client.force_login(user)
    page.context.clear_cookies()
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page.context.add_init_script(f"localStorage.setItem('siq-theme', '{theme}')")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_escalations_read_masked_and_the_reason_for_admins_only(
    escalated, live_server, page, screenshot
):
    alert, users = escalated
    for who in ("vic", "adele"):
        for theme in ("light", "dark"):
            sign_in(page, live_server, users[who], theme)
            for width, height in ((1440, 900), (390, 844)):
                page.set_viewport_size({"width": width, "height": height})
                for name, path in (("detail", f"/alerts/{alert.pk}/"), ("history", "/alerts/")):
                    page.goto(live_server.url + path)
                    assert page.get_attribute("html", "data-theme") == theme
                    text = page.locator("main").inner_text()
                    assert "hooks.slack.com/…" in text
                    assert "s3cretPathPart" not in page.content()
                    if who == "adele":
                        assert "HTTP 500 Internal Server Error" in text
                    else:
                        assert "HTTP 500" not in page.content()
                        assert "failed" in text.lower()
                    # Nothing runs off the side of a phone.
                    overflow = page.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth"
                    )
                    assert overflow <= 1, (who, theme, width, name, overflow)
                    screenshot(f"escalation-{name}-{who}-{theme}-{width}")
