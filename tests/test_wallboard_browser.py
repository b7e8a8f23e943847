"""The wallboard (?wallboard=1) in Chromium, on a wall's screen: 16 departments, 40 chats and
30 operators at 1920 x 1080 with no scrolling, every department reached through the pages
that rotate ("page k of n"), the longest waits with an honest "and N more waiting", every
operator counted, the alerts needing attention on one strip with "+N more", and the day's
service level charted; in both themes, with no console error.

Set SIQ_SCREENS_SHOTS to a directory to keep the screenshots (wall-<size>-<theme>.png) there.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from dashboard.figures import queues
from dashboard.models import AlertKind, Chat
from dashboard.realtime import render
from dashboard.state import apply
from siq_integration.normalised import (
    ChatStatus,
    Conversation,
    Department,
    Operator,
    OperatorStatus,
    OperatorSync,
    Visitor,
)
from tests.factories import make_portal, owner
from tests.support.browser import ARTIFACTS, console_errors, no_push, send
from tests.support.history import raise_alert
from tests.support.live import world
from tests.support.servers import ws_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["console_errors", "no_push", "owner", "ws_server"]  # fixtures from tests/support

SHOTS = Path(os.environ.get("SIQ_SCREENS_SHOTS", "") or ARTIFACTS)

DEPARTMENTS = [
    "Sales", "Support", "Billing", "Returns", "Shipping", "Onboarding", "Enterprise",
    "Partners", "Accounts", "Technical", "Refunds", "Warranty", "Installations",
    "Premium Customer Success", "Renewals", "Careers",
]  # fmt: skip
WAITING, CONNECTED = 32, 8  # 40 open chats
# 30 operators: 12 available, 10 busy or away, 8 offline.
PRESENCE = [OperatorStatus.AVAILABLE] * 12 + [OperatorStatus.BUSY] * 6 + [OperatorStatus.AWAY] * 4
PRESENCE += [OperatorStatus.OFFLINE] * 8
OPEN_ALERTS = 9


def build_wall(portal) -> None:
    now = timezone.now()
    departments = [Department(id=f"d{n:02d}", name=name) for n, name in enumerate(DEPARTMENTS)]
    apply.apply_departments(portal, departments, taken_at=now)
    operators = [
        Operator(
            f"o{n:02d}",
            f"Operator {n:02d}",
            f"operator{n:02d}@example.org",
            status,
            department_ids=(f"d{n % 16:02d}", f"d{(n + 5) % 16:02d}"),
            max_chats=3,
        )
        for n, status in enumerate(PRESENCE)
    ]
    apply.apply_operators(
        portal, OperatorSync(operators=operators, sync_time=None, complete=True), taken_at=now
    )
    chats = []
    for n in range(WAITING + CONNECTED):
        department = departments[n % 16]
        started = now - timedelta(seconds=30 + 47 * n)
        waiting = n < WAITING
        chats.append(
            Conversation(
                id=f"c{n:02d}",
                status=ChatStatus.WAITING if waiting else ChatStatus.CONNECTED,
                visitor=Visitor(id=f"v{n:02d}", name=f"Visitor {n:02d}"),
                started_at=started,
                operator_id="" if waiting else f"o{n % 12:02d}",
                operator_name="" if waiting else f"Operator {n % 12:02d}",
                department_id=department.id,
                department_name=department.name,
                attended_at=None if waiting else started + timedelta(seconds=20),
            )
        )
    apply.apply_chats(portal, chats, taken_at=now, complete=True)
    longest = Chat.objects.filter(portal=portal, status=ChatStatus.WAITING).order_by("started_at")
    for n, chat in enumerate(longest[: OPEN_ALERTS + 2]):
        raise_alert(
            portal,
            AlertKind.LONG_WAIT,
            ago=timedelta(minutes=1),
            title=f"{chat.visitor_name} has waited for pickup ({chat.department_name})",
            target=f"chat:{chat.remote_id}",
            chat=chat,
            # Two are someone's already: counted in the summary, not on the strip.
            acknowledged_after=timedelta(seconds=10) if n >= OPEN_ALERTS else None,
        )


def open_wall(page, base: str, user, theme: str, query: str = "") -> None:
    from django.test import Client

    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}]
    )
    page.goto(f"{base}/?wallboard=1{query}")
    page.evaluate("(theme) => localStorage.setItem('siq-theme-wallboard', theme)", theme)
    page.reload()
    page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
    page.wait_for_selector("#connection[data-state='open']")
    page.wait_for_function("window.SupervisorWall && SupervisorWall.stats.fits > 0")
    page.wait_for_function("SupervisorWall.day().drawn", timeout=10_000)


# What a person sees of each part: whole elements inside their box, and what is said of the rest.
SEEN = """() => {
  const inside = (el, box) => {
    const r = el.getBoundingClientRect(), b = box.getBoundingClientRect();
    return r.height > 0 && r.top >= b.top - 1 && r.bottom <= b.bottom + 1
      && r.left >= b.left - 1 && r.right <= b.right + 1
      && r.bottom <= window.innerHeight + 1 && r.right <= window.innerWidth + 1;
  };
  const shown = (selector, box) => [...document.querySelectorAll(selector)]
    .filter((el) => el.getClientRects().length && getComputedStyle(el).display !== "none");
  const tilesBox = document.querySelector("#queues-panel .queues-wrap");
  const tiles = shown("#queues-body > tr", tilesBox);
  const waitsBox = document.querySelector("#chats-panel .table-wrap");
  const waits = shown("#chats-body > tr", waitsBox);
  const list = document.getElementById("alerts-list");
  const alerts = shown("#alerts-list > li", list);
  return {
    height: document.documentElement.scrollHeight, width: document.documentElement.scrollWidth,
    bodyHeight: document.body.scrollHeight,
    tiles: tiles.map((el) => el.id),
    tilesCut: tiles.filter((el) => !inside(el, tilesBox)).map((el) => el.id),
    pages: document.querySelector("[data-wall-pages]").textContent,
    waits: waits.map((el) => el.dataset.status),
    waitsCut: waits.filter((el) => !inside(el, waitsBox)).length,
    more: document.querySelector("[data-wall-more='chats']").textContent,
    alerts: alerts.map((el) => el.dataset.effective),
    alertsCut: alerts.filter((el) => !inside(el, list)).length,
    alertsMore: document.querySelector("[data-wall-more='alerts']").textContent,
    summary: document.querySelector("[data-alerts-summary]").textContent,
    kpis: ["available", "busy", "offline", "waiting"]
      .map((name) => document.querySelector(`[data-kpi='${name}']`).textContent),
  };
}"""


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_it_shows_every_department_and_counts_the_rest_on_a_wall(ws_server, page, owner, theme):
    portal = make_portal()
    build_wall(portal)
    every_department = {row.key for row in queues.queue_rows([portal])}
    assert len(every_department) == 16
    page.set_viewport_size({"width": 1920, "height": 1080})
    open_wall(page, ws_server, owner, theme)
    assert page.get_attribute("html", "data-theme") == theme

    seen = page.evaluate(SEEN)
    assert seen["height"] <= 1080 and seen["bodyHeight"] <= 1080, seen  # no scrolling
    assert seen["width"] <= 1920, seen

    # Departments: more than fit, so pages; each page whole, and together every department.
    pages = page.evaluate("SupervisorWall.departments()")
    assert pages["pages"] >= 2, pages
    assert seen["pages"] == f"page 1 of {pages['pages']}"
    reached = set(seen["tiles"])
    assert seen["tilesCut"] == [] and 0 < len(seen["tiles"]) == pages["perPage"], seen
    for k in range(2, pages["pages"] + 1):
        page.evaluate("SupervisorWall.turn()")
        seen_now = page.evaluate(SEEN)
        assert seen_now["pages"] == f"page {k} of {pages['pages']}"
        assert seen_now["tilesCut"] == [], seen_now
        assert not reached & set(seen_now["tiles"]), "a department on two pages"
        reached |= set(seen_now["tiles"])
    assert reached == every_department
    page.evaluate("SupervisorWall.turn()")  # and round again
    assert page.inner_text("[data-wall-pages]") == f"page 1 of {pages['pages']}"

    # The longest waits: whole rows of waiting visitors, and the rest counted, honestly.
    assert 0 < len(seen["waits"]) < WAITING and set(seen["waits"]) == {"waiting"}, seen
    assert seen["waitsCut"] == 0, seen
    assert seen["more"] == f"and {WAITING - len(seen['waits'])} more waiting"
    assert page.evaluate("SupervisorWall.waits()") == {
        "waiting": WAITING,
        "shown": len(seen["waits"]),
    }
    longest = page.evaluate(
        "[...document.querySelectorAll('#chats-body > tr:not([data-wall-off])')]"
        ".filter((r) => r.dataset.status === 'waiting').map((r) => r.dataset.visitor)"
    )
    longest_first = range(WAITING - 1, WAITING - 1 - len(longest), -1)
    assert longest == [f"Visitor {n:02d}" for n in longest_first]

    # Every operator counted: available, busy or away, offline.
    assert seen["kpis"] == ["12", "10", "8", str(WAITING)]

    # The alerts that need attention on one strip, the rest said.
    assert set(seen["alerts"]) == {"open"} and seen["alertsCut"] == 0, seen
    shown_alerts = len(seen["alerts"])
    assert 0 < shown_alerts <= OPEN_ALERTS
    left = OPEN_ALERTS - shown_alerts
    assert seen["alertsMore"] == (f"+{left} more" if left else "")
    assert seen["summary"] == f"{OPEN_ALERTS} need attention · 2 acknowledged"

    # The day's service level, drawn for the portal shown.
    assert page.locator("#wall-day canvas").count() == 1
    assert page.inner_text("#wall-day .wall-day-scope") == portal.name
    page.screenshot(path=str(SHOTS / f"wall-1920x1080-{theme}.png"))

    if theme == "dark":
        # The pages turn by themselves, about every 10 seconds.
        before = page.inner_text("[data-wall-pages]")
        page.wait_for_function(
            "(before) => document.querySelector('[data-wall-pages]').textContent !== before",
            arg=before,
            timeout=13_000,
        )

    # A laptop's screen: still no scrolling, still nothing cut.
    page.set_viewport_size({"width": 1440, "height": 900})
    page.wait_for_timeout(300)
    seen = page.evaluate(SEEN)
    assert seen["height"] <= 900 and seen["width"] <= 1440, seen
    assert seen["tilesCut"] == [] and seen["waitsCut"] == 0 and seen["alertsCut"] == 0, seen
    assert seen["more"] == f"and {WAITING - len(seen['waits'])} more waiting"
    page.screenshot(path=str(SHOTS / f"wall-1440x900-{theme}.png"))

    # A phone: the page scrolls, and still leaves nobody out unsaid.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    seen = page.evaluate(SEEN)
    assert seen["width"] <= 390, seen
    assert seen["more"] == f"and {WAITING - len(seen['waits'])} more waiting"
    page.screenshot(path=str(SHOTS / f"wall-390-{theme}.png"), full_page=True)


def test_it_counts_again_when_a_change_is_pushed(ws_server, page, owner):
    portal = make_portal()
    build_wall(portal)
    page.set_viewport_size({"width": 1920, "height": 1080})
    # A link made from a page sorted by visitor: the wall still shows the longest waits first.
    open_wall(page, ws_server, owner, "dark", "&sort=visitor&dir=reverse")
    shown = page.evaluate("SupervisorWall.waits().shown")
    first = page.evaluate(
        "[...document.querySelectorAll('#chats-body > tr:not([data-wall-off])')]"
        ".find((r) => r.dataset.status === 'waiting').dataset.visitor"
    )
    assert first == "Visitor 31"

    # A waiting visitor is picked up: one fewer waiting, the count says so at once.
    chat = Chat.objects.get(portal=portal, remote_id="c31")
    apply.apply_chats(
        portal,
        [
            Conversation(
                id="c31",
                status=ChatStatus.CONNECTED,
                visitor=Visitor(id="v31", name="Visitor 31"),
                started_at=chat.started_at,
                operator_id="o01",
                operator_name="Operator 01",
                department_id=chat.department_id,
                department_name=chat.department_name,
                attended_at=timezone.now(),
            )
        ],
        taken_at=timezone.now(),
        complete=False,
    )
    send(page, render.render_changes(apply.Changes(portal.pk, chats={chat.pk})))
    page.wait_for_function(f"SupervisorWall.waits().waiting === {WAITING - 1}")
    assert page.evaluate("SupervisorWall.waits().shown") == shown
    assert page.inner_text("[data-wall-more='chats']") == f"and {WAITING - 1 - shown} more waiting"
    assert page.get_attribute(f"#chat-{chat.pk}", "data-status") == "connected"
    assert not page.is_visible(f"#chat-{chat.pk}")

    # The day's chart loads again because a message came, not on a timer: at most every 30 s.
    loads = page.evaluate("SupervisorWall.stats.dayLoads")
    page.wait_for_function(f"SupervisorWall.stats.dayLoads > {loads}", timeout=35_000)


def test_it_names_the_portal_the_day_panel_shows(client, owner):
    first, second = make_portal("Acme"), make_portal("Zylker")
    client.force_login(owner)
    html = client.get("/?wallboard=1").content.decode()
    assert 'id="wall-day"' in html
    shown = html.split('class="wall-day-scope"')[1].split(">", 1)[1].split("</span>")[0]
    assert "(the first of 2 portals)" in html
    assert shown.startswith(first.name) or shown.startswith(second.name)
    assert f"/day/series.json?portal={first.pk}" in html or f"?portal={second.pk}" in html
    # One portal: no such words; the live page itself: no day panel at all.
    html = client.get(f"/?wallboard=1&portal={second.pk}").content.decode()
    assert "the first of" not in html and f"series.json?portal={second.pk}" in html
    assert 'id="wall-day"' not in client.get("/").content.decode()


def test_it_shows_a_few_departments_large_and_keeps_them_still(ws_server, page, owner):
    world(make_portal())  # two departments, three visitors waiting
    page.set_viewport_size({"width": 1920, "height": 1080})
    open_wall(page, ws_server, owner, "light")

    seen = page.evaluate(SEEN)
    assert seen["height"] <= 1080, seen
    assert len(seen["tiles"]) == 2 and seen["tilesCut"] == [], seen
    assert page.get_attribute("#queues-body", "data-size") == "large"
    assert seen["pages"] == "" and page.evaluate("SupervisorWall.departments().pages") == 1
    page.evaluate("SupervisorWall.turn()")  # nothing to turn to
    assert page.evaluate(SEEN)["tiles"] == seen["tiles"]
    assert seen["more"] == "All 3 waiting visitors are shown."
    assert seen["alerts"] == [] and seen["alertsMore"] == ""
    page.screenshot(path=str(SHOTS / "wall-1920x1080-few-light.png"))
