"""The one place the live state changes.

Webhook events and poll snapshots arrive here in the normalised form of
``siq_integration``. Applying is idempotent and safe out of order: every chat and
operator remembers the time of the newest fact applied (``fact_at``) and an older
fact never overwrites it. What changed is recorded (state/changes.py) inside the
transaction that changed it; the publisher sends it after that transaction commits, so no
browser ever sees state that was rolled back. Nothing here renders or sends.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from siq_integration.models import Portal
from siq_integration.normalised import ChatStatus as RemoteChatStatus
from siq_integration.normalised import (
    Conversation,
    EventKind,
    Message,
    OperatorSync,
    ParticipantRole,
    WebhookEvent,
)
from siq_integration.normalised import (
    Department as RemoteDepartment,
)
from siq_integration.normalised import (
    Operator as RemoteOperator,
)

from ..figures import counting
from ..models import (
    OPEN_CHAT_STATUSES,
    Chat,
    ChatMessage,
    ChatParticipant,
    ChatStatus,
    Department,
    Operator,
    OperatorStatus,
    PortalSync,
    Source,
)
from .changes import Changes, record

logger = logging.getLogger(__name__)

# How far along its life a chat is: waiting, then connected, then over.
_STAGE = {ChatStatus.WAITING: 0, ChatStatus.CONNECTED: 1, ChatStatus.ENDED: 2, ChatStatus.MISSED: 2}

# A chat missing from a complete poll is closed only when nothing newer than this
# margin before the poll vouches for it (SalesIQ's lists may lag a new chat a little).
GHOST_GRACE = timedelta(seconds=30)

# A fact dated further ahead of our clock than this is not believed as dated: SalesIQ's
# clock and ours may differ by seconds, not years. Such a fact is still applied (its status,
# message, rating are what SalesIQ said), dated when it reached us instead; a time stored
# from the future before (or by an older version) counts as older than any fact.
FUTURE_ALLOWANCE = timedelta(minutes=5)
_LONG_AGO = datetime.min.replace(tzinfo=UTC)

_CHAT_STATUS = {
    RemoteChatStatus.WAITING: ChatStatus.WAITING,
    RemoteChatStatus.CONNECTED: ChatStatus.CONNECTED,
    RemoteChatStatus.ENDED: ChatStatus.ENDED,
    RemoteChatStatus.MISSED: ChatStatus.MISSED,
}


# The columns that applying may change (attnames; not the key, not ``updated_at``).
_FIELDS = {
    model: tuple(
        field.attname
        for field in model._meta.concrete_fields
        if not field.primary_key and field.name != "updated_at"
    )
    for model in (Chat, Operator)
}


# Namespace of this module's PostgreSQL advisory locks (the first of their two keys).
_APPLY_LOCK_SPACE = 0x5149  # "QI"


@contextlib.contextmanager
def _applying(portal_id: Any) -> Iterator[None]:
    """A transaction that applies facts to one portal's state, one at a time across
    processes.

    Applying reads a row, compares the facts' times and writes. SQLite runs one write
    transaction at a time (BEGIN IMMEDIATE); PostgreSQL lets two processes (two web
    servers applying webhooks, a worker's poll) read the same old row at once: an older
    fact could then overwrite a newer one, and two creations of the same new chat would
    make one of them fail on the unique constraint. A transaction-scoped advisory lock
    per portal keeps what SQLite gave; other portals never wait for it.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                    [_APPLY_LOCK_SPACE, str(portal_id)],
                )
        yield


def _settle(changes: Changes) -> None:
    """What was applied is marked for counting into the service figures (in the same
    transaction) and recorded for the publisher. Neither the counting nor the queue rows it
    changes wait for it: the worker's ``queues`` job counts the marked chats and publishes
    the departments and operators whose figures changed, once a second at most
    (``count_pending``, dashboard/figures/clock.py), whatever the rate of events."""
    counting.count(changes)
    record(changes)


def count_pending(portal_id: Any) -> tuple[set[str], set[int]]:
    """Count the portal's chats applied since their last count, under the applying lock (a
    chat applied meanwhile waits, so none is counted from a state already gone): the
    departments whose figures changed and the operators (database ids) whose figures did."""
    departments: set[str] = set()
    operators: set[int] = set()
    # Looked for before taking the lock (a read takes none): nothing marked, no lock taken.
    more = Chat.objects.filter(portal_id=portal_id, needs_counting=True).exists()
    while more:
        with _applying(portal_id):
            touched, moved, more = counting.count_marked(portal_id)
        departments |= touched
        operators |= moved
    return departments, operators


# --- facts from the future ----------------------------------------------------------------


def _from_the_future(when: datetime | None, now: datetime) -> bool:
    return when is not None and when > now + FUTURE_ALLOWANCE


def _believable(when: datetime | None, *, now: datetime, instead: datetime) -> datetime | None:
    """``when``, or ``instead`` when it lies further in the future than the allowance."""
    return instead if _from_the_future(when, now) else when


