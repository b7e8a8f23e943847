"""The "Through the day" page in Chromium, served by `manage.py serve` (daphne, websockets):
five charts drawn, no console error, both themes, a phone's width, and a chat SalesIQ
reports reaching the charts without a reload (over the live websocket, then series.json).

Set SIQ_DAY_SHOTS to a directory to keep screenshots of the page there (1440 x 900 and
390 px wide, light and dark).
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.figures.definitions import day_start
from dashboard.models import ServiceSettings
from dashboard.state import apply
from siq_integration import connecting
from siq_integration.normalised import (
    ChatStatus,
    Conversation,
    Department,
    EventKind,
    Visitor,
    WebhookEvent,
)
from tests.factories import make_admin
from tests.support.browser import console_errors, no_push
from tests.support.servers import serving

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["console_errors", "no_push"]  # fixtures from tests/support


@pytest.fixture
def ws_server(django_db_setup, simulator, tmp_path):
    """`manage.py serve` with its worker: the worker counts the chats SalesIQ's webhooks
    bring (its queues job, once a second) and tells the pages, as in production."""
    with serving(simulator, tmp_path, worker=True) as base:
        yield base


ZONE = "Europe/Berlin"
SHOTS = os.environ.get("SIQ_DAY_SHOTS", "")
DEPARTMENTS = [Department(id="d1", name="Sales"), Department(id="d2", name="Billing")]
CANVASES = "document.querySelectorAll('#day .day-plot canvas').length"


def chat_at(portal, arrived: datetime, key: str, *, wait: float, missed: bool, department: str):
    """A chat that arrived at ``arrived`` and was picked up after ``wait`` seconds, or was
    over without a pickup after them, told as SalesIQ's webhook would."""
    fields = dict(
        id=key,
        visitor=Visitor(id="v" + key, name="Zoë"),
        started_at=arrived,
        department_id=department,
        department_name=department,
    )
    if missed:
        conversation = Conversation(
            status=ChatStatus.MISSED, ended_at=arrived + timedelta(seconds=wait), **fields
        )
        kind = EventKind.CHAT_MISSED
    else:
        conversation = Conversation(
            status=ChatStatus.ENDED,
            operator_id="op1",
            operator_name="Asha",
            attended_at=arrived + timedelta(seconds=wait),
            ended_at=arrived + timedelta(seconds=wait + 240),
            **fields,
        )
        kind = EventKind.CHAT_ENDED
    at = min(conversation.ended_at, timezone.now())
    apply.apply_event(
        portal,
        WebhookEvent(
            kind=kind,
            name=str(kind),
            dedupe_key=key,
            occurred_at=at,
            conversation=conversation,
            chat_id=key,
        ),
        received_at=at,
    )


def a_day_of_chats(portal, start: datetime, end: datetime, prefix: str, seed: int) -> int:
    """Chats every quarter from ``start`` to ``end``: more in office hours, a few missed and
    abandoned; how many."""
    chance = random.Random(seed)
    zone = ZoneInfo(ZONE)
    made = 0
    moment = start
    while moment < end:
        hour = moment.astimezone(zone).hour
        busy = 4 if 9 <= hour < 17 else 1 if 7 <= hour < 21 else 0
        for _ in range(chance.randint(0, busy) + (1 if busy and chance.random() < 0.5 else 0)):
            arrived = moment + timedelta(seconds=chance.randint(0, 899))
            if arrived >= end:
                continue
            missed = chance.random() < 0.12
            wait = chance.choice([5, 20, 40, 75, 130]) if not missed else chance.choice([20, 200])
            made += 1
            chat_at(
                portal,
                arrived,
                f"{prefix}{made}",
                wait=wait,
                missed=missed,
                department=chance.choice(["d1", "d2"]),
            )
        moment += timedelta(minutes=15)
    apply.count_pending(portal.pk)  # as the worker's queues job does within a second
    return made


