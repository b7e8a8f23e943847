"""One fact, one definition: "webhooks are flowing", the page's thresholds and since when a
visitor waits (or has had no reply) are defined once, in Python, and everything that needs
them reads that definition: the live page's script gets them from the server as data-*
attributes and has no rule or number of its own."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.template.loader import render_to_string
from django.utils import timezone

from dashboard import selectors
from dashboard.models import Chat, ChatStatus
from dashboard.polling.planner import WebhookState, webhook_state
from dashboard.templatetags.supervisor import iso
from siq_integration.health import WEBHOOKS_FLOWING_WITHIN, webhook_health
from siq_integration.models import Portal
from tests.factories import make_portal
from tests.support.live import world

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


# A record's waitingSince or unansweredSince being set (a property or an assignment).
READS_A_START = re.compile(r"\b(waitingSince|unansweredSince)\s*[:=](?!=)\s*([^,;\n]+)")


def test_it_leaves_where_each_wait_starts_to_the_server():
    """The rows' data-waiting-since and data-unanswered-since are the server's
    (Chat.waited_since, Chat.unanswered_since): the script reads them as they are, with no
    fallback of its own (a waiting chat without its own mark waiting since it started, say)."""
    found: dict[str, list[str]] = {"waitingSince": [], "unansweredSince": []}
    for path in sorted(LIVE_JS.glob("*.js")):
        code = script(path.name)
        for name, value in READS_A_START.findall(code):
            found[name].append(f"{path.name}: {name} = {value.strip()}")
    assert found["waitingSince"] and found["unansweredSince"], found
    for name, readings in found.items():
        expected = f"when(d.{name})"
        assert all(reading.endswith(f"= {expected}") for reading in readings), readings


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


# --- since when a visitor waits, or has had no reply -----------------------------------------


def a_chat(status: str, **fields) -> Chat:
    values = {
        "pk": 1,
        "portal_id": uuid.uuid4(),
        "remote_id": "c1",
        "status": status,
        "started_at": NOON - timedelta(minutes=15),
        "fact_at": NOON,
        "source": "poll",
        **fields,
    }
    return Chat(**values)


def test_it_says_since_when_a_chat_waits_in_one_place():
    started = NOON - timedelta(minutes=15)
    marked = NOON - timedelta(minutes=4)
    assert a_chat(ChatStatus.WAITING, waiting_since=marked).waited_since == marked
    # Without a mark of its own (rows from before the mark was kept): since it started.
    assert a_chat(ChatStatus.WAITING, waiting_since=None).waited_since == started
    for status in (ChatStatus.CONNECTED, ChatStatus.ENDED, ChatStatus.MISSED):
        assert a_chat(status, waiting_since=marked).waited_since is None, status

    wrote = NOON - timedelta(minutes=2)
    visitor_last = {"last_message_sender": "visitor", "last_message_at": wrote}
    assert a_chat(ChatStatus.CONNECTED, **visitor_last).unanswered_since == wrote
    assert a_chat(ChatStatus.WAITING, **visitor_last).unanswered_since is None
    assert a_chat(ChatStatus.ENDED, **visitor_last).unanswered_since is None
    operator_last = {"last_message_sender": "operator", "last_message_at": wrote}
    assert a_chat(ChatStatus.CONNECTED, **operator_last).unanswered_since is None


def own_mark_only(chat: Chat):
    """Another definition of a wait, for the tests that check nobody has one of their own."""
    return chat.waiting_since if chat.status == ChatStatus.WAITING else None


@pytest.mark.django_db
def test_it_counts_the_longest_wait_by_that_definition_in_one_query(
    monkeypatch, django_assert_num_queries
):
    portal = make_portal()
    world(portal)  # waiting 5, 15 and 10 minutes; two connected chats
    Chat.objects.filter(portal=portal, remote_id="w15").update(waiting_since=None)
    now = timezone.now()

    # The open chats, the waits of the last hour, the operators: one query each.
    with django_assert_num_queries(3):
        figures = selectors.kpis([portal], now)
    assert (figures["open_chats"], figures["waiting"]) == (5, 3)
    assert 15 * 60 - 5 <= figures["longest_wait_seconds"] <= 15 * 60 + 5

    # The figures follow the definition, whatever it is: they have none of their own.
    monkeypatch.setattr(Chat, "waited_since", property(own_mark_only))
    figures = selectors.kpis([portal], now)
    assert 10 * 60 - 5 <= figures["longest_wait_seconds"] <= 10 * 60 + 5


def test_it_renders_each_rows_clocks_and_data_from_that_definition(monkeypatch):
    waiting = a_chat(ChatStatus.WAITING, waiting_since=None)
    since = iso(waiting.started_at)
    row = render_to_string("live/parts.html#chat_row", {"chat": waiting})
    head = render_to_string("live/parts.html#drawer_head", {"chat": waiting})
    # The data the script sorts and counts by, and the clocks, from the one moment.
    assert f'data-waiting-since="{since}"' in row
    assert f'<time data-tick="wait" datetime="{since}">' in row
    assert f'<time data-tick="wait" datetime="{since}">' in head
    assert 'data-unanswered-since=""' in row

    wrote = NOON - timedelta(minutes=2)
    connected = a_chat(
        ChatStatus.CONNECTED,
        pk=2,
        waiting_since=NOON - timedelta(minutes=9),  # a mark left over: it waits no more
        last_message_sender="visitor",
        last_message_at=wrote,
    )
    row = render_to_string("live/parts.html#chat_row", {"chat": connected})
    head = render_to_string("live/parts.html#drawer_head", {"chat": connected})
    assert 'data-waiting-since=""' in row and 'data-tick="wait"' not in row
    assert f'data-unanswered-since="{iso(wrote)}"' in row
    assert f'<time data-tick="unanswered" datetime="{iso(wrote)}">' in row
    assert f'<time data-tick="unanswered" datetime="{iso(wrote)}">' in head

    # Another definition changes the row's data and its clock alike.
    monkeypatch.setattr(Chat, "waited_since", property(own_mark_only))
    row = render_to_string("live/parts.html#chat_row", {"chat": waiting})
    head = render_to_string("live/parts.html#drawer_head", {"chat": waiting})
    assert 'data-waiting-since=""' in row and 'data-tick="wait"' not in row
    assert 'data-tick="wait"' not in head