def _standing(stored: datetime | None, now: datetime) -> datetime | None:
    """A stored time as a newer fact is weighed against: one from the future (beyond the
    allowance) weighs less than any, so it can freeze nothing."""
    return _LONG_AGO if _from_the_future(stored, now) else stored


def _believable_message(message: Message | None, *, now: datetime, instead: datetime):
    if message is None or not _from_the_future(message.sent_at, now):
        return message
    return replace(message, sent_at=instead)


_CONVERSATION_TIMES = ("started_at", "attended_at", "ended_at", "modified_at")


def _believable_conversation(
    conversation: Conversation, *, now: datetime, instead: datetime
) -> Conversation:
    changed: dict[str, Any] = {
        name: instead
        for name in _CONVERSATION_TIMES
        if _from_the_future(getattr(conversation, name), now)
    }
    message = _believable_message(conversation.last_message, now=now, instead=instead)
    if message is not conversation.last_message:
        changed["last_message"] = message
    return replace(conversation, **changed) if changed else conversation


def _believable_event(event: WebhookEvent, *, now: datetime, instead: datetime) -> WebhookEvent:
    changed: dict[str, Any] = {}
    if _from_the_future(event.occurred_at, now):
        changed["occurred_at"] = instead
    if event.conversation is not None:
        conversation = _believable_conversation(event.conversation, now=now, instead=instead)
        if conversation is not event.conversation:
            changed["conversation"] = conversation
    message = _believable_message(event.message, now=now, instead=instead)
    if message is not event.message:
        changed["message"] = message
    if event.operator is not None and _from_the_future(event.operator.modified_at, now):
        changed["operator"] = replace(event.operator, modified_at=instead)
    return replace(event, **changed) if changed else event


# --- chats --------------------------------------------------------------------------------


def _operator_pks(portal: Portal, remote_ids: Iterable[str]) -> set[int]:
    ids = {remote for remote in remote_ids if remote}
    if not ids:
        return set()
    return set(
        Operator.objects.filter(portal=portal, remote_id__in=ids).values_list("pk", flat=True)
    )


def _set_last_message(chat: Chat, message: Message | None) -> bool:
    if message is None or not (message.text or message.id):
        return False
    when = message.sent_at
    shown_at = _standing(chat.last_message_at, timezone.now())
    if shown_at and when and when < shown_at:
        return False  # an older message arrived late
    chat.last_message_text = message.text[:2000]
    chat.last_message_at = when or chat.last_message_at
    chat.last_message_sender = str(message.sender_type)
    _note_first_response(chat, message)
    return True


def _note_first_response(chat: Chat, message: Message) -> bool:
    """The operator's first line after the pickup (the first response time's end)."""
    if (
        str(message.sender_type) != "operator"
        or chat.first_response_at is not None
        or chat.attended_at is None
        or message.sent_at is None
        or message.sent_at < chat.attended_at
    ):
        return False
    chat.first_response_at = message.sent_at
    return True


def _store_message(chat: Chat, message: Message | None, changes: Changes) -> None:
    if message is None or not message.id:
        return
    sender_name = message.sender_name
    if message.sender_id and message.sender_id == chat.operator_id and chat.operator_name:
        # The chat's own operator: by the name every screen shows for them (SalesIQ may
        # give a first name several operators share).
        sender_name = chat.operator_name
    stored = ChatMessage(
        chat=chat,
        remote_id=message.id,
        sender_type=str(message.sender_type),
        sender_name=sender_name[:200],
        text=message.text,
        sent_at=message.sent_at,
    )
    try:
        # Mostly a new message: insert, and let the unique constraint say when it was not
        # (one statement instead of a look-up first).
        with transaction.atomic():
            stored.save(force_insert=True)
    except IntegrityError:
        return
    changes.messages.add(stored.pk)
    if _note_first_response(chat, message):
        Chat.objects.filter(pk=chat.pk, first_response_at__isnull=True).update(
            first_response_at=chat.first_response_at
        )
        changes.chats.add(chat.pk)


