"""dashboard.state.apply: idempotent, safe out of order, an older fact never wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboard.models import Chat, ChatMessage, Operator, PortalSync
from dashboard.state import apply
from siq_integration.models import Portal
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
from siq_integration.normalised import (
    Department as RemoteDepartment,
)
from siq_integration.normalised import (
    Operator as RemoteOperator,
)

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def portal():
    return Portal.objects.create(name="Zylker", data_center="us", screen_name="zylker")


def conversation(
    status=ChatStatus.WAITING,
    *,
    id="466756000000969001",
    operator="",
    modified=None,
    message=None,
    rating=None,
    name="Zoë",
):
    return Conversation(
        id=id,
        status=status,
        visitor=Visitor(id="$1", name=name),
        started_at=at(0),
        operator_id=operator,
        operator_name="Asha" if operator else "",
        department_id="d1",
        department_name="Support",
        attended_at=at(10) if status == ChatStatus.CONNECTED else None,
        ended_at=at(100) if status == ChatStatus.ENDED else None,
        modified_at=modified,
        last_message=message,
        rating=rating,
    )


def event(kind, conv, when, name="x"):
    return WebhookEvent(
        kind=kind,
        name=name,
        dedupe_key=f"{name}{when}",
        occurred_at=when,
        conversation=conv,
        chat_id=conv.id,
    )


def operator(id="op1", status=OperatorStatus.AVAILABLE, modified=None, max_chats=3):
    return RemoteOperator(
        id=id,
        name="Asha",
        email="a@z.example",
        status=status,
        max_chats=max_chats,
        department_ids=("d1",),
        modified_at=modified,
    )


def test_it_creates_then_updates_a_chat_from_events(portal):
    apply.apply_event(
        portal, event(EventKind.CHAT_CREATED, conversation(), at(1)), received_at=at(1)
    )
    chat = Chat.objects.get()
    assert chat.status == "waiting" and chat.waiting_since == at(0) and chat.source == "webhook"

    picked = conversation(ChatStatus.CONNECTED, operator="op1")
    apply.apply_event(
        portal, event(EventKind.CHAT_ATTENDER_CHANGED, picked, at(12)), received_at=at(12)
    )
    chat.refresh_from_db()
    assert (chat.status, chat.operator_id, chat.waiting_since) == ("connected", "op1", None)
    assert chat.attended_at == at(10) and chat.fact_at == at(12)


def test_it_ignores_an_older_fact_that_arrives_late(portal):
    ended = conversation(ChatStatus.ENDED, operator="op1")
    apply.apply_event(portal, event(EventKind.CHAT_ENDED, ended, at(100)), received_at=at(100))
    late = conversation(ChatStatus.CONNECTED, operator="op2")
    apply.apply_event(
        portal, event(EventKind.CHAT_ATTENDER_CHANGED, late, at(50)), received_at=at(101)
    )
    chat = Chat.objects.get()
    assert chat.status == "ended" and chat.operator_id == "op1"


def test_it_never_steps_back_on_a_fact_of_the_same_millisecond(portal):
    # SalesIQ's times have millisecond resolution: a chat created and picked up within one
    # millisecond gives both events the same time, and they may arrive in either order.
    picked = conversation(ChatStatus.CONNECTED, operator="op1")
    apply.apply_event(
        portal, event(EventKind.CHAT_ATTENDER_CHANGED, picked, at(5), "b"), received_at=at(5)
    )
    apply.apply_event(
        portal, event(EventKind.CHAT_CREATED, conversation(), at(5)), received_at=at(5)
    )
    chat = Chat.objects.get()
    assert (chat.status, chat.operator_id) == ("connected", "op1")
    # Later news still lands, and a later fact may of course say "waiting" again.
    again = conversation(ChatStatus.WAITING)
    apply.apply_event(portal, event(EventKind.CHAT_CREATED, again, at(6), "c"), received_at=at(6))
    chat.refresh_from_db()
    assert (chat.status, chat.operator_id) == ("waiting", "")


def test_it_is_idempotent(portal):
    first = apply.apply_event(
        portal, event(EventKind.CHAT_CREATED, conversation(), at(1)), received_at=at(1)
    )
    again = apply.apply_event(
        portal, event(EventKind.CHAT_CREATED, conversation(), at(1)), received_at=at(2)
    )
    assert Chat.objects.count() == 1
    assert first.chats == {Chat.objects.get().pk}
    assert again.chats == set()  # the same facts again: nothing a page shows changed
    assert Chat.objects.get().fact_at == at(1)


def test_it_never_reopens_a_chat_salesiq_ended(portal):
    apply.apply_event(
        portal,
        event(EventKind.CHAT_ENDED, conversation(ChatStatus.ENDED), at(100)),
        received_at=at(100),
    )
    # A poll that started earlier but finished later lists it open: SalesIQ said it ended.
    apply.apply_chats(
        portal,
        [conversation(ChatStatus.CONNECTED, operator="op1")],
        taken_at=at(200),
        complete=True,
    )
    assert Chat.objects.get().status == "ended"


def test_it_closes_ghosts_only_when_nothing_newer_vouches_for_them(portal):
    apply.apply_chats(
        portal,
        [conversation(id="1"), conversation(ChatStatus.CONNECTED, id="2", operator="op1")],
        taken_at=at(0),
        complete=True,
    )
    # A chat a webhook announced just before the next poll's list was made.
    apply.apply_event(
        portal, event(EventKind.CHAT_CREATED, conversation(id="3"), at(55)), received_at=at(55)
    )
    apply.apply_chats(portal, [], taken_at=at(60), complete=True)
    states = dict(Chat.objects.values_list("remote_id", "status"))
    assert states == {"1": "missed", "2": "ended", "3": "waiting"}
    assert Chat.objects.get(remote_id="2").inferred_end
    assert PortalSync.objects.get(portal=portal).chats_polled_at == at(60)


def test_it_reopens_a_chat_it_only_guessed_had_ended(portal):
    apply.apply_chats(portal, [conversation(id="1")], taken_at=at(0), complete=True)
    apply.apply_chats(portal, [], taken_at=at(60), complete=True)  # missing once: a lagging list
    apply.apply_chats(portal, [conversation(id="1")], taken_at=at(90), complete=True)
    chat = Chat.objects.get()
    assert chat.status == "waiting" and not chat.inferred_end and chat.ended_at is None


def test_it_uses_salesiqs_modified_time_for_polled_chats(portal):
    apply.apply_event(
        portal,
        event(
            EventKind.CHAT_ATTENDER_CHANGED,
            conversation(ChatStatus.CONNECTED, operator="op2"),
            at(30),
        ),
        received_at=at(30),
    )
    stale_item = conversation(ChatStatus.CONNECTED, operator="op1", modified=at(20))
    apply.apply_chats(portal, [stale_item], taken_at=at(40), complete=False)
    assert Chat.objects.get().operator_id == "op2"


def test_it_keeps_the_newest_last_message_and_stores_the_lines(portal):
    newer = Message(
        id="m2", chat_id="1", sender_type=SenderType.OPERATOR, text="Hi!", sent_at=at(20)
    )
    older = Message(
        id="m1", chat_id="1", sender_type=SenderType.VISITOR, text="Hello?", sent_at=at(15)
    )
    apply.apply_event(
        portal,
        event(
            EventKind.OPERATOR_MESSAGE,
            conversation(ChatStatus.CONNECTED, operator="op1", message=newer),
            at(20),
        ),
        received_at=at(20),
    )
    apply.apply_event(
        portal,
        event(
            EventKind.VISITOR_MESSAGE,
            conversation(ChatStatus.CONNECTED, operator="op1", message=older),
            at(15),
        ),
        received_at=at(21),
    )
    chat = Chat.objects.get()
    assert (chat.last_message_text, chat.last_message_sender) == ("Hi!", "operator")
    assert not chat.awaiting_reply
    assert list(ChatMessage.objects.values_list("remote_id", flat=True)) == ["m1", "m2"]


def test_it_lands_a_rating_after_the_end(portal):
    apply.apply_event(
        portal,
        event(EventKind.CHAT_ENDED, conversation(ChatStatus.ENDED), at(100)),
        received_at=at(100),
    )
    apply.apply_event(
        portal,
        event(EventKind.CHAT_RATED, conversation(ChatStatus.ENDED, rating=2), at(90)),
        received_at=at(110),
    )
    assert Chat.objects.get().rating == 2


def test_it_tells_which_operators_load_changed(portal):
    apply.apply_operators(
        portal, OperatorSync([operator("op1"), operator("op2")], "s1", True), taken_at=at(0)
    )
    apply.apply_chats(
        portal, [conversation(ChatStatus.CONNECTED, operator="op1")], taken_at=at(1), complete=True
    )
    moved = apply.apply_event(
        portal,
        event(
            EventKind.TRANSFER_ACCEPTED, conversation(ChatStatus.CONNECTED, operator="op2"), at(5)
        ),
        received_at=at(5),
    )
    assert moved.operators == set(Operator.objects.values_list("pk", flat=True))


def test_it_tracks_time_in_status_and_ignores_older_presence(portal):
    apply.apply_operators(
        portal, OperatorSync([operator(modified=at(0))], "s1", True), taken_at=at(0)
    )
    op = Operator.objects.get()
    assert op.status == "available" and op.status_since is None  # never seen it change
    apply.apply_operators(
        portal,
        OperatorSync([operator(status=OperatorStatus.BUSY, modified=at(30))], "s2", False),
        taken_at=at(31),
    )
    apply.apply_operators(
        portal,
        OperatorSync([operator(status=OperatorStatus.BUSY, modified=at(40))], "s3", False),
        taken_at=at(41),
    )
    apply.apply_operators(
        portal,
        OperatorSync([operator(status=OperatorStatus.AVAILABLE, modified=at(10))], "s4", False),
        taken_at=at(42),
    )
    op.refresh_from_db()
    assert op.status == "busy" and op.status_since == at(30)
    assert PortalSync.objects.get(portal=portal).operators_sync_time == "s4"


def test_it_removes_operators_only_on_a_complete_list(portal):
    apply.apply_operators(
        portal, OperatorSync([operator("op1"), operator("op2")], None, True), taken_at=at(0)
    )
    apply.apply_operators(portal, OperatorSync([operator("op1")], None, False), taken_at=at(1))
    assert Operator.objects.count() == 2
    changes = apply.apply_operators(
        portal, OperatorSync([operator("op1")], None, True), taken_at=at(2)
    )
    assert list(Operator.objects.values_list("remote_id", flat=True)) == ["op1"]
    assert len(changes.removed_operators) == 1


def test_it_applies_reference_presence_and_lone_messages(portal):
    apply.apply_operators(portal, OperatorSync([operator("op1")], None, True), taken_at=at(0))
    presence = WebhookEvent(
        kind=EventKind.OPERATOR_STATUS_CHANGED,
        name="operator.status_changed",
        dedupe_key="p",
        occurred_at=at(5),
        operator_id="op1",
        operator_status=OperatorStatus.AWAY,
    )
    apply.apply_event(portal, presence, received_at=at(5))
    op = Operator.objects.get()
    assert op.status == "away" and op.status_since == at(5) and op.source == "webhook"

    apply.apply_chats(
        portal,
        [conversation(ChatStatus.CONNECTED, id="c1", operator="op1")],
        taken_at=at(6),
        complete=True,
    )
    line = Message(
        id="m9",
        chat_id="c1",
        sender_type=SenderType.VISITOR,
        text="<b>still there?</b>",
        sent_at=at(8),
    )
    apply.apply_event(
        portal,
        WebhookEvent(
            kind=EventKind.VISITOR_MESSAGE,
            name="message.received",
            dedupe_key="m",
            occurred_at=at(8),
            chat_id="c1",
            message=line,
        ),
        received_at=at(8),
    )
    chat = Chat.objects.get()
    assert chat.awaiting_reply and chat.last_message_text == "<b>still there?</b>"


def test_it_makes_up_no_pickup_time_for_a_chat_first_seen_connected(portal):
    connected = Conversation(
        id="c1",
        status=ChatStatus.CONNECTED,
        visitor=Visitor(id="v"),
        started_at=at(0),
        operator_id="op1",
        department_id="d1",
    )
    apply.apply_chats(portal, [connected], taken_at=at(300), complete=True)
    assert Chat.objects.get().attended_at is None  # the reference dialect gives none

    apply.apply_chats(portal, [conversation(id="c2")], taken_at=at(310), complete=False)
    picked = Conversation(
        id="c2",
        status=ChatStatus.CONNECTED,
        visitor=Visitor(id="v"),
        started_at=at(0),
        operator_id="op1",
    )
    apply.apply_chats(portal, [picked], taken_at=at(330), complete=False)
    assert Chat.objects.get(remote_id="c2").attended_at == at(330)  # seen waiting, then picked up


def test_it_names_operators_and_departments_the_chat_only_gives_ids_for(portal):
    apply.apply_departments(portal, [RemoteDepartment(id="d1", name="Support")], taken_at=at(0))
    apply.apply_operators(portal, OperatorSync([operator("op1")], None, True), taken_at=at(0))
    bare = Conversation(
        id="c1",
        status=ChatStatus.CONNECTED,
        visitor=Visitor(id="v"),
        started_at=at(0),
        operator_id="op1",
        department_id="d1",
    )
    apply.apply_chats(portal, [bare], taken_at=at(5), complete=True)
    chat = Chat.objects.get()
    assert (chat.operator_name, chat.department_name) == ("Asha", "Support")


def test_a_poll_publishes_only_the_chats_it_found_changed(portal, django_assert_max_num_queries):
    ids = [f"46675600000097{n:04d}" for n in range(30)]
    apply.apply_chats(
        portal, [conversation(id=chat_id) for chat_id in ids], taken_at=at(50), complete=True
    )
    picked_up = conversation(ChatStatus.CONNECTED, id=ids[7], operator="op1")
    again = [conversation(id=chat_id) for chat_id in ids]
    again[7] = picked_up

    # One read of the open chats, not one per listed chat; the one chat picked up is counted
    # into the service figures (dashboard/figures/counting.py: a few rows, whatever the list).
    with django_assert_max_num_queries(len(ids) + 15 + 10):
        changes = apply.apply_chats(portal, again, taken_at=at(60), complete=True)

    assert changes.chats == {Chat.objects.get(remote_id=ids[7]).pk}  # only what changed
    assert changes.meta  # the freshness still goes out
    # Every listed chat is vouched for by the newer poll (ghost detection reads fact_at).
    assert set(Chat.objects.values_list("fact_at", flat=True)) == {at(60)}


def test_an_operators_poll_publishes_only_the_operators_it_found_changed(
    portal, django_assert_max_num_queries
):
    ids = [f"op{n}" for n in range(20)]
    apply.apply_operators(
        portal, OperatorSync([operator(i) for i in ids], "s1", True), taken_at=at(0)
    )
    listed = [operator(i) for i in ids]
    listed[3] = operator(ids[3], status=OperatorStatus.BUSY)

    # One read of them all, not one each; the one whose status changed has its time in the
    # status it left counted (dashboard/figures/counting.py: a few rows, whatever the list).
    with django_assert_max_num_queries(len(ids) + 12 + 6):
        changes = apply.apply_operators(portal, OperatorSync(listed, "s2", True), taken_at=at(30))

    assert changes.operators == {Operator.objects.get(remote_id=ids[3]).pk}
    assert Operator.objects.get(remote_id=ids[3]).status == "busy"
    assert set(Operator.objects.values_list("fact_at", flat=True)) == {at(30)}
