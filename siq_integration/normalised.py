"""The one normalised form both dialects map to.

Ids stay strings (SalesIQ ids exceed 2^53). Times are aware UTC datetimes.
Everything the dashboard learns about SalesIQ arrives as one of these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class OperatorStatus(enum.StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    AWAY = "away"
    OFFLINE = "offline"


class ChatStatus(enum.StrEnum):
    WAITING = "waiting"  # no operator yet
    CONNECTED = "connected"  # an operator (or bot) is attending
    ENDED = "ended"
    MISSED = "missed"

    @property
    def is_open(self) -> bool:
        return self in {ChatStatus.WAITING, ChatStatus.CONNECTED}


class SenderType(enum.StrEnum):
    VISITOR = "visitor"
    OPERATOR = "operator"
    BOT = "bot"
    SYSTEM = "system"


class EventKind(enum.StrEnum):
    CHAT_CREATED = "chat.created"
    CHAT_ATTENDER_CHANGED = "chat.attender_changed"
    VISITOR_MESSAGE = "chat.visitor_message"
    OPERATOR_MESSAGE = "chat.operator_message"
    TRANSFER_INITIATED = "chat.transfer_initiated"
    TRANSFER_ACCEPTED = "chat.transfer_accepted"
    TRANSFER_REJECTED = "chat.transfer_rejected"
    CHAT_ENDED = "chat.ended"
    CHAT_MISSED = "chat.missed"
    CHAT_RATED = "chat.rated"
    OPERATOR_UPDATED = "operator.updated"  # profile (v2): not presence
    OPERATOR_STATUS_CHANGED = "operator.status_changed"  # presence (reference)
    # Who else is in a chat, and lines changed after they were sent (v2 only).
    PARTICIPANTS_ADDED = "chat.participants_added"
    PARTICIPANTS_REMOVED = "chat.participants_removed"
    SUPERVISOR_JOINED = "chat.supervisor_joined"
    MESSAGE_EDITED = "chat.message_edited"
    MESSAGE_DELETED = "chat.message_deleted"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Visitor:
    id: str
    name: str = ""
    email: str = ""
    details: dict[str, str] = field(default_factory=dict)  # city, country, ip, browser…


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    chat_id: str
    sender_type: SenderType
    text: str
    sent_at: datetime | None
    sender_id: str = ""
    sender_name: str = ""


@dataclass(frozen=True, slots=True)
class Transfer:
    status: str  # initiated / accepted / rejected
    to_operator_id: str = ""
    to_operator_name: str = ""
    to_department_id: str = ""
    to_department_name: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    status: ChatStatus
    visitor: Visitor
    started_at: datetime | None
    operator_id: str = ""
    operator_name: str = ""
    department_id: str = ""
    department_name: str = ""
    question: str = ""
    attended_at: datetime | None = None
    ended_at: datetime | None = None
    last_message: Message | None = None
    rating: int | None = None
    feedback: str = ""
    transfer: Transfer | None = None
    # When SalesIQ last changed the conversation, where the dialect says (v2 only).
    modified_at: datetime | None = None
    reference_id: str = ""


@dataclass(frozen=True, slots=True)
class Operator:
    id: str
    # The full name: first and last name, else the nickname, else the e-mail address
    # (the reference dialect sends one name: that one).
    name: str
    email: str
    status: OperatorStatus
    status_message: str = ""
    enabled: bool = True
    department_ids: tuple[str, ...] = ()
    max_chats: int | None = None  # capacity
    active_chats: int | None = None  # only the reference dialect reports it
    role: str = ""
    modified_at: datetime | None = None
    # SalesIQ's own name fields, as sent (v2; blank in the reference dialect).
    first_name: str = ""
    last_name: str = ""
    nick_name: str = ""


@dataclass(frozen=True, slots=True)
class Department:
    id: str
    name: str
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class OperatorSync:
    """One operators poll: who changed, and the mark to ask from next time (v2)."""

    operators: list[Operator]
    sync_time: str | None  # opaque: hand it back as last_sync_time
    complete: bool  # True when this is the full list, not only changes


@dataclass(frozen=True, slots=True)
class Portal:
    """A portal the connected user can reach (v2 GET /portals)."""

    id: str
    screen_name: str
    name: str


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    url: str
    events: tuple[str, ...]
    enabled: bool = True
    public_keys: tuple[WebhookKey, ...] = ()


@dataclass(frozen=True, slots=True)
class WebhookKey:
    id: str
    public_key_pem: str
    created_at: datetime | None = None
    creator_id: str = ""  # the SalesIQ user who added it


class ParticipantRole(enum.StrEnum):
    OPERATOR = "operator"  # an operator invited into someone else's chat
    SUPERVISOR = "supervisor"  # an admin or supervisor who joined to watch or help


@dataclass(frozen=True, slots=True)
class Participant:
    """Someone in a chat besides its visitor and its attender: who, and as what."""

    id: str  # the SalesIQ operator id
    role: ParticipantRole
    name: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True)
class MessageChange:
    """A line of a chat changed after it was sent: edited to ``text``, or deleted."""

    message_id: str  # names the line as Message.id does (the sequence number first)
    deleted: bool
    text: str = ""  # the new text of an edited line; blank for a deleted one
    # The line as first sent, when the event says (a line we never stored is kept from it).
    sender_type: SenderType | None = None
    sender_id: str = ""
    sender_name: str = ""
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    kind: EventKind
    name: str  # the dialect's own event name, as received
    dedupe_key: str  # the same delivery, retried or replayed, gives the same key
    occurred_at: datetime | None
    entity_id: str = ""
    conversation: Conversation | None = None
    operator: Operator | None = None
    message: Message | None = None
    # Reference events carry fragments, not whole objects: the fields they do carry.
    chat_id: str = ""
    operator_id: str = ""
    operator_status: OperatorStatus | None = None
    rating: int | None = None
    feedback: str = ""
    attempt: int = 1
    # Joined or left (PARTICIPANTS_*, SUPERVISOR_JOINED): the chat is ``chat_id``.
    participants: tuple[Participant, ...] = ()
    # Edited or deleted (MESSAGE_*): the chat is ``chat_id``.
    message_change: MessageChange | None = None