def _merge(chat: Chat, conversation: Conversation, fact_at: datetime) -> None:
    """Copy what ``conversation`` knows onto ``chat``; blanks never erase what we know."""
    status = _CHAT_STATUS[conversation.status]
    was_open = chat.is_open if chat.pk else None
    was_waiting = bool(chat.pk) and chat.status == ChatStatus.WAITING
    chat.status = status
    visitor = conversation.visitor
    for name, value in (
        ("visitor_id", visitor.id),
        ("visitor_name", visitor.name[:200]),
        ("visitor_email", visitor.email[:254]),
        ("question", conversation.question),
        ("department_id", conversation.department_id),
        ("department_name", conversation.department_name[:200]),
    ):
        if value:
            setattr(chat, name, value)
    if visitor.details:
        chat.visitor_details = {**chat.visitor_details, **visitor.details}
    chat.started_at = conversation.started_at or chat.started_at or fact_at
    if status == ChatStatus.WAITING:
        chat.operator_id = ""
        chat.operator_name = ""
        chat.waiting_since = chat.waiting_since or chat.started_at
        if chat.started_at and chat.waiting_since < chat.started_at:
            chat.waiting_since = chat.started_at  # nobody waits before the chat began
    else:
        chat.waiting_since = None
        if conversation.operator_id:
            chat.operator_id = conversation.operator_id
            chat.operator_name = conversation.operator_name[:200] or chat.operator_name
    if conversation.attended_at:
        chat.attended_at = conversation.attended_at
    elif status == ChatStatus.CONNECTED and was_waiting:
        # Seen waiting, now connected: the pickup happened about now. A chat first seen
        # connected keeps no pickup time (the reference dialect has none): no made-up waits.
        chat.attended_at = chat.attended_at or fact_at
    if (chat.attended_at or status == ChatStatus.CONNECTED) and not chat.served_department_id:
        # Picked up: it counts in the department it was in then (dashboard/figures/).
        chat.served_department_id = chat.department_id
    if status in (ChatStatus.ENDED, ChatStatus.MISSED):
        chat.ended_at = conversation.ended_at or chat.ended_at or fact_at
        chat.inferred_end = False
    elif was_open is False:
        chat.ended_at = None  # reopened after an inferred end
        chat.inferred_end = False
    if conversation.rating is not None:
        chat.rating = conversation.rating
    if conversation.feedback:
        chat.feedback = conversation.feedback
    if conversation.transfer is not None:
        chat.transfer_status = conversation.transfer.status[:16]
        chat.transfer_to = (
            conversation.transfer.to_operator_name or conversation.transfer.to_department_name
        )[:200]
    _set_last_message(chat, conversation.last_message)


def _shown_operator_name(
    portal: Portal, remote_id: str, names: dict[str, str] | None = None
) -> str:
    """The display name of the portal's operator ``remote_id`` ("" when unknown);
    ``names``: every operator's, read already (a poll reads them in one query)."""
    if not remote_id:
        return ""
    if names is not None:
        return names.get(remote_id, "")
    shown = (
        Operator.objects.filter(portal=portal, remote_id=remote_id)
        .values_list("display_name", "name")
        .first()
    )
    return (shown[0] or shown[1]) if shown else ""


def _name_operator(
    portal: Portal,
    chat: Chat,
    conversation: Conversation,
    *,
    previous: tuple[str, str] = ("", ""),
    names: dict[str, str] | None = None,
) -> None:
    """Name the chat's operator (and a transfer's) as every screen does: by their display
    name, not by the attender name SalesIQ puts on the chat (a first name several operators
    may share, or none at all in the reference dialect). Looked up only when the chat's
    operator changes; a rename reaches open chats from ``_refresh_display_names``.
    ``previous``: the chat's operator id and name before this fact."""
    was_id, was_name = previous
    if chat.operator_id and chat.operator_id == was_id and was_name:
        chat.operator_name = was_name
    elif chat.operator_id:
        shown = _shown_operator_name(portal, chat.operator_id, names)
        if shown:
            chat.operator_name = shown[:200]
    transfer = conversation.transfer
    if transfer is not None and transfer.to_operator_id:
        shown = _shown_operator_name(portal, transfer.to_operator_id, names)
        if shown:
            chat.transfer_to = shown[:200]
    if chat.department_id and not chat.department_name:
        # The reference dialect names no department on a polled chat: take the name we know.
        name = (
            Department.objects.filter(portal=portal, remote_id=chat.department_id)
            .values_list("name", flat=True)
            .first()
        )
        chat.department_name = name or ""


def _fields(row: Chat | Operator) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _FIELDS[type(row)]}


# What a chat's or an operator's row never shows: a change of these alone is not published.
_UNSHOWN = frozenset({"fact_at", "source"})


def _save_what_changed(row: Chat | Operator, was: dict[str, Any]) -> bool:
    """An UPDATE of the columns that changed (and ``updated_at``), not of them all: a
    webhook changes two or three, and every column costs the ORM time to compile. Returns
    whether anything a page shows changed: a poll confirms most rows as they were."""
    changed = [name for name, value in was.items() if getattr(row, name) != value]
    row.save(update_fields=[*changed, "updated_at"])
    return any(name not in _UNSHOWN for name in changed)


