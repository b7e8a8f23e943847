"""Facts that arrive late, early or from the future (issue 13, "Webhooks")."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from dashboard.models import Chat, ChatMessage, Operator
from dashboard.state import apply
from siq_integration.models import Portal
from siq_integration.normalised import (
    ChatStatus,
    Conversation,
    EventKind,
    Message,
    OperatorStatus,
    SenderType,
    Visitor,
    WebhookEvent,
)

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def portal():
    return Portal.objects.create(name="Zylker", data_center="us", screen_name="zylker")


def conversation(status=ChatStatus.CONNECTED, *, id="c1", message=None, modified=None):
    return Conversation(
        id=id,
        status=status,
        visitor=Visitor(id="$1", name="Zoë"),
        started_at=T0,
        operator_id="op1" if status != ChatStatus.WAITING else "",
        operator_name="Asha" if status != ChatStatus.WAITING else "",
        attended_at=at(10) if status != ChatStatus.WAITING else None,
        ended_at=at(100) if status == ChatStatus.ENDED else None,
        modified_at=modified,
        last_message=message,
    )


def event(kind, conv, when, key):
    return WebhookEvent(
        kind=kind, name=key, dedupe_key=key, occurred_at=when, conversation=conv, chat_id=conv.id
    )


def line(id, sent_at, text="Are you still there?"):
    return Message(id=id, chat_id="c1", sender_type=SenderType.VISITOR, text=text, sent_at=sent_at)


# --- 1. a message applied after its chat's end -------------------------------------------


def test_a_visitor_line_applied_after_the_chat_ended_is_stored_and_the_chat_stays_ended(portal):
    apply.apply_event(
        portal,
        event(EventKind.CHAT_CREATED, conversation(ChatStatus.WAITING), at(1), "created"),
        received_at=at(1),
    )
    apply.apply_event(
        portal,
        event(EventKind.CHAT_ENDED, conversation(ChatStatus.ENDED), at(100), "ended"),
        received_at=at(100),
    )
    # The visitor's line was sent before the end but its event is applied after it (another
    # process applying at its own pace, or SalesIQ retrying it).
    late = line("m1", at(90))
    changes = apply.apply_event(
        portal,
        event(EventKind.VISITOR_MESSAGE, conversation(message=late), at(90), "message"),
        received_at=at(101),
    )
    chat = Chat.objects.get()
    assert list(ChatMessage.objects.values_list("remote_id", "text")) == [
        ("m1", "Are you still there?")
    ]
    assert changes.messages == {ChatMessage.objects.get().pk}
    assert chat.status == "ended" and chat.ended_at == at(100) and not chat.is_open
    assert chat.last_message_text == "Are you still there?"

    # Its event again (a retry) stores it once.
    apply.apply_event(
        portal,
        event(EventKind.VISITOR_MESSAGE, conversation(message=late), at(90), "message"),
        received_at=at(102),
    )
    assert ChatMessage.objects.count() == 1


def test_a_line_newer_than_the_end_is_stored_without_reopening_the_chat(portal):
    apply.apply_event(
        portal,
        event(EventKind.CHAT_ENDED, conversation(ChatStatus.ENDED), at(100), "ended"),
        received_at=at(100),
    )
    after = line("m2", at(130), "hello?")
    apply.apply_event(
        portal,
        event(EventKind.VISITOR_MESSAGE, conversation(message=after), at(130), "message"),
        received_at=at(131),
    )
    chat = Chat.objects.get()
    assert chat.status == "ended" and not chat.awaiting_reply
    assert list(ChatMessage.objects.values_list("remote_id", flat=True)) == ["m2"]


def _ingest_figures(**faults):
    figures = {
        "connections": 8,
        "applied_per_second": 310.0,
        "accepted_per_second": 400.0,
        "lost": 0,
        "stored_twice": 0,
        "not_applied": 0,
        "chats_disagreeing_with_salesiq": 0,
        "messages_lost": 0,
    }
    return {**figures, **faults}


def _ingest_verdict(ingest) -> str:
    from bench import report

    (row,) = [row for row in report.rows({"ingest": ingest}) if "lost" in row[0]]
    return row[3]


def test_the_bench_calls_an_ingest_that_lost_visitor_lines_not_clean():
    assert _ingest_verdict(_ingest_figures()) == "yes"
    assert _ingest_verdict(_ingest_figures(messages_lost=3)) == "NO"
    # A run that does not say how many lines it lost is not called clean either.
    unsaid = _ingest_figures()
    del unsaid["messages_lost"]
    assert _ingest_verdict(unsaid) == "NO"


# --- 2. facts from the future --------------------------------------------------------------

YEAR_2100 = datetime(2100, 1, 1, tzinfo=UTC)
GHOST_AFTER = apply.GHOST_GRACE.total_seconds() + 1  # a poll late enough to close ghosts


def _recent(status, now, **extra):
    return Conversation(
        id="c1",
        status=status,
        visitor=Visitor(id="$1", name="Zoë"),
        started_at=now - timedelta(seconds=60),
        operator_id="" if status == ChatStatus.WAITING else "op1",
        operator_name="" if status == ChatStatus.WAITING else "Asha",
        attended_at=None if status == ChatStatus.WAITING else now - timedelta(seconds=30),
        ended_at=now if status == ChatStatus.ENDED else None,
        **extra,
    )


def test_an_event_dated_in_2100_does_not_freeze_its_chat_the_real_end_ends_it(portal):
    now = datetime.now(UTC)
    apply.apply_event(
        portal,
        event(EventKind.CHAT_CREATED, _recent(ChatStatus.WAITING, now), now, "created"),
        received_at=now,
    )
    arrived = now + timedelta(seconds=1)
    future = _recent(ChatStatus.CONNECTED, now, modified_at=YEAR_2100)
    apply.apply_event(
        portal,
        event(EventKind.CHAT_ATTENDER_CHANGED, future, YEAR_2100, "from-2100"),
        received_at=arrived,
    )
    chat = Chat.objects.get()
    # Applied (what it says is SalesIQ's word), dated when it arrived, not in 2100.
    assert chat.status == "connected" and chat.operator_id == "op1"
    assert chat.fact_at == arrived

    ended_at = datetime.now(UTC) + timedelta(seconds=2)
    apply.apply_event(
        portal,
        event(EventKind.CHAT_ENDED, _recent(ChatStatus.ENDED, ended_at), ended_at, "ended"),
        received_at=ended_at,
    )
    chat.refresh_from_db()
    assert chat.status == "ended" and not chat.is_open


def test_an_end_from_2100_applied_after_a_later_arrival_still_ends_the_chat(portal):
    """Two facts from 2100, each dated when it arrived: the end arrived first but is
    applied second (by a slower process, or the sweep). The end still wins."""
    now = datetime.now(UTC)
    future = _recent(ChatStatus.CONNECTED, now, modified_at=YEAR_2100)
    apply.apply_event(
        portal,
        event(EventKind.CHAT_ATTENDER_CHANGED, future, YEAR_2100, "picked-2100"),
        received_at=now,
    )
    ended = _recent(ChatStatus.ENDED, now, modified_at=YEAR_2100)
    apply.apply_event(
        portal,
        event(EventKind.CHAT_ENDED, ended, YEAR_2100, "ended-2100"),
        received_at=now - timedelta(seconds=1),
    )
    chat = Chat.objects.get()
    assert chat.status == "ended" and chat.fact_at == now  # and the date never steps back


def test_an_older_end_ends_an_open_chat_but_an_older_open_fact_changes_nothing(portal):
    now = datetime.now(UTC)
    apply.apply_conversation(
        portal, _recent(ChatStatus.CONNECTED, now), fact_at=now, source="webhook"
    )
    apply.apply_conversation(
        portal,
        _recent(ChatStatus.WAITING, now),
        fact_at=now - timedelta(seconds=5),
        source="poll",
    )
    assert Chat.objects.get().status == "connected"
    apply.apply_conversation(
        portal, _recent(ChatStatus.ENDED, now), fact_at=now - timedelta(seconds=5), source="poll"
    )
    chat = Chat.objects.get()
    assert chat.status == "ended" and chat.fact_at == now


def test_a_little_clock_skew_is_believed(portal):
    now = datetime.now(UTC)
    ahead = now + timedelta(minutes=2)  # SalesIQ's clock a little ahead of ours: as dated
    apply.apply_event(
        portal,
        event(EventKind.CHAT_CREATED, _recent(ChatStatus.WAITING, now), ahead, "created"),
        received_at=now,
    )
    assert Chat.objects.get().fact_at == ahead


def test_a_poll_that_no_longer_lists_a_chat_closes_it_despite_a_fact_from_2100(portal):
    now = datetime.now(UTC)
    apply.apply_event(
        portal,
        event(EventKind.CHAT_CREATED, _recent(ChatStatus.WAITING, now), YEAR_2100, "from-2100"),
        received_at=now,
    )
    # One stored from the future already (before this was fixed, or by an older version).
    other = _recent(ChatStatus.CONNECTED, now)
    apply.apply_conversation(portal, replace(other, id="c2"), fact_at=now, source="poll")
    Chat.objects.filter(remote_id="c2").update(fact_at=YEAR_2100)

    later = datetime.now(UTC) + timedelta(seconds=GHOST_AFTER)
    apply.apply_chats(portal, [], taken_at=later, complete=True)
    states = dict(Chat.objects.values_list("remote_id", "status"))
    assert states == {"c1": "missed", "c2": "ended"}
    assert all(chat.inferred_end for chat in Chat.objects.all())


def test_salesiq_saying_a_chat_is_closed_wins_over_a_stored_fact_from_2100(portal):
    now = datetime.now(UTC)
    apply.apply_conversation(
        portal, _recent(ChatStatus.CONNECTED, now), fact_at=now, source="webhook"
    )
    Chat.objects.update(fact_at=YEAR_2100)
    # A read of the chat (an action's answer, a poll's look-up) says it ended.
    apply.apply_conversation(portal, _recent(ChatStatus.ENDED, now), fact_at=now, source="poll")
    chat = Chat.objects.get()
    assert chat.status == "ended" and chat.fact_at == now


def test_an_operator_status_dated_in_2100_does_not_freeze_their_presence(portal):
    now = datetime.now(UTC)
    Operator.objects.create(
        portal=portal, remote_id="op1", name="Asha", status="available", fact_at=now, source="poll"
    )

    def status(value, when, key):
        return WebhookEvent(
            kind=EventKind.OPERATOR_STATUS_CHANGED,
            name=key,
            dedupe_key=key,
            occurred_at=when,
            operator_id="op1",
            operator_status=value,
        )

    apply.apply_event(portal, status(OperatorStatus.BUSY, YEAR_2100, "2100"), received_at=now)
    later = datetime.now(UTC) + timedelta(seconds=1)
    apply.apply_event(portal, status(OperatorStatus.AWAY, later, "real"), received_at=later)
    assert Operator.objects.get().status == "away"
