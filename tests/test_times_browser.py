"""Times on the live page in Chromium: the Waiting and Unanswered columns (each its own
meaning, each sorted by exactly what it shows) and one way of writing a time of day for each
viewer (their clock and zone), in the drawer, its transcript and the alerts.

The page is served by tests/support/servers.py's ws_server (in this module's own child
process)."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from dashboard import times
from dashboard.alerts.rules import ensure_rules
from dashboard.models import Alert, AlertKind, Chat, ChatMessage, Profile
from dashboard.realtime import render
from dashboard.state import apply
from siq_integration.normalised import ChatStatus, Conversation, Message, SenderType, Visitor
from tests.factories import make_portal, owner
from tests.support.browser import open_live, order, row_id, send
from tests.support.live import fill
from tests.support.servers import ws_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["owner", "ws_server"]  # fixtures, shared with the live page's browser tests

DURATION = re.compile(r"\d+s|\d+m \d\ds|\d+h \d\dm|\d+d \d+h")


@pytest.fixture(autouse=True)
def no_push(monkeypatch):
    monkeypatch.setattr("dashboard.realtime.publish.send", lambda portal_id, html: None)


@pytest.fixture
def console_errors(page):
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def conversation(
    chat_id: str,
    *,
    minutes: float,
    status: ChatStatus = ChatStatus.CONNECTED,
    last_by: SenderType | None = None,
    last_seconds_ago: float = 0,
) -> Conversation:
    """A chat open ``minutes``; connected ones picked up 20 s in. ``last_by`` wrote its last
    message ``last_seconds_ago``."""
    now = timezone.now()
    started = now - timedelta(minutes=minutes)
    connected = status == ChatStatus.CONNECTED
    return Conversation(
        id=chat_id,
        status=status,
        visitor=Visitor(id=f"v{chat_id}", name=f"Visitor {chat_id}"),
        started_at=started,
        operator_id="o1" if connected else "",
        operator_name="Asha Rao" if connected else "",
        department_id="d1",
        department_name="Sales",
        attended_at=started + timedelta(seconds=20) if connected else None,
        last_message=Message(
            id=f"m{chat_id}",
            chat_id=chat_id,
            sender_type=last_by,
            text=f"Last line of {chat_id}",
            sent_at=now - timedelta(seconds=last_seconds_ago),
            sender_name="someone",
        )
        if last_by
        else None,
    )


def mixed(portal) -> None:
    """Two visitors waiting for pickup, three connected ones whose visitor wrote last (4 min,
    2 min and 30 s unanswered), one connected chat whose operator wrote last."""
    fill(
        portal,
        [
            conversation("w15", minutes=15, status=ChatStatus.WAITING, last_by=SenderType.VISITOR),
            conversation("w5", minutes=5, status=ChatStatus.WAITING),
            conversation("c30", minutes=30, last_by=SenderType.VISITOR, last_seconds_ago=240),
            conversation("c20", minutes=20, last_by=SenderType.VISITOR, last_seconds_ago=120),
            conversation("c40", minutes=40, last_by=SenderType.VISITOR, last_seconds_ago=30),
            conversation("c10", minutes=10, last_by=SenderType.OPERATOR, last_seconds_ago=60),
        ],
    )


def ids(*names: str) -> list[str]:
    return [row_id(name) for name in names]


def cell(page, name: str, column: str) -> str:
    return page.inner_text(f"#{row_id(name)} .{column}").strip()


def click_sort(page, column: str) -> None:
    page.click(f"th[data-sort='{column}'] .sort")


def test_it_shows_the_wait_for_pickup_and_the_unanswered_time_apart_and_sorts_each(
    ws_server, page, owner, console_errors, screenshot
):
    portal = make_portal()
    mixed(portal)
    ensure_rules(portal)  # "unanswered" after 3 minutes: the Unanswered clock's tone
    page.set_viewport_size({"width": 1440, "height": 900})
    open_live(page, ws_server, owner)

    assert page.inner_text("th[data-sort='wait']").strip() == "WAITING"
    assert page.inner_text("th[data-sort='unanswered']").strip() == "UNANSWERED"
    # Waiting: only visitors waiting for pickup, live; a connected chat's wait is over.
    assert re.fullmatch(r"15m \d\ds", cell(page, "w15", "c-wait"))
    assert re.fullmatch(r"5m \d\ds", cell(page, "w5", "c-wait"))
    for name in ("c30", "c20", "c40", "c10"):
        assert cell(page, name, "c-wait") == "", name
    # … and said where it belongs: the status's tooltip, and the drawer.
    pill = f"#{row_id('c30')} .c-status .pill"
    assert page.get_attribute(pill, "title") == "Picked up after 20s"
    # Unanswered: connected chats whose visitor wrote last, toned by the portal's rule.
    assert re.fullmatch(r"4m \d\ds", cell(page, "c30", "c-unanswered"))
    assert re.fullmatch(r"2m \d\ds", cell(page, "c20", "c-unanswered"))
    assert re.fullmatch(r"3\ds", cell(page, "c40", "c-unanswered"))
    for name in ("w15", "w5", "c10"):
        assert cell(page, name, "c-unanswered") == "", name
    tone = {
        name: page.get_attribute(f"#{row_id(name)} .c-unanswered time", "data-level") or ""
        for name in ("c30", "c20", "c40")
    }
    assert tone == {"c30": "bad", "c20": "warn", "c40": ""}
    assert page.get_attribute(f"#{row_id('w15')} .c-wait time", "data-level") == "bad"
    # Every clock is a duration with its units: never read as a time of day.
    clocks = page.eval_on_selector_all(
        "#chats-body time[data-tick]", "els => els.map(e => e.textContent)"
    )
    assert clocks and all(DURATION.fullmatch(text) for text in clocks), clocks
    screenshot("live-waiting-and-unanswered")

    # The page's own order: waiting (longest first), then unanswered (longest first).
    assert order(page) == ids("w15", "w5", "c30", "c20", "c40", "c10")
    assert page.get_attribute("th[data-sort='wait']", "aria-sort") == "descending"
    # Reversed, the shortest wait first; the rows without one stay after.
    click_sort(page, "wait")
    assert order(page) == ids("w5", "w15", "c30", "c20", "c40", "c10")
    assert page.get_attribute("th[data-sort='wait']", "aria-sort") == "ascending"

    click_sort(page, "unanswered")
    assert order(page) == ids("c30", "c20", "c40", "w15", "w5", "c10")
    assert page.get_attribute("th[data-sort='unanswered']", "aria-sort") == "descending"
    assert page.get_attribute("th[data-sort='wait']", "aria-sort") is None
    click_sort(page, "unanswered")
    assert order(page) == ids("c40", "c20", "c30", "w15", "w5", "c10")
    assert "sort=unanswered" in page.url and "dir=reverse" in page.url

    # A reply arrives: the chat leaves the unanswered ones for its place after them.
    c30 = Chat.objects.get(remote_id="c30")
    answered = conversation("c30", minutes=30, last_by=SenderType.OPERATOR)
    apply.apply_conversation(portal, answered, fact_at=timezone.now(), source="webhook")
    send(page, render.render_changes(apply.Changes(portal.pk, chats={c30.pk})))
    page.wait_for_function(f"!document.querySelector('#chat-{c30.pk} .c-unanswered time')")
    assert order(page) == ids("c40", "c20", "w15", "w5", "c30", "c10")
    click_sort(page, "unanswered")
    assert order(page) == ids("c20", "c40", "w15", "w5", "c30", "c10")
    assert console_errors == []


def drawer_times(page) -> list[str]:
    return page.eval_on_selector_all(
        "#drawer time[data-local]:not([data-local=title])",
        "els => els.map(e => e.textContent.trim())",
    )


def test_it_writes_every_time_of_day_one_way_for_each_viewer(
    ws_server, page, owner, console_errors, screenshot
):
    portal = make_portal()
    fill(portal, [conversation("c8", minutes=8, last_by=SenderType.VISITOR, last_seconds_ago=70)])
    chat = Chat.objects.get(remote_id="c8")
    now = timezone.now()
    sent = [now - timedelta(minutes=7), now - timedelta(days=2, hours=5)]
    for n, at in enumerate(sent):
        ChatMessage.objects.create(
            chat=chat, remote_id=f"line{n}", sender_type="visitor", sender_name="Visitor",
            text=f"Line {n}", sent_at=at,
        )  # fmt: skip
    Chat.objects.filter(pk=chat.pk).update(transcript_loaded_at=now)
    rules = ensure_rules(portal)
    acknowledged = Alert.objects.create(
        portal=portal, rule=rules[AlertKind.LONG_CHAT], kind=AlertKind.LONG_CHAT,
        severity="warning", target="chat:c8", chat=chat, title="Long chat", raised_at=now,
        acknowledged_at=now - timedelta(minutes=1), acknowledged_by_name="ada",
    )  # fmt: skip
    Alert.objects.create(
        portal=portal, rule=rules[AlertKind.UNANSWERED], kind=AlertKind.UNANSWERED,
        severity="warning", target="chat:c8", chat=chat, title="No answer", raised_at=now,
        snoozed_until=now + timedelta(minutes=15), snoozed_by_name="ada",
    )  # fmt: skip
    # The viewer's profile: a 24-hour clock in New York, whatever the browser says.
    Profile.objects.create(user=owner, time_format="24h", time_zone="America/New_York")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Kolkata"})
    page.set_viewport_size({"width": 1440, "height": 900})
    open_live(page, ws_server, owner)
    page.click(f"#chat-{chat.pk} .visitor-link")
    page.wait_for_selector("#drawer time[data-local]")

    def expected(clock: times.Clock, moments) -> list[str]:
        return [times.when(moment, clock, timezone.now()) for moment in moments]

    new_york = ZoneInfo("America/New_York")
    h24 = times.Clock(zone=new_york, hour12=False)
    chat.refresh_from_db()
    acknowledged.refresh_from_db()
    # The drawer: when it started, the alerts' times, the transcript: each the same way.
    shown = drawer_times(page)
    lines = list(ChatMessage.objects.filter(chat=chat).values_list("sent_at", flat=True))
    assert len(lines) == 3  # the two above, and the chat's last message
    assert sorted(shown) == sorted(
        expected(h24, [chat.started_at, acknowledged.acknowledged_at, now + timedelta(minutes=15)])
        + expected(h24, lines)
    ), shown
    assert all(re.fullmatch(r"(\d{1,2} [A-Z][a-z]{2}, )?\d\d:\d\d", text) for text in shown)
    assert "Waited\n20s before pickup" in page.inner_text("#drawer .facts")
    assert re.search(r"no reply for 1m \d\ds", page.inner_text("#drawer .drawer-head"))

    # A line that arrives live is written the same way.
    line = ChatMessage.objects.create(
        chat=chat, remote_id="line-live", sender_type="operator", sender_name="Asha Rao",
        text="On it.", sent_at=timezone.now(),
    )  # fmt: skip
    send(page, render.render_changes(apply.Changes(portal.pk, messages={line.pk})))
    page.wait_for_selector(f"#msg-{line.pk}")
    assert page.inner_text(f"#msg-{line.pk} time") == expected(h24, [line.sent_at])[0]
    # So is the alert panel, and a change pushed to it.
    panel = f"#alert-{acknowledged.pk} .alert-ack time"
    assert page.inner_text(panel) == expected(h24, [acknowledged.acknowledged_at])[0]
    send(page, render.render_alerts([acknowledged.pk]))
    page.wait_for_function(
        f"document.querySelector('{panel}').textContent === "
        f"'{expected(h24, [acknowledged.acknowledged_at])[0]}'"
    )
    screenshot("live-drawer-24h")

    # The same viewer picks a 12-hour clock: every time now reads that way.
    Profile.objects.filter(user=owner).update(time_format="12h")
    page.reload()
    page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
    page.click(f"#chat-{chat.pk} .visitor-link")
    page.wait_for_selector("#drawer time[data-local]")
    h12 = times.Clock(zone=new_york, hour12=True)
    shown = drawer_times(page)
    assert sorted(shown) == sorted(
        expected(h12, [chat.started_at, acknowledged.acknowledged_at, now + timedelta(minutes=15)])
        + expected(h12, [*lines, line.sent_at])
    ), shown
    assert all(re.fullmatch(r"(\d{1,2} [A-Z][a-z]{2}, )?\d{1,2}:\d\d [AP]M", t) for t in shown)
    assert console_errors == []