def _apply_conversation(
    portal: Portal,
    conversation: Conversation,
    *,
    fact_at: datetime,
    source: str,
    changes: Changes,
    known: dict[str, Chat] | None = None,
    names: dict[str, str] | None = None,
) -> Chat | None:
    """``known``: the portal's chats by remote id, read already (a poll reads its open
    chats in one query); a chat not in it is looked up. ``names``: the portal's operators'
    display names by remote id, read already."""
    now = timezone.now()
    fact_at = _believable(fact_at, now=now, instead=now)
    conversation = _believable_conversation(conversation, now=now, instead=fact_at)
    chat = known.get(conversation.id) if known is not None else None
    if chat is None:
        chat = Chat.objects.filter(portal=portal, remote_id=conversation.id).first()
    if chat is None:
        chat = Chat(portal=portal, remote_id=conversation.id, fact_at=fact_at, source=source)
        _merge(chat, conversation, fact_at)
        _name_operator(portal, chat, conversation, names=names)
        chat.save()
        changes.chats.add(chat.pk)
        changes.operators |= _operator_pks(portal, [chat.operator_id])
        _store_message(chat, conversation.last_message, changes)
        return chat
    newly_open = _CHAT_STATUS[conversation.status] in OPEN_CHAT_STATUSES
    if not chat.is_open and newly_open and not chat.inferred_end:
        # SalesIQ said it ended: nothing reopens it. Ratings still land, and so does the
        # message the fact carries: a line is a fact of its own, whatever the chat's state
        # (an event applied after the end, by this process or another at its own pace).
        touched = []
        if conversation.rating is not None and chat.rating != conversation.rating:
            chat.rating, chat.feedback = conversation.rating, conversation.feedback
            touched += ["rating", "feedback"]
        if _set_last_message(chat, conversation.last_message):
            touched += ["last_message_text", "last_message_at", "last_message_sender"]
        if touched:
            chat.save(update_fields=[*touched, "updated_at"])
            changes.chats.add(chat.pk)
        _store_message(chat, conversation.last_message, changes)
        return chat
    standing = _standing(chat.fact_at, now)
    # SalesIQ saying a chat is over wins whatever its date: nothing reopens a chat, so an
    # end is never stale (two facts dated when they arrived, or a slow process, may reach us
    # in the wrong order).
    ends_it = chat.is_open and not newly_open
    if not ends_it and (
        fact_at < standing
        or (
            fact_at == standing
            and _STAGE[_CHAT_STATUS[conversation.status]] < _STAGE[ChatStatus(chat.status)]
        )
    ):
        # An older fact: it may still carry a rating or a message we have not seen. Facts of
        # the same millisecond (a chat created and picked up at once) may come in either
        # order: the one further along its life is the newer.
        touched = []
        if conversation.rating is not None and chat.rating is None:
            chat.rating, chat.feedback = conversation.rating, conversation.feedback
            touched += ["rating", "feedback"]
        if touched:
            chat.save(update_fields=[*touched, "updated_at"])
            changes.chats.add(chat.pk)
        _store_message(chat, conversation.last_message, changes)
        return chat
    before = (chat.status, chat.operator_id)
    was = _fields(chat)
    _merge(chat, conversation, fact_at)
    _name_operator(
        portal, chat, conversation, previous=(was["operator_id"], was["operator_name"]), names=names
    )
    chat.fact_at = max(fact_at, standing)
    chat.source = source
    if _save_what_changed(chat, was):
        changes.chats.add(chat.pk)
    if before != (chat.status, chat.operator_id):
        changes.operators |= _operator_pks(portal, [before[1], chat.operator_id])
    _store_message(chat, conversation.last_message, changes)
    return chat


def mark_chat_ended(chat: Chat, *, at: datetime, source: str) -> Changes:
    """SalesIQ confirmed an end without describing the chat (an action's bare answer)."""
    changes = Changes(chat.portal_id)
    with _applying(chat.portal_id):
        chat.refresh_from_db()
        if chat.is_open:
            previous_operator = chat.operator_id
            chat.status = ChatStatus.ENDED
            chat.ended_at = at
            chat.waiting_since = None
            chat.inferred_end = False
            chat.fact_at = max(_standing(chat.fact_at, timezone.now()), at)
            chat.source = source
            chat.save()
            changes.chats.add(chat.pk)
            changes.operators |= _operator_pks(chat.portal, [previous_operator])
        _settle(changes)
    return changes


def apply_conversation(
    portal: Portal, conversation: Conversation, *, fact_at: datetime, source: str
) -> Changes:
    """One conversation as SalesIQ described it (an action's answer, a single GET)."""
    changes = Changes(portal.pk)
    with _applying(portal.pk):
        _apply_conversation(portal, conversation, fact_at=fact_at, source=source, changes=changes)
        _settle(changes)
    return changes


