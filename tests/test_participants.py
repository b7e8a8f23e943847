"""Who else is in a chat, and lines edited or deleted (issue 16): SalesIQ's v2 events
conversation.supervisor.added, .participants.added / .deleted, .message.edited / .deleted,
parsed at the boundary, applied once whatever their order, rendered for the drawer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from dashboard.models import Chat, ChatMessage, ChatParticipant, Operator
from dashboard.realtime.render import render_changes
from dashboard.state import apply
from siq_integration import exceptions as exc
from siq_integration import webhooks
from siq_integration.normalised import (
    ChatStatus,
    Conversation,
    EventKind,
    Message,
    ParticipantRole,
    SenderType,
    Visitor,
)

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
BIG_ID = "466756000000969001"  # above 2**53: kept as a string
CHAT = "466756000000970001"
ANA = "466756000000000301"
BO = "466756000000000302"


def ms(seconds: float) -> str:
    return str(int((T0 + timedelta(seconds=seconds)).timestamp() * 1000))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def document(name: str, entity_extra: dict, *, when: float | None = 60, chat=CHAT) -> dict:
    entity = {"id": chat, "status": "connected", "last_modified_time": ms(50)}
    entity.update(entity_extra)
    body = {
        "entity_type": "conversation",
        "org_id": "1",
        "event": name,
        "entity_id": chat,
        "attempt": 1,
        "version": "1",
        "entity": entity,
    }
    if when is not None:
        body["event_time"] = ms(when)
    return body


def parse(body: dict):
    return webhooks.parse("v2", json.dumps(body).encode())


def person(id=ANA, name="Ana Lima", email="ana@zylker.example", **extra) -> dict:
    return {"id": id, "name": name, "email_id": email, **extra}


def line(text="Hi Zoë, how can I help?", *, seq="3", **extra) -> dict:
    return {
        "id": "466756000000990003",
        "sequence_id": seq,
        "sender": {"id": "466756000000000201", "name": "Sam", "type": "operator"},
        "type": "text",
        "message": {"text": text},
        "time": ms(20),
        **extra,
    }


def supervisor_joined(when=60, **extra):
    return document("conversation.supervisor.added", {"supervisor": person(**extra)}, when=when)


def added(who=None, when=60):
    return document(
        "conversation.participants.added", {"participants": [who or person(BO, "Bo")]}, when=when
    )


def removed(who=None, when=90):
    return document(
        "conversation.participants.deleted", {"participants": [who or person(BO, "Bo")]}, when=when
    )


def edited(text="Hi Zoë, how may I help?", when=70):
    return document(
        "conversation.message.edited", {"message": line(text, edited_time=ms(when))}, when=when
    )


def deleted(when=80):
    return document(
        "conversation.message.deleted", {"message": line("", deleted_time=ms(when))}, when=when
    )


# --- parsing ----------------------------------------------------------------------------


def test_it_parses_a_supervisor_joining():
    event = parse(supervisor_joined())
    assert event.kind is EventKind.SUPERVISOR_JOINED
    assert event.chat_id == CHAT and event.conversation is None
    (ana,) = event.participants
    assert (ana.id, ana.name, ana.email, ana.role) == (
        ANA,
        "Ana Lima",
        "ana@zylker.example",
        ParticipantRole.SUPERVISOR,
    )
    assert event.occurred_at == at(60)


def test_it_parses_participants_added_and_removed_with_their_roles():
    event = parse(
        document(
            "conversation.participants.added",
            {"participants": [person(BO, "Bo"), person(ANA, type="supervisor")]},
        )
    )
    assert event.kind is EventKind.PARTICIPANTS_ADDED
    assert [(p.id, p.role) for p in event.participants] == [
        (BO, ParticipantRole.OPERATOR),
        (ANA, ParticipantRole.SUPERVISOR),
    ]
    gone = parse(removed())
    assert gone.kind is EventKind.PARTICIPANTS_REMOVED
    assert [p.id for p in gone.participants] == [BO]
    assert gone.occurred_at == at(90)


def test_it_parses_an_edited_and_a_deleted_line():
    event = parse(edited())
    assert event.kind is EventKind.MESSAGE_EDITED
    change = event.message_change
    assert (change.message_id, change.text, change.deleted) == (
        "3",
        "Hi Zoë, how may I help?",
        False,
    )
    assert change.sender_type is SenderType.OPERATOR and change.sent_at == at(20)
    assert event.message is None  # not a new line: nothing stores it as one
    gone = parse(deleted())
    assert gone.kind is EventKind.MESSAGE_DELETED
    assert (gone.message_change.message_id, gone.message_change.deleted) == ("3", True)
    assert gone.message_change.text == ""


def test_without_an_event_time_the_change_is_dated_by_its_own_time():
    body = edited(when=70)
    del body["event_time"]
    assert parse(body).occurred_at == at(70)


@pytest.mark.parametrize(
    "body, words",
    [
        (document("conversation.supervisor.added", {}), "who joined or left"),
        (document("conversation.participants.added", {"participants": [{"name": "x"}]}), "who"),
        (document("conversation.participants.deleted", {"participants": "Bo"}), "who"),
        (document("conversation.message.edited", {}), "which message"),
        (document("conversation.message.deleted", {"message": {"text": "x"}}), "which message"),
        (document("conversation.message.edited", {}, chat=""), "which chat"),
    ],
)
def test_a_malformed_change_is_refused_with_a_sentence(body, words):
    with pytest.raises(exc.MalformedPayload) as raised:
        parse(body)
    assert words in raised.value.user_message
    assert raised.value.user_message.endswith(".")


def test_a_float_id_is_refused_not_rounded():
    body = added(who={"id": 4.667560000000003e17, "name": "Bo"})
    with pytest.raises(exc.MalformedPayload):
        parse(body)


# --- applying ---------------------------------------------------------------------------


@pytest.fixture
def chat(db):
    from siq_integration.models import Portal

    portal = Portal.objects.create(name="Zylker", data_center="us", screen_name="zylker")
    conversation = Conversation(
        id=CHAT,
        status=ChatStatus.CONNECTED,
        visitor=Visitor(id="$1", name="Zoë"),
        started_at=T0,
        operator_id="466756000000000201",
        operator_name="Sam",
        attended_at=at(10),
        last_message=Message(
            id="3",
            chat_id=CHAT,
            sender_type=SenderType.OPERATOR,
            sender_id="466756000000000201",
            sender_name="Sam",
            text="Hi Zoë, how can I help?",
            sent_at=at(20),
        ),
    )
    apply.apply_conversation(portal, conversation, fact_at=at(20), source="webhook")
    return Chat.objects.get(remote_id=CHAT)


def apply_all(chat, *bodies):
    changes = []
    for body in bodies:
        changes.append(apply.apply_event(chat.portal, parse(body), received_at=at(100)))
    return changes


def people(chat):
    return [
        (p.remote_id, p.role, p.left_at is None)
        for p in ChatParticipant.objects.filter(chat=chat).order_by("remote_id")
    ]


def test_a_supervisor_who_joins_is_in_the_chat_once_however_often_told(chat):
    first, again = apply_all(chat, supervisor_joined(), supervisor_joined())
    assert people(chat) == [(ANA, "supervisor", True)]
    assert first.participants == {chat.pk}
    assert not again.participants  # the same fact twice changes nothing


def test_a_known_operator_is_named_as_every_screen_names_them(chat):
    Operator.objects.create(
        portal=chat.portal,
        remote_id=ANA,
        name="Ana Lima",
        display_name="Ana Lima (ana.l)",
        status="available",
        fact_at=T0,
    )
    apply_all(chat, supervisor_joined(name="Ana"))
    assert ChatParticipant.objects.get(chat=chat).name == "Ana Lima (ana.l)"


def test_someone_who_left_is_no_longer_in_the_chat(chat):
    apply_all(chat, added(when=60), removed(when=90))
    assert people(chat) == [(BO, "operator", False)]


def test_a_join_that_arrives_after_the_leave_it_preceded_changes_nothing(chat):
    _, late = apply_all(chat, removed(when=90), added(when=60))
    assert people(chat) == [(BO, "operator", False)]
    assert not late.participants


def test_someone_who_comes_back_is_in_the_chat_again(chat):
    apply_all(chat, added(when=60), removed(when=90), added(when=95))
    assert people(chat) == [(BO, "operator", True)]
    assert ChatParticipant.objects.get(chat=chat).joined_at == at(95)


def test_a_participant_event_for_a_chat_never_seen_changes_nothing(chat):
    other = document("conversation.supervisor.added", {"supervisor": person()}, chat="999")
    (changes,) = apply_all(chat, other)
    assert not ChatParticipant.objects.exists() and not changes.participants


def transcript(chat):
    return list(
        ChatMessage.objects.filter(chat=chat).values_list(
            "remote_id", "text", "original_text", "edited_at", "deleted_at"
        )
    )


def test_an_edited_line_keeps_the_new_text_and_the_old_one_once_however_often_told(chat):
    first, again = apply_all(chat, edited(), edited())
    assert transcript(chat) == [
        ("3", "Hi Zoë, how may I help?", "Hi Zoë, how can I help?", at(70), None)
    ]
    line_pk = ChatMessage.objects.get(chat=chat).pk
    assert first.changed_messages == {line_pk} and not again.changed_messages
    chat.refresh_from_db()
    assert chat.last_message_text == "Hi Zoë, how may I help?"  # the row's preview follows


def test_of_two_edits_the_newer_wins_whatever_their_order(chat):
    apply_all(chat, edited("Second", when=75), edited("First", when=70))
    assert transcript(chat)[0][:3] == ("3", "Second", "Hi Zoë, how can I help?")


def test_a_deleted_line_loses_its_text_and_a_late_edit_does_not_bring_it_back(chat):
    apply_all(chat, edited(when=70), deleted(when=80), edited("Back?", when=75))
    assert transcript(chat) == [("3", "", "", at(70), at(80))]
    chat.refresh_from_db()
    assert chat.last_message_text == apply.DELETED_LINE


def test_a_change_before_its_line_is_kept_and_the_line_arriving_later_does_not_undo_it(chat):
    late_line = line("Are you there?", seq="4")
    body = document(
        "conversation.message.deleted",
        {"message": {**late_line, "deleted_time": ms(80)}},
        when=80,
    )
    (changes,) = apply_all(chat, body)
    stored = ChatMessage.objects.get(chat=chat, remote_id="4")
    assert (stored.text, stored.deleted_at, stored.sender_type) == ("", at(80), "operator")
    assert changes.messages == {stored.pk}  # a new line for the drawers: shown as deleted
    # The line's own event, late: the unique line stays deleted.
    replied = Message(
        id="4",
        chat_id=CHAT,
        sender_type=SenderType.OPERATOR,
        sender_id="466756000000000201",
        text="Are you there?",
        sent_at=at(40),
    )
    apply.apply_transcript(chat, [replied], fetched_at=at(100))
    stored.refresh_from_db()
    assert (stored.text, stored.deleted_at) == ("", at(80))


# --- rendering for the drawer -----------------------------------------------------------


def test_the_drawer_update_names_who_else_is_in_the_chat(chat):
    (changes,) = apply_all(
        chat,
        document(
            "conversation.participants.added",
            {"participants": [person(ANA, "Ana", type="supervisor"), person(BO, "Bo <b>")]},
        ),
    )
    html = render_changes(changes)
    assert f'id="drawer-people-{chat.pk}"' in html
    assert "Also in this chat:" in html and "Ana</span>" not in html
    assert "Ana (supervisor)" in html and "Bo &lt;b&gt;" in html and "<b>" not in html


def test_the_drawer_update_leaves_out_the_chats_own_operator_and_who_left(chat):
    (changes,) = apply_all(chat, added(person("466756000000000201", "Sam")))
    html = render_changes(changes)
    assert f'id="drawer-people-{chat.pk}"' in html and "Sam" not in html.split("drawer-people")[1]
    apply_all(chat, added(when=60))
    (changes,) = apply_all(chat, removed(when=90))
    piece = render_changes(changes).split(f'id="drawer-people-{chat.pk}"')[1].split("</p>")[0]
    assert "Bo" not in piece and "hidden" in piece


def test_the_drawer_update_swaps_an_edited_line_and_shows_a_deleted_one_without_its_text(chat):
    (changes,) = apply_all(chat, edited())
    line_pk = ChatMessage.objects.get(chat=chat).pk
    html = render_changes(changes)
    assert f'<li id="msg-{line_pk}"' in html and 'hx-swap-oob="true"' in html
    assert "Hi Zoë, how may I help?" in html and ">edited<" in html
    assert 'title="Before the edit: Hi Zoë, how can I help?"' in html
    (changes,) = apply_all(chat, deleted())
    html = render_changes(changes)
    assert (
        "Message deleted" in html and "how may I help" not in html and "how can I help" not in html
    )


def test_when_an_invited_operator_takes_the_chat_over_the_drawer_lists_them_no_more(chat):
    apply_all(chat, added(person(BO, "Bo")))
    taken = document("conversation.attender.updated", {"attender": {"id": BO, "name": "Bo"}})
    event = parse(taken)
    changes = apply.apply_event(chat.portal, event, received_at=at(100))
    assert Chat.objects.get(pk=chat.pk).operator_id == BO
    assert changes.participants == {chat.pk}
    piece = render_changes(changes).split(f'id="drawer-people-{chat.pk}"')[1].split("</p>")[0]
    assert "Bo" not in piece and "hidden" in piece
