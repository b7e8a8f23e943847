"""`{% rows %}`: the live page's rows rendered once and reused while their facts stay the same,
with their clocks set afresh on every render."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.template import Context, Engine
from django.template.loader import render_to_string

from dashboard.models import Chat, ChatStatus, Operator
from dashboard.selectors import OperatorView
from dashboard.templatetags import supervisor

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PORTAL = uuid.uuid4()


@pytest.fixture(autouse=True)
def empty_cache():
    supervisor.row_cache.clear()
    yield
    supervisor.row_cache.clear()


def chat(pk: int, **fields) -> Chat:
    values = {
        "portal_id": PORTAL,
        "remote_id": f"c{pk}",
        "status": ChatStatus.WAITING,
        "visitor_name": f"Visitor <b>{pk}</b>",
        "started_at": NOW - timedelta(minutes=5),
        "waiting_since": NOW - timedelta(minutes=5),
        "fact_at": NOW,
        "source": "poll",
        **fields,
    }
    return Chat(pk=pk, **values)


def render(chats, at: datetime = NOW) -> str:
    with mock.patch.object(supervisor.timezone, "now", return_value=at):
        return render_to_string("live/parts.html#chats_body", {"chats": chats})


def one_by_one(chats, at: datetime = NOW) -> str:
    """What the page rendered before {% rows %}: the partial for each chat, in a loop."""
    loop = Engine.get_default().from_string(
        "{% for chat in chats %}{% include 'live/parts.html#chat_row' %}{% endfor %}"
    )
    with mock.patch.object(supervisor.timezone, "now", return_value=at):
        return loop.render(Context({"chats": chats, "oob": False}))


def rows_of(html: str) -> list[str]:
    return re.findall(r"<tr id=.*?</tr>", html, flags=re.S)


def test_it_renders_each_row_as_the_partial_does():
    chats = [
        chat(1),
        chat(
            2,
            status=ChatStatus.CONNECTED,
            waiting_since=None,
            attended_at=NOW - timedelta(minutes=4),
            operator_id="o1",
            operator_name="Asha Rao",
            last_message_text="Hello?",
            last_message_sender="visitor",
        ),
    ]
    assert rows_of(render(chats)) == rows_of(one_by_one(chats))
    assert rows_of(render(chats)) == rows_of(one_by_one(chats))  # and so from the cache
    assert "Visitor &lt;b&gt;1&lt;/b&gt;" in render(chats)


def test_it_reuses_a_row_while_its_chat_shows_the_same_and_sets_its_clocks_to_now():
    first = chat(1)
    html = render([first])
    assert ">5m 00s</time>" in html
    with mock.patch("django.template.base.VariableNode.render") as variable:
        # A poll that finds nothing new moves only the chat's bookkeeping.
        again = chat(1, fact_at=NOW + timedelta(seconds=20), source="webhook")
        later = render([again], at=NOW + timedelta(seconds=65))
    assert variable.call_count == 0  # not rendered again
    assert ">6m 05s</time>" in later
    assert rows_of(later)[0].replace("6m 05s", "5m 00s") == rows_of(html)[0]


def test_it_renders_a_row_again_when_its_chat_changes():
    render([chat(1)])
    changed = render([chat(1, status=ChatStatus.CONNECTED, operator_name="Bo")])
    assert 'data-status="connected"' in changed
    assert "Bo" in changed


def test_it_renders_an_operator_again_when_only_their_load_changes():
    operator = Operator(
        pk=7,
        portal_id=PORTAL,
        remote_id="o1",
        name="Asha Rao",
        status="available",
        status_since=NOW - timedelta(minutes=1),
        max_chats=4,
        department_ids=["d1"],
        fact_at=NOW,
        source="poll",
    )

    def operators(load: int) -> str:
        view = OperatorView(operator=operator, load=load, departments=["Sales"])
        with mock.patch.object(supervisor.timezone, "now", return_value=NOW):
            return render_to_string("live/parts.html#operators_body", {"operator_views": [view]})

    assert 'data-load="1"' in operators(1)
    assert 'data-load="2"' in operators(2)
    assert ">1m 00s</time>" in operators(2)


def test_it_publishes_a_row_a_poll_did_not_change_without_rendering_it_again():
    def publish(item: Chat) -> str:
        return supervisor.render_row("live/parts.html#chat_row", "chat", item, oob=True)

    first = publish(chat(1))
    assert 'hx-swap-oob="true"' in first
    with mock.patch("django.template.base.VariableNode.render") as variable:
        again = publish(chat(1, fact_at=NOW + timedelta(seconds=20)))
    assert variable.call_count == 0
    assert again.split("<time")[0] == first.split("<time")[0]
    assert 'hx-swap-oob="true"' not in render([chat(1)])  # the page's rows are kept apart


def test_it_keeps_a_connected_chats_unanswered_clock_ticking_from_the_cache():
    waiting_reply = chat(
        3,
        status=ChatStatus.CONNECTED,
        waiting_since=None,
        attended_at=NOW - timedelta(minutes=4),
        operator_id="o1",
        operator_name="Asha Rao",
        last_message_text="Still there?",
        last_message_sender="visitor",
        last_message_at=NOW - timedelta(minutes=2),
    )
    html = render([waiting_reply])
    # Unanswered for 2 minutes; no wait for pickup (that is over), and the chat open for 5.
    assert '<time data-tick="unanswered"' in html and ">2m 00s</time>" in html
    assert 'data-tick="wait"' not in html
    assert ">5m 00s</time>" in html
    with mock.patch("django.template.base.VariableNode.render") as variable:
        later = render([waiting_reply], at=NOW + timedelta(seconds=7))
    assert variable.call_count == 0  # from the cache, its clocks set to now
    assert ">2m 07s</time>" in later and ">5m 07s</time>" in later


def test_it_does_not_keep_a_row_whose_words_change_with_time():
    # "4 minutes ago" is not a clock the cache sets: such a row is rendered every time.
    partial = Engine.get_default().from_string(
        "{% load supervisor %}<p>{{ chat.started_at|ago }} · {{ chat.started_at|elapsed }}</p>"
    )
    with mock.patch.object(supervisor.timezone, "now", return_value=NOW):
        row = supervisor._render_for_cache(lambda: partial.render(Context({"chat": chat(1)})))
    assert row is None
    clock = Engine.get_default().from_string("{% load supervisor %}<p>{{ m|elapsed }}</p>")
    kept = supervisor._render_for_cache(lambda: clock.render(Context({"m": NOW})))
    assert kept.html(NOW + timedelta(seconds=61)) == "<p>1m 01s</p>"


def test_no_mark_of_a_clock_ever_leaves_the_cache():
    html = render([chat(1), chat(2, waiting_since=None)])
    html += supervisor.render_row("live/parts.html#drawer_head", "chat", chat(1), oob=True)
    assert "\x00" not in html and "clock-" not in html
    assert ">5m 00s</time>" in html