@pytest.fixture
def watched_portal(connected_portal, ws_server):
    """A connected portal in Berlin whose webhooks reach the server, with today's chats so far
    and last week's whole day."""
    portal = connected_portal(open_chats=0)
    ServiceSettings.objects.update_or_create(portal=portal, defaults={"time_zone": ZONE})
    assert connecting.register_webhooks(portal, url=f"{ws_server}/webhooks/salesiq/{portal.pk}/")
    now = timezone.now()
    apply.apply_departments(portal, DEPARTMENTS, taken_at=now)
    zone = ZoneInfo(ZONE)
    today = day_start(now, zone)
    week_before = day_start(now - timedelta(days=7), zone)
    a_day_of_chats(portal, week_before, week_before + timedelta(days=1), "w", seed=7)
    # Today up to a minute ago (the server's clock moves on; SalesIQ's facts are not ahead).
    a_day_of_chats(portal, today, now - timedelta(minutes=1), "t", seed=8)
    return portal


def open_day(page, base: str, user, query: str) -> None:
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}]
    )
    page.goto(f"{base}/day/?{query}")
    page.wait_for_function(f"{CANVASES} === 5")
    page.wait_for_function("window.SupervisorDay.stats.state === 'open'", timeout=15_000)


def offered_today(page) -> int:
    return int(page.inner_text("[data-total='offered'] [data-side='figures']"))