def apply_chats(
    portal: Portal, conversations: list[Conversation], *, taken_at: datetime, complete: bool
) -> Changes:
    """A poll of open chats. With ``complete``, open chats it does not list are closed
    ("ghosts"), unless a fact newer than the poll (minus a grace) vouches for them."""
    changes = Changes(portal.pk, meta=complete)
    with _applying(portal.pk):
        listed = set()
        known = {
            chat.remote_id: chat
            for chat in Chat.objects.filter(portal=portal, status__in=OPEN_CHAT_STATUSES)
        }
        names = _display_names_by_id(portal) if conversations else None
        for conversation in conversations:
            listed.add(conversation.id)
            fact_at = conversation.modified_at or taken_at
            _apply_conversation(
                portal,
                conversation,
                fact_at=fact_at,
                source=Source.POLL,
                changes=changes,
                known=known,
                names=names,
            )
        if complete:
            # SalesIQ no longer lists it: that wins over a fact dated in the future too.
            ghosts = (
                Chat.objects.filter(portal=portal, status__in=OPEN_CHAT_STATUSES)
                .exclude(remote_id__in=listed)
                .filter(
                    Q(fact_at__lt=taken_at - GHOST_GRACE)
                    | Q(fact_at__gt=max(taken_at, timezone.now()) + FUTURE_ALLOWANCE)
                )
            )
            for chat in ghosts:
                chat.status = ChatStatus.ENDED if chat.attended_at else ChatStatus.MISSED
                chat.ended_at = taken_at
                chat.inferred_end = True
                chat.fact_at = taken_at
                chat.source = Source.POLL
                chat.waiting_since = None
                chat.save()
                changes.chats.add(chat.pk)
                changes.operators |= _operator_pks(portal, [chat.operator_id])
            PortalSync.objects.update_or_create(
                portal=portal, defaults={"chats_polled_at": taken_at}
            )
        _settle(changes)
    return changes


# --- operators and departments -------------------------------------------------------------


def _name_key(name: str) -> str:
    """Names a supervisor cannot tell apart on screen count as the same name."""
    return " ".join(name.split()).casefold()


def _local_part(email: str) -> str:
    return email.partition("@")[0].strip()


def _id_tail(remote_id: str, others: Iterable[str]) -> str:
    """The shortest end of ``remote_id`` (four digits at least) that no id of ``others``
    ends with: stable while the same operators share the name."""
    for length in range(4, len(remote_id) + 1):
        tail = remote_id[-length:]
        if not any(other.endswith(tail) for other in others):
            return tail
    return remote_id


def display_names(operators: Iterable[Operator]) -> dict[Any, str]:
    """The name every screen shows for each of one portal's ``operators`` (by pk): the
    full name SalesIQ gives; where several operators share it, each with the local part
    of their e-mail address ("Ólafur Novák (olafur.8)"), or, where that is shared or
    missing too, the end of their SalesIQ id ("Ólafur Novák (id …9001)")."""
    groups: dict[str, list[Operator]] = {}
    for operator in operators:
        groups.setdefault(_name_key(operator.name), []).append(operator)
    shown: dict[Any, str] = {}
    for group in groups.values():
        if len(group) == 1:
            shown[group[0].pk] = group[0].name
            continue
        locals_ = [_local_part(operator.email).casefold() for operator in group]
        for operator, local in zip(group, locals_, strict=True):
            if local and locals_.count(local) == 1:
                mark = _local_part(operator.email)
            else:
                others = [o.remote_id for o in group if o is not operator]
                tail = f"id …{_id_tail(operator.remote_id, others)}"
                mark = f"{_local_part(operator.email)}, {tail}" if local else tail
            shown[operator.pk] = f"{operator.name} ({mark})"[:260]
    return shown


def _display_names_by_id(portal: Portal) -> dict[str, str]:
    """Every operator's display name by SalesIQ id, in one query."""
    return {
        remote_id: display or name
        for remote_id, display, name in Operator.objects.filter(portal=portal).values_list(
            "remote_id", "display_name", "name"
        )
    }


def _refresh_display_names(portal: Portal, operators: Iterable[Operator], changes: Changes) -> None:
    """Keep ``display_name`` right for the whole portal after its operators changed
    (``operators``: all of them, as stored now), and the open chats of each operator whose
    display name changed showing the new one. Both go into ``changes``: every screen that
    shows these operators, their chats and their alerts is rendered again."""
    operators = list(operators)
    wanted = display_names(operators)
    renamed = [op for op in operators if op.display_name != wanted[op.pk]]
    if not renamed:
        return
    at = timezone.now()
    for operator in renamed:
        operator.display_name = wanted[operator.pk]
        operator.updated_at = at  # the page's "changed since" check reads it
    Operator.objects.bulk_update(renamed, ["display_name", "updated_at"])
    changes.operators |= {operator.pk for operator in renamed}
    new_names = {operator.remote_id: operator.display_name[:200] for operator in renamed}
    stale: dict[str, list[int]] = {}
    for pk, operator_id, shown in Chat.objects.filter(
        portal=portal, status__in=OPEN_CHAT_STATUSES, operator_id__in=list(new_names)
    ).values_list("pk", "operator_id", "operator_name"):
        if shown != new_names[operator_id]:
            stale.setdefault(operator_id, []).append(pk)
    for operator_id, pks in stale.items():
        Chat.objects.filter(pk__in=pks).update(operator_name=new_names[operator_id], updated_at=at)
        changes.chats.update(pks)


