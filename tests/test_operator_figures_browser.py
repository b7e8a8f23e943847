"""Operator figures in Chromium: compact in the operators panel, in full in the operator
drawer, both following a chat's end and a late rating live, the running status ticking.

The page is served by `manage.py serve --no-worker` (tests/support/servers.py); changes are
applied here and handed to the page's socket as the publisher renders them
(dashboard.realtime.render), the code path a real message takes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from dashboard.models import Operator, ServiceSettings
from dashboard.realtime import render
from dashboard.state import apply
from siq_integration.normalised import (
    ChatStatus,
    Conversation,
    EventKind,
    Message,
    OperatorStatus,
    OperatorSync,
    SenderType,
    Visitor,
    WebhookEvent,
)
from siq_integration.normalised import Operator as RemoteOperator
from tests.factories import make_portal, owner
from tests.support.browser import console_errors, no_push, open_live, send
from tests.support.servers import ws_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["console_errors", "no_push", "owner", "ws_server"]  # fixtures from tests/support

# For a person to look at (the part's notes ask for them there).
SHOTS = Path("/work/notes/shots")


def zone_far_from_midnight(now: datetime) -> str:
    """A zone where the last hour and the next few minutes are all today."""
    for name in ("UTC", "Asia/Tokyo", "America/New_York", "Pacific/Kiritimati", "Etc/GMT+12"):
        if 2 <= now.astimezone(ZoneInfo(name)).hour < 22:
            return name
    raise AssertionError("no zone far from midnight")  # they lie half a day apart


def event(portal, kind: EventKind, conversation: Conversation, when: datetime) -> apply.Changes:
    """Applied, then counted as the worker's queues job counts it within a second: what the
    page receives from both."""
    key = f"{conversation.id}-{kind}-{when.isoformat()}"
    changes = apply.apply_event(
        portal,
        WebhookEvent(
            kind=kind,
            name=key,
            dedupe_key=key,
            occurred_at=when,
            conversation=conversation,
            chat_id=conversation.id,
        ),
        received_at=when,
    )
    departments, operators = apply.count_pending(portal.pk)
    changes.add(apply.Changes(portal.pk, queues=departments, figures=operators))
    return changes


def picked_up(portal, chat_id: str, *, ago: timedelta, wait: int, response: int) -> Conversation:
    """A chat Asha picked up ``wait`` seconds after it arrived ``ago``, answering after
    ``response`` seconds."""
    arrived = timezone.now() - ago
    waiting = Conversation(
        id=chat_id,
        status=ChatStatus.WAITING,
        visitor=Visitor(id="$" + chat_id, name=f"Visitor {chat_id}"),
        started_at=arrived,
        department_id="d1",
        department_name="Sales",
    )
    event(portal, EventKind.CHAT_CREATED, waiting, arrived)
    connected = replace(
        waiting,
        status=ChatStatus.CONNECTED,
        operator_id="asha",
        operator_name="Asha Rao",
        attended_at=arrived + timedelta(seconds=wait),
    )
    event(portal, EventKind.CHAT_ATTENDER_CHANGED, connected, connected.attended_at)
    said = connected.attended_at + timedelta(seconds=response)
    line = Message(f"m-{chat_id}", chat_id, SenderType.OPERATOR, "Hello!", said)
    event(portal, EventKind.OPERATOR_MESSAGE, replace(connected, last_message=line), said)
    return connected


def ended(portal, connected: Conversation, *, after: int, rating: int) -> apply.Changes:
    end = connected.attended_at + timedelta(seconds=after)
    over = replace(connected, status=ChatStatus.ENDED, ended_at=end, rating=rating)
    return event(portal, EventKind.CHAT_ENDED, over, end)


def a_day(portal) -> tuple[Conversation, Conversation]:
    """Asha: available for 1h 30m, busy for the last 20 minutes; one chat ended (12 s to
    her first line, 5 minutes long, rated 5), one open (6 s to her first line)."""
    now = timezone.now()
    ServiceSettings.objects.create(portal=portal, time_zone=zone_far_from_midnight(now))

    def presence(status: OperatorStatus, since: datetime) -> None:
        asha = RemoteOperator("asha", "Asha Rao", "asha@z.example", status, max_chats=3,
                              department_ids=("d1",), modified_at=since)  # fmt: skip
        ben = RemoteOperator("ben", "Ben Okafor", "ben@z.example", OperatorStatus.AVAILABLE,
                             max_chats=3, department_ids=("d1",), modified_at=since)  # fmt: skip
        apply.apply_operators(portal, OperatorSync([asha, ben], None, False), taken_at=now)

    presence(OperatorStatus.AVAILABLE, now - timedelta(hours=2))
    # First seen now; as if the dashboard had watched her since 1h 50m ago.
    Operator.objects.filter(portal=portal).update(counted_since=now - timedelta(minutes=110))
    presence(OperatorStatus.BUSY, now - timedelta(minutes=20))
    first = picked_up(portal, "c1", ago=timedelta(minutes=50), wait=20, response=12)
    ended(portal, first, after=300, rating=5)
    second = picked_up(portal, "c2", ago=timedelta(minutes=8), wait=10, response=6)
    return first, second


def shot(page, name: str) -> None:
    """A screenshot once two frames have painted (rows come into view lazily)."""
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.screenshot(path=str(SHOTS / f"operators-{name}.png"))


def compact(page, pk: int) -> str:
    # As text: a row off screen is not laid out (content-visibility), so it has no innerText.
    return page.text_content(f"#op-{pk} .o-figures")


def figure(page, name: str) -> str:
    return page.inner_text(f"#drawer [data-op-figure='{name}']")


def test_it_shows_operator_figures_and_follows_them_live(ws_server, page, owner):
    portal = make_portal()
    first, second = a_day(portal)
    asha = Operator.objects.get(portal=portal, remote_id="asha")
    page.set_viewport_size({"width": 1440, "height": 900})
    open_live(page, ws_server, owner)

    # Compact in the panel: one chat handled; first responses 12 s and 6 s; one rating.
    assert compact(page, asha.pk) == "1 handled · FRT 9s · ★5.0"
    # Nothing answered or rated today: no line, the row keeps its two.
    ben = Operator.objects.get(remote_id="ben")
    assert page.query_selector(f"#op-{ben.pk} .o-figures") is None
    figures = page.locator(f"#op-{asha.pk} .o-figures")
    assert figures.evaluate("f => f.scrollWidth <= f.clientWidth")  # whole, not cut short
    for theme in ("light", "dark"):
        if theme == "dark":
            page.click("[data-theme-toggle]")
        shot(page, f"1440x900-{theme}")
    # Her row pushed while no drawer is open: the drawer's head that goes with it is dropped.
    send(page, render.render_changes(apply.Changes(portal.pk, operators={asha.pk})))
    assert page.query_selector(f"#op-head-{asha.pk}") is None

    page.click(f"#op-{asha.pk} .op-name")
    page.wait_for_selector("#drawer.operator-drawer")
    assert figure(page, "handled") == "1 of 2 answered"
    assert figure(page, "response") == "9s average"
    assert figure(page, "handle") == "5m 00s average"
    assert figure(page, "rating").startswith("★ 5.0 from 1 rating, 100 % good")
    title = page.get_attribute("#drawer dt[title^='Chats handled:']", "title")
    assert "a chat transferred to a colleague counts for the colleague" in title
    available = page.inner_text("#drawer [data-status-time='available']")
    assert available.split() == ["Available", "1h", "30m"]
    running = "#drawer [data-status-time='busy'] time"
    assert page.inner_text(running).startswith("20m")
    shot(page, "1440x900-drawer-dark")
    page.keyboard.press("Escape")
    page.click("[data-theme-toggle]")
    page.click(f"#op-{asha.pk} .op-name")
    page.wait_for_selector("#drawer.operator-drawer")
    shot(page, "1440x900-drawer-light")

    # The open chat ends, rated 4: the row and the drawer both follow.
    send(page, render.render_changes(ended(portal, second, after=200, rating=4)))
    page.wait_for_function(
        f"document.querySelector('#op-{asha.pk} .o-figures').textContent.startsWith('2 handled')"
    )
    assert compact(page, asha.pk) == "2 handled · FRT 9s · ★4.5"
    assert figure(page, "handled") == "2"
    assert figure(page, "rating").startswith("★ 4.5 from 2 ratings, 100 % good")
    assert page.inner_text("#drawer [data-panel-chat-count]") == "0"  # it left her open chats

    # A rating changed later moves only her figures: pushed all the same, and the running
    # status keeps ticking in the drawer it replaced.
    rerated = replace(first, status=ChatStatus.ENDED, ended_at=first.attended_at
                      + timedelta(seconds=300), rating=2)  # fmt: skip
    send(page, render.render_changes(event(portal, EventKind.CHAT_RATED, rerated, timezone.now())))
    page.wait_for_function(
        "document.querySelector(\"#drawer [data-op-figure='rating']\").textContent"
        ".startsWith('★ 3.0')"
    )
    assert compact(page, asha.pk).endswith("★3.0")
    before = page.inner_text(running)
    page.wait_for_timeout(2100)
    assert page.inner_text(running) != before


def test_it_fits_the_figures_on_a_phone(ws_server, page, owner):
    portal = make_portal()
    a_day(portal)
    asha = Operator.objects.get(portal=portal, remote_id="asha")
    page.set_viewport_size({"width": 390, "height": 844})
    open_live(page, ws_server, owner)

    row = page.locator(f"#op-{asha.pk}")
    row.scroll_into_view_if_needed()
    assert compact(page, asha.pk) == "1 handled · FRT 9s · ★5.0"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    figures = page.locator(f"#op-{asha.pk} .o-figures")
    assert figures.evaluate("f => f.scrollWidth <= f.clientWidth")  # whole, not cut short
    for theme in ("light", "dark"):
        if theme == "dark":
            page.click("[data-theme-toggle]")
        row.scroll_into_view_if_needed()
        shot(page, f"390-{theme}")
        page.click(f"#op-{asha.pk} .op-name")
        page.wait_for_selector("#drawer.operator-drawer")
        drawer = page.locator("#drawer")
        assert drawer.evaluate("d => d.scrollWidth <= d.clientWidth")  # no sideways scroll
        page.locator("#drawer .op-today").scroll_into_view_if_needed()
        shot(page, f"390-drawer-{theme}")
        page.keyboard.press("Escape")
        page.wait_for_selector("#drawer", state="detached")