FITS = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('#day *')].filter(
    (el) => el.getBoundingClientRect().right > width + 1 && el.getClientRects().length);
  const names = wide.map((el) => el.className || el.tagName);
  return { page: document.documentElement.scrollWidth, width, wide: names };
}"""


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"day-{name}.png"), full_page=True)


def test_it_draws_five_charts_in_both_themes_and_at_a_phones_width(ws_server, page, watched_portal):
    admin = make_admin("ada")
    open_day(page, ws_server, admin, f"portal={watched_portal.pk}")
    assert page.locator("[data-day-empty]").is_hidden()
    # Every chart has its definition on hover, the totals too.
    for name in ("offered", "service_level", "answer_average"):
        assert page.locator(f"[data-total='{name}'] .figure-name").get_attribute("title")
    assert page.get_attribute("#chart-level-title", "title").startswith("Service level against T")
    # The charts read the theme's colours: they are drawn again in the other theme's.
    light_ink = page.evaluate("window.SupervisorDay.palette.ink")
    assert light_ink == page.evaluate(
        "getComputedStyle(document.documentElement).getPropertyValue('--ink').trim()"
    )
    page.set_viewport_size({"width": 1440, "height": 900})
    page.wait_for_timeout(200)
    shot(page, "1440-light")
    draws = page.evaluate("window.SupervisorDay.stats.draws")
    page.click("[data-theme-toggle]")
    theme = page.get_attribute("html", "data-theme")
    page.wait_for_function(f"window.SupervisorDay.stats.draws >= {draws + 5}")
    dark_ink = page.evaluate("window.SupervisorDay.palette.ink")
    assert dark_ink != light_ink
    assert page.evaluate(CANVASES) == 5
    shot(page, f"1440-{theme}")

    # A phone: each chart as wide as its box, nothing past the screen's edge.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function(
        "Object.values(window.SupervisorDay.charts).every("
        "(u) => u.width === u.root.parentElement.clientWidth)"
    )
    fits = page.evaluate(FITS)
    assert fits["page"] <= fits["width"] and not fits["wide"], fits
    widths = page.evaluate("Object.values(window.SupervisorDay.charts).map((u) => u.width)")
    assert len(widths) == 5 and all(200 < w <= 390 for w in widths), widths
    shot(page, f"390-{theme}")
    page.click("[data-theme-toggle]")
    page.wait_for_timeout(200)
    shot(page, f"390-{page.get_attribute('html', 'data-theme')}")


def test_a_chat_salesiq_reports_reaches_the_charts_without_a_reload(
    ws_server, page, simulator, watched_portal
):
    admin = make_admin("ada")
    open_day(page, ws_server, admin, f"portal={watched_portal.pk}")
    before = offered_today(page)
    page.evaluate("window.dayPageMark = 'not reloaded'")

    # The signed webhook reaches the server's process, which counts the chat and pushes the
    # change to the live websocket this page listens to.
    simulator.create_conversation(watched_portal.screen_name, visitor_name="Ines Live")
    page.wait_for_function(
        "Number(document.querySelector(\"[data-total='offered'] [data-side='figures']\")"
        f".textContent) === {before + 1}",
        timeout=20_000,
    )
    assert page.evaluate("window.dayPageMark") == "not reloaded"
    stats = page.evaluate("window.SupervisorDay.stats")
    assert stats["messages"] >= 1 and stats["loads"] >= 1
    # The chart of this day has the chat in its current quarter.
    last = page.evaluate(
        "(() => { const d = window.SupervisorDay.charts.offered.data[1];"
        " let i = d.length - 1; while (i >= 0 && d[i] === null) i--; return d[i]; })()"
    )
    assert last >= 1


def test_bursts_of_changes_load_the_figures_at_most_once_every_five_seconds(
    ws_server, page, watched_portal
):
    admin = make_admin("ada")
    open_day(page, ws_server, admin, f"portal={watched_portal.pk}")
    page.wait_for_timeout(5200)  # past the window of the load the connection's message made
    loads = page.evaluate("window.SupervisorDay.stats.loads")
    # Twelve messages in a burst, as the server's pushes would arrive.
    page.evaluate("for (let i = 0; i < 12; i++) window.SupervisorDay.heard()")
    page.wait_for_function(f"window.SupervisorDay.stats.loads === {loads + 1}")
    page.evaluate("window.SupervisorDay.heard()")
    page.wait_for_timeout(3000)
    assert page.evaluate("window.SupervisorDay.stats.loads") == loads + 1  # still in the window
    page.wait_for_function(f"window.SupervisorDay.stats.loads === {loads + 2}", timeout=5000)


def test_a_day_with_no_chat_says_so_in_words(ws_server, page, connected_portal):
    portal = connected_portal(open_chats=0)
    ServiceSettings.objects.update_or_create(portal=portal, defaults={"time_zone": ZONE})
    admin = make_admin("ada")
    client = Client()
    client.force_login(admin)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": ws_server}]
    )
    day = (datetime.now(UTC) - timedelta(days=30)).astimezone(ZoneInfo(ZONE)).date()
    page.goto(f"{ws_server}/day/?portal={portal.pk}&day={day.isoformat()}")
    page.wait_for_function("window.SupervisorDay && window.SupervisorDay.stats.state === 'open'")
    assert page.locator("[data-day-empty]").is_visible()
    assert "No chat arrived on" in page.inner_text("[data-day-empty]")
    assert page.locator("[data-day-body]").is_hidden()
    assert page.evaluate(CANVASES) == 0


def test_the_first_chat_of_an_empty_day_brings_the_charts_without_a_reload(
    ws_server, page, simulator, connected_portal
):
    portal = connected_portal(open_chats=0)
    ServiceSettings.objects.update_or_create(portal=portal, defaults={"time_zone": ZONE})
    assert connecting.register_webhooks(portal, url=f"{ws_server}/webhooks/salesiq/{portal.pk}/")
    client = Client()
    client.force_login(make_admin("ada"))
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": ws_server}]
    )
    page.goto(f"{ws_server}/day/?portal={portal.pk}")
    page.wait_for_function("window.SupervisorDay && window.SupervisorDay.stats.state === 'open'")
    assert page.locator("[data-day-empty]").is_visible()
    assert page.evaluate(CANVASES) == 0

    simulator.create_conversation(portal.screen_name, visitor_name="First of the day")
    page.wait_for_function(f"{CANVASES} === 5", timeout=20_000)
    assert page.locator("[data-day-empty]").is_hidden()
    assert offered_today(page) == 1