def _apply_operator(
    portal: Portal,
    remote: RemoteOperator,
    *,
    fact_at: datetime,
    source: str,
    changes: Changes,
    presence: bool = True,
    known: dict[str, Operator] | None = None,
) -> tuple[Operator, bool]:
    """``known``: the portal's operators by remote id, read already (a poll reads them in
    one query); one not in it is looked up. Returns the operator and whether it is new or
    its name or e-mail changed (the portal's display names are then due again)."""
    now = timezone.now()
    fact_at = _believable(fact_at, now=now, instead=now)
    operator = known.get(remote.id) if known is not None else None
    if operator is None:
        operator = Operator.objects.filter(portal=portal, remote_id=remote.id).first()
    was = _fields(operator) if operator is not None else None
    if operator is None:
        operator = Operator(
            portal=portal,
            remote_id=remote.id,
            status=str(remote.status),
            status_since=None,  # unknown: we did not see it change
            fact_at=fact_at,
            source=source,
        )
    elif fact_at < _standing(operator.fact_at, now):
        return operator, False
    else:
        if presence and operator.status != str(remote.status):
            operator.status = str(remote.status)
            operator.status_since = fact_at
        operator.fact_at = fact_at
        operator.source = source
    for name, value in (
        ("name", remote.name[:200]),
        ("email", remote.email[:254]),
        ("status_message", remote.status_message[:300]),
        ("role", remote.role[:40]),
    ):
        if value:
            setattr(operator, name, value)
    if remote.first_name or remote.last_name or remote.nick_name:
        # The dialect sends the name in parts (v2): all three as they are now.
        operator.first_name = remote.first_name[:100]
        operator.last_name = remote.last_name[:100]
        operator.nick_name = remote.nick_name[:100]
    operator.enabled = remote.enabled
    if remote.department_ids:
        operator.department_ids = list(remote.department_ids)
    if remote.max_chats is not None:
        operator.max_chats = remote.max_chats
    if was is None:
        operator.save()
        changes.operators.add(operator.pk)
        return operator, True
    if _save_what_changed(operator, was):
        changes.operators.add(operator.pk)
    return operator, (was["name"], was["email"]) != (operator.name, operator.email)


def apply_operators(portal: Portal, sync: OperatorSync, *, taken_at: datetime) -> Changes:
    """An operators poll: v2 gives only those changed since the last sync time; a complete
    list also removes operators SalesIQ no longer has."""
    changes = Changes(portal.pk, meta=True)
    with _applying(portal.pk):
        seen = set()
        known = {operator.remote_id: operator for operator in portal.operators.all()}
        for remote in sync.operators:
            seen.add(remote.id)
            known[remote.id], _ = _apply_operator(
                portal,
                remote,
                fact_at=remote.modified_at or taken_at,
                source=Source.POLL,
                changes=changes,
                known=known,
            )
        if sync.complete:
            gone = Operator.objects.filter(portal=portal).exclude(remote_id__in=seen)
            changes.removed_operators |= set(gone.values_list("pk", flat=True))
            gone.delete()
            known = {remote_id: op for remote_id, op in known.items() if remote_id in seen}
        # Every poll, from what is in memory already: a namesake who came, went or was
        # renamed changes how the others read.
        _refresh_display_names(portal, known.values(), changes)
        defaults: dict[str, Any] = {"operators_polled_at": taken_at}
        if sync.sync_time:
            defaults["operators_sync_time"] = sync.sync_time
        if sync.complete:
            defaults["operators_full_at"] = taken_at
        PortalSync.objects.update_or_create(portal=portal, defaults=defaults)
        _settle(changes)
    return changes


def apply_operator_status(
    portal: Portal,
    operator_id: str,
    status: OperatorStatus | str,
    *,
    fact_at: datetime,
    source: str,
) -> Changes:
    """A presence change reported on its own (reference webhook, an action's answer)."""
    changes = Changes(portal.pk)
    now = timezone.now()
    fact_at = _believable(fact_at, now=now, instead=now)
    with _applying(portal.pk):
        operator = Operator.objects.filter(portal=portal, remote_id=operator_id).first()
        if operator is not None and fact_at >= _standing(operator.fact_at, now):
            if operator.status != str(status):
                operator.status = str(status)
                operator.status_since = fact_at
            operator.fact_at = fact_at
            operator.source = source
            operator.save()
            changes.operators.add(operator.pk)
        _settle(changes)
    return changes


def apply_departments(
    portal: Portal, departments: list[RemoteDepartment], *, taken_at: datetime, complete=True
) -> Changes:
    """A departments poll; only a ``complete`` list removes departments SalesIQ no longer
    lists."""
    changes = Changes(portal.pk, departments=True)
    with _applying(portal.pk):
        seen = set()
        for remote in departments:
            seen.add(remote.id)
            Department.objects.update_or_create(
                portal=portal,
                remote_id=remote.id,
                defaults={
                    "name": remote.name[:200],
                    "enabled": remote.enabled,
                    "seen_at": taken_at,
                },
            )
        if complete:
            Department.objects.filter(portal=portal).exclude(remote_id__in=seen).delete()
        PortalSync.objects.update_or_create(
            portal=portal, defaults={"departments_polled_at": taken_at}
        )
        _settle(changes)
    return changes


