"""One fact, one definition: "webhooks are flowing" and the page's thresholds are defined
once, in Python, and everything that needs them reads that definition: the live page's
script gets them from the server as data-* attributes and has no number of its own."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from dashboard import selectors
from dashboard.polling.planner import WebhookState, webhook_state
from siq_integration.health import WEBHOOKS_FLOWING_WITHIN, webhook_health
from siq_integration.models import Portal
from tests.factories import make_portal

ROOT = Path(__file__).resolve().parents[1]
LIVE_JS = ROOT / "static" / "js" / "live"
PAGE_HTML = ROOT / "templates" / "live" / "page.html"

NOON = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
JUST_WITHIN = WEBHOOKS_FLOWING_WITHIN - timedelta(seconds=5)
JUST_PAST = WEBHOOKS_FLOWING_WITHIN + timedelta(seconds=5)


def test_it_defines_flowing_as_three_minutes():
    assert timedelta(minutes=3) == WEBHOOKS_FLOWING_WITHIN


def test_it_plans_polls_by_the_same_flowing():
    def state(age: timedelta) -> WebhookState:
        return webhook_state(
            registered=True, last_delivery_at=NOON - age, last_delivery_ok=True, now=NOON
        )

    assert state(JUST_WITHIN) == WebhookState.FLOWING
    assert state(JUST_PAST) == WebhookState.SILENT


@pytest.mark.django_db
def test_it_says_on_the_health_page_when_deliveries_stop_flowing():
    portal = make_portal()
    Portal.objects.filter(pk=portal.pk).update(webhook_id="wh-1", last_webhook_ok=True)
    portal.refresh_from_db()

    portal.last_webhook_at = NOON - JUST_WITHIN
    assert webhook_health(portal, now=NOON).label == "Receiving"
    portal.last_webhook_at = NOON - JUST_PAST
    said = webhook_health(portal, now=NOON)
    assert (said.label, said.tone) == ("Registered", "warn")
    assert "over 3 minutes" in said.sentence


@pytest.mark.django_db
def test_it_shows_webhooks_flowing_on_the_live_page_by_the_same_flowing():
    portal = make_portal()
    now = timezone.now()
    Portal.objects.filter(pk=portal.pk).update(
        webhook_id="wh-1", last_webhook_ok=True, last_webhook_at=now - JUST_WITHIN
    )
    portal.refresh_from_db()
    assert selectors.freshness(portal, now).webhooks == "flowing"
    Portal.objects.filter(pk=portal.pk).update(last_webhook_at=now - JUST_PAST)
    portal.refresh_from_db()
    assert selectors.freshness(portal, now).webhooks != "flowing"


@pytest.mark.django_db
def test_it_gives_the_page_its_thresholds_in_seconds_and_percent():
    portal = make_portal()
    thresholds = selectors.live_context([portal])["thresholds"]
    assert thresholds == {
        "stale_after": 120,
        "wait_warn": 60,
        "wait_bad": 180,
        "utilisation_warn": 85,
        "utilisation_bad": 100,
    }
    assert all(type(value) is int for value in thresholds.values())


# --- the page's script: nothing of its own -------------------------------------------------

# A JavaScript string or comment (strings kept or blanked, comments dropped).
_JS_STRING_OR_COMMENT = re.compile(
    r"""("(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`)|//[^\n]*|/\*.*?\*/""",
    re.S,
)


def script(name: str, *, strings: bool = True) -> str:
    """A live page module without its comments (which may well name the old rules), and
    without the text of its strings unless ``strings``."""

    def keep(match: re.Match) -> str:
        if match.group(1) is None:
            return ""
        return match.group(1) if strings else '""'

    return _JS_STRING_OR_COMMENT.sub(keep, (LIVE_JS / name).read_text())


def camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.capitalize() for part in rest)


def test_it_has_no_threshold_of_the_scripts_own():
    """The modules that tone, mark, sort and count compare with no number of their own (0
    aside): a utilisation of 85 % or 100 %, a wait of 60 s are the server's thresholds.
    (page.js, which reads them, is checked by the test below.)"""
    number = r"\d+(?:\.\d+)?"
    # a < 60, a >= 0.85, 1 <= a; not a shift (>> 1) nor an arrow (=> 1).
    compared = re.compile(rf"(?<![<>=])[<>]=?\s*({number})\b|\b({number})\s*[<>](?![<>])")
    for name in ("figures.js", "tables.js", "ticks.js", "freshness.js"):
        code = script(name, strings=False)
        numbers = [a or b for a, b in compared.findall(code)]
        assert all(float(n) == 0 for n in numbers), f"{name} compares with {numbers}"


def test_it_hands_every_threshold_to_the_script_from_the_server():
    """Each of selectors.thresholds() is on #live as it is (no default of the template's
    own) and read by page.js with no number to fall back on (its percent made a share)."""
    page_html = PAGE_HTML.read_text()
    page_js = script("page.js")
    reading = [line for line in page_js.splitlines() if "threshold(" in line]
    for key in selectors.thresholds():
        attribute = "data-" + key.replace("_", "-")
        assert f'{attribute}="{{{{ thresholds.{key} }}}}"' in page_html, attribute
        assert f'threshold("{camel(key)}")' in page_js, key
    numbers = re.findall(r"\b\d+(?:\.\d+)?\b", "\n".join(reading))
    assert set(numbers) <= {"100"}, reading