def apply_transcript(chat: Chat, messages: list[Message], *, fetched_at: datetime) -> Changes:
    """A chat's whole transcript, fetched when a supervisor opens it."""
    changes = Changes(chat.portal_id)
    with _applying(chat.portal_id):
        # The caller read the chat before asking SalesIQ: what was applied meanwhile (here
        # or in another process) must not be saved over.
        chat.refresh_from_db()
        now = timezone.now()
        messages = [_believable_message(m, now=now, instead=fetched_at) for m in messages]
        for message in messages:
            _store_message(chat, message, changes)
        chat.transcript_loaded_at = fetched_at
        if messages and _set_last_message(chat, messages[-1]):
            changes.chats.add(chat.pk)
        chat.save()
        _settle(changes)
    return changes


# --- webhook events ------------------------------------------------------------------------


# The arrival time this process last wrote as each portal's last event (committed).
_last_event_marked: dict[Any, datetime] = {}


def apply_event(portal: Portal, event: WebhookEvent, *, received_at: datetime) -> Changes:
    """One verified webhook event. Unknown kinds change nothing (the inbox keeps them)."""
    changes = Changes(portal.pk, meta=True)
    believed = _believable_event(event, now=timezone.now(), instead=received_at)
    if believed is not event:
        logger.warning(
            "A %s event for portal %s was dated more than %d minutes ahead of this server's "
            "clock; it is applied as of when it arrived.",
            event.name[:100],
            portal.pk,
            FUTURE_ALLOWANCE.total_seconds() // 60,
        )
        event = believed
    fact_at = event.occurred_at or received_at
    with _applying(portal.pk):
        if event.conversation is not None:
            chat = _apply_conversation(
                portal, event.conversation, fact_at=fact_at, source=Source.WEBHOOK, changes=changes
            )
            # v2 events carry their message as the conversation's last one: stored already.
            last = event.conversation.last_message
            if chat is not None and event.message is not None and event.message != last:
                _store_message(chat, event.message, changes)
            if chat is not None and chat.pk in changes.chats:
                _note_people_after_attender_change(chat, event, changes)
        elif event.message is not None and event.chat_id:
            # Reference dialect: a message on its own.
            chat = Chat.objects.filter(portal=portal, remote_id=event.chat_id).first()
            if chat is not None:
                _store_message(chat, event.message, changes)
                if _set_last_message(chat, event.message):
                    chat.save()
                    changes.chats.add(chat.pk)
        elif event.kind is EventKind.OPERATOR_STATUS_CHANGED and event.operator_status:
            operator = Operator.objects.filter(portal=portal, remote_id=event.operator_id).first()
            if operator is not None and fact_at >= _standing(operator.fact_at, timezone.now()):
                if operator.status != str(event.operator_status):
                    operator.status = str(event.operator_status)
                    operator.status_since = fact_at
                operator.fact_at = fact_at
                operator.source = Source.WEBHOOK
                operator.save()
                changes.operators.add(operator.pk)
        elif event.kind is EventKind.OPERATOR_UPDATED and event.operator is not None:
            # v2's operator.updated is a profile change: presence still comes from polling.
            _, renamed = _apply_operator(
                portal,
                event.operator,
                fact_at=fact_at,
                source=Source.WEBHOOK,
                changes=changes,
                presence=False,
            )
            if renamed:
                _refresh_display_names(portal, Operator.objects.filter(portal=portal), changes)
        elif event.participants:
            _apply_participants(portal, event, fact_at=fact_at, changes=changes)
        elif event.message_change is not None:
            _apply_message_change(portal, event, fact_at=fact_at, changes=changes)
        # One UPDATE per stored batch (its events share their arrival time); the row is made
        # once per portal.
        if _last_event_marked.get(portal.pk) != received_at:
            if not PortalSync.objects.filter(portal=portal).update(last_event_at=received_at):
                PortalSync.objects.update_or_create(
                    portal=portal, defaults={"last_event_at": received_at}
                )
            transaction.on_commit(lambda: _last_event_marked.update({portal.pk: received_at}))
        _settle(changes)
    return changes


# --- who else is in a chat, and lines changed after they were sent -------------------------

# What a chat's row shows for its last line once SalesIQ says that line was deleted.
DELETED_LINE = "Message deleted"


def _apply_participants(
    portal: Portal, event: WebhookEvent, *, fact_at: datetime, changes: Changes
) -> None:
    """Operators invited into a chat, or supervisors who joined it, came or went. Each
    person's row keeps the time of the newest fact applied: an older one (a "joined" that
    arrives after the "left" it preceded) changes nothing, and so does the same one twice.
    Joined and left in the same millisecond: left wins."""
    chat = Chat.objects.filter(portal=portal, remote_id=event.chat_id).first()
    if chat is None:
        return  # a chat this dashboard never saw: nobody has its drawer open
    joined = event.kind is not EventKind.PARTICIPANTS_REMOVED
    now = timezone.now()
    known = {
        row.remote_id: row
        for row in ChatParticipant.objects.filter(
            chat=chat, remote_id__in=[person.id for person in event.participants]
        )
    }
    names = _display_names_by_id(portal)
    for person in event.participants:
        # Shown as every screen shows the operator when we know them; else as SalesIQ says.
        name = (names.get(person.id) or person.name)[:200]
        supervisor = person.role is ParticipantRole.SUPERVISOR
        row = known.get(person.id)
        if row is None:
            known[person.id] = ChatParticipant.objects.create(
                chat=chat,
                remote_id=person.id,
                name=name,
                email=person.email[:254],
                role=str(person.role),
                joined_at=fact_at if joined else None,
                left_at=None if joined else fact_at,
                fact_at=fact_at,
            )
            changes.participants.add(chat.pk)
            continue
        standing = _standing(row.fact_at, now)
        if fact_at < standing or (fact_at == standing and (joined or row.left_at is not None)):
            continue
        was = (row.name, row.email, row.role, row.joined_at, row.left_at)
        row.name = name or row.name
        row.email = person.email[:254] or row.email
        if supervisor:
            row.role = str(ParticipantRole.SUPERVISOR)  # joined as one: stays one in this chat
        if joined:
            if row.left_at is not None or row.joined_at is None:
                row.joined_at = fact_at  # back again: present since now
            row.left_at = None
        else:
            row.left_at = fact_at
        row.fact_at = fact_at
        row.save()
        if was != (row.name, row.email, row.role, row.joined_at, row.left_at):
            changes.participants.add(chat.pk)


def _note_people_after_attender_change(chat: Chat, event: WebhookEvent, changes: Changes) -> None:
    """The drawer lists everyone but the chat's operator: when the operator changes (an
    invited operator takes the chat over) the list is pushed again, if the chat has one."""
    if event.kind not in (EventKind.CHAT_ATTENDER_CHANGED, EventKind.TRANSFER_ACCEPTED):
        return
    if ChatParticipant.objects.filter(chat=chat).exists():
        changes.participants.add(chat.pk)


def _apply_message_change(
    portal: Portal, event: WebhookEvent, *, fact_at: datetime, changes: Changes
) -> None:
    """A line edited or deleted in SalesIQ. A deletion is final (a late edit does not bring
    the text back) and drops the text; of two edits the newer wins, whatever their order;
    the text first stored is kept for the edited line's tooltip. A line we have not stored
    yet is stored as changed, so that the line itself, arriving later (its own event, the
    transcript), does not bring back what was edited away or deleted."""
    change = event.message_change
    assert change is not None
    chat = Chat.objects.filter(portal=portal, remote_id=event.chat_id).first()
    if chat is None:
        return
    now = timezone.now()
    line = ChatMessage.objects.filter(chat=chat, remote_id=change.message_id).first()
    if line is None:
        sent_at = _believable(change.sent_at, now=now, instead=fact_at)
        line = ChatMessage(
            chat=chat,
            remote_id=change.message_id,
            sender_type=str(change.sender_type or "system"),
            sender_name=change.sender_name[:200],
            text=change.text,
            sent_at=sent_at,
            edited_at=None if change.deleted else fact_at,
            deleted_at=fact_at if change.deleted else None,
        )
        try:
            with transaction.atomic():
                line.save(force_insert=True)
        except IntegrityError:
            return  # stored meanwhile: the next delivery of this change finds it
        changes.messages.add(line.pk)
        return
    if line.deleted_at is not None:
        return  # deleted: nothing changes it any more
    old_text = line.text
    if change.deleted:
        line.deleted_at = fact_at
        line.text = ""
        line.original_text = ""
        line.save(update_fields=["deleted_at", "text", "original_text"])
    else:
        if line.edited_at is not None and fact_at <= _standing(line.edited_at, now):
            return  # an older edit, or this one again
        if line.text == change.text and line.edited_at is not None:
            return
        if line.edited_at is None:
            line.original_text = line.text
        line.text = change.text
        line.edited_at = fact_at
        line.save(update_fields=["text", "original_text", "edited_at"])
    changes.changed_messages.add(line.pk)
    # The chat's row previews its last line: an edit or deletion of that line shows there too.
    if (
        chat.last_message_text
        and chat.last_message_text == old_text[:2000]
        and (chat.last_message_at is None or chat.last_message_at == line.sent_at)
    ):
        chat.last_message_text = (DELETED_LINE if change.deleted else change.text)[:2000]
        chat.save(update_fields=["last_message_text", "updated_at"])
        changes.chats.add(chat.pk)
