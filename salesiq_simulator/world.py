"""The simulated world: portals, departments, operators, conversations, webhooks.

Everything here runs under the simulator's one lock. The mutations (pickup,
message, transfer, close …) live here rather than in the life engine so that the
life engine, the SalesIQ API handlers and the scene helpers all change the world
the same way and emit the same webhook events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Zoho ids are numeric strings above 2^53; starting the counter here keeps every
# id we hand out in that range so a client that parses them as floats breaks.
ID_BASE = 466756000001000000
assert ID_BASE > 2**53

OPEN_STATUSES = ("waiting", "connected")
# Ended conversations stay listable at least this long (seconds): a business day is at most
# 25 hours (a daylight-saving change), and a dashboard reads a whole day's ended chats back
# after a gap in what it heard.
KEEP_ENDED_SECONDS = 26 * 3600
PRESENCES = ("online", "away", "busy", "offline")

# v2 status_code: 1 Available and 3 Busy are Zoho's; 0 offline and 2 away are our reading.
PRESENCE_TO_V2_CODE = {"online": 1, "busy": 3, "away": 2, "offline": 0}
PRESENCE_TO_V2_MESSAGE = {
    "online": "Available",
    "busy": "Busy",
    "away": "Away",
    "offline": "Offline",
}
PRESENCE_TO_AVAILABILITY = {
    "online": "available",
    "busy": "busy",
    "away": "away",
    "offline": "unavailable",
}

CHAT_STATUS = {
    "waiting": {"state_key": "waiting", "status_key": "open", "state": 1, "label": "Waiting"},
    "connected": {"state_key": "connected", "status_key": "open", "state": 2, "label": "Connected"},
    "missed": {"state_key": "missed", "status_key": "closed", "state": 3, "label": "Missed"},
    "closed": {"state_key": "closed", "status_key": "closed", "state": 4, "label": "Closed"},
}
REFERENCE_STATUS = {
    "waiting": "waiting",
    "connected": "active",
    "closed": "ended",
    "missed": "missed",
}
REFERENCE_ROLE = {"Administrator": "admin", "Supervisor": "supervisor", "Associate": "agent"}


def ms(t: float | None) -> str | None:
    """Epoch seconds → Zoho's epoch-milliseconds string."""
    return None if t is None else str(round(t * 1000))


def iso(t: float | None) -> str | None:
    """Epoch seconds → ISO 8601 UTC with milliseconds, as the reference dialect writes."""
    if t is None:
        return None
    dt = datetime.fromtimestamp(t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class IdGen:
    """Numeric-string ids from one counter, so the same operations give the same ids."""

    def __init__(self, start: int = ID_BASE) -> None:
        self._next = start

    def __call__(self) -> str:
        self._next += 1
        return str(self._next)


class Clock:
    """The world's time.

    With a fixed ``start`` the clock only moves when the simulator is stepped (the
    deterministic mode tests use); otherwise it follows the wall clock. ``advance``
    shifts it forward in both modes: that is what "step N seconds" means.
    """

    def __init__(self, start: float | None = None) -> None:
        self.manual = start is not None
        self._base = start or 0.0
        self._offset = 0.0

    def now(self) -> float:
        return (self._base if self.manual else time.time()) + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += max(0.0, seconds)

    def set(self, now: float) -> None:
        """Move the clock forward to ``now`` (never backwards)."""
        current = self.now()
        if now > current:
            self._offset += now - current


@dataclass
class PortalSettings:
    rate_limit_per_minute: int | None = None
    operator_status_for_others: bool = False
    close_method: str = "POST"
    operator_status_method: str = "PUT"
    # Zoho's Pick up Chat page names no method: PUT, as v2's other UPDATE calls.
    pickup_method: str = "PUT"
    strict_webhook_urls: bool = False
    # Life: seconds between visitor arrivals (uniform in the range).
    visitor_interval: tuple[float, float] = (20.0, 30.0)
    # Life: a waiting visitor gives up (missed) after this many seconds.
    miss_after: float = 480.0


@dataclass
class Department:
    id: str
    name: str
    display_name: str
    is_enabled: bool = True


@dataclass
class Operator:
    id: str
    zuid: str
    email: str
    first_name: str
    last_name: str
    nick_name: str
    role: str
    department_ids: list[str]
    max_chats: int
    presence: str
    modified_time: float
    last_active: float
    is_enabled: bool = True
    # Life: an operator who is slow to answer now and then.
    slow: bool = False
    chat_ids: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def has_capacity(self) -> bool:
        return self.is_enabled and self.presence == "online" and len(self.chat_ids) < self.max_chats


@dataclass
class Visitor:
    id: str
    name: str
    email: str
    ip: str
    country: str
    city: str


@dataclass
class Message:
    id: str
    sequence_id: int
    sender_type: str  # visitor | operator | bot
    sender_id: str
    sender_name: str
    text: str
    time: float
    # Changed after it was sent (v2 conversation.message.edited / .deleted).
    edited_time: float | None = None
    deleted_time: float | None = None


@dataclass
class Conversation:
    id: str
    portal_id: str
    reference_id: str
    chat_id: str
    visitor: Visitor
    department_id: str
    question: str
    start_time: float
    last_modified_time: float
    status: str = "waiting"
    attender_id: str | None = None
    attended_time: float | None = None
    end_time: float | None = None
    messages: list[Message] = field(default_factory=list)
    rating: int | None = None
    feedback: str | None = None
    transfer: dict[str, Any] | None = None
    # Others in the chat besides the visitor and the attender (an operator invited in, a
    # supervisor who joined), by operator id: {id, name, email_id, type, joined_time}.
    participants: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Life planning (not part of any API answer).
    next_speaker: str = "operator"
    turns_left: int = 6
    pickup_at: float | None = None
    miss_at: float | None = None
    next_turn_at: float | None = None
    transfer_due_at: float | None = None
    rating_due_at: float | None = None
    plan_token: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass
class WebhookKey:
    id: str
    public_b64: str
    private_key: Any  # cryptography RSAPrivateKey; never leaves the simulator
    created_time: float
    creator_id: str = ""  # the SalesIQ user who added it (Zoho's `creator: {id}`)


@dataclass
class Webhook:
    id: str
    url: str
    events: list[str]
    created_time: float
    type: str = "data"
    version: str = "1"
    name: str = ""
    enabled: bool = True
    secret: str = ""
    keys: list[WebhookKey] = field(default_factory=list)


@dataclass
class Portal:
    id: str
    screen_name: str
    name: str
    dialect: str  # "v2" | "reference"
    dc: str
    app_id: str
    brand_id: str
    admin_email: str
    settings: PortalSettings
    departments: dict[str, Department] = field(default_factory=dict)
    operators: dict[str, Operator] = field(default_factory=dict)
    conversations: dict[str, Conversation] = field(default_factory=dict)
    # Open conversations in creation order; the listing walks this instead of
    # scanning every conversation the portal ever had.
    open_ids: dict[str, None] = field(default_factory=dict)
    ended_ids: dict[str, None] = field(default_factory=dict)
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    reference_counter: int = 1000
    # Life schedule of the portal itself.
    next_arrival_at: float | None = None
    next_presence_at: float | None = None

    def operator_by_email(self, email: str) -> Operator | None:
        email = email.lower()
        for op in self.operators.values():
            if op.email.lower() == email:
                return op
        return None


@dataclass
class Event:
    """Something happened in a portal; delivery turns it into dialect-shaped webhooks."""

    portal: Portal
    kind: str
    time: float
    conversation: Conversation | None = None
    operator: Operator | None = None
    message: Message | None = None
    previous_presence: str | None = None
    # Who joined or left (participants_added / _deleted, supervisor_added).
    participant: dict[str, Any] | None = None


# Internal event kinds → the event names of each dialect (None: the dialect has no such event).
V2_EVENT_NAMES: dict[str, str] = {
    "created": "conversation.created",
    "attender": "conversation.attender.updated",
    "visitor_message": "conversation.visitor.replied",
    "operator_message": "conversation.operator.replied",
    "transfer_initiated": "conversation.transfer.initiated",
    "transfer_accepted": "conversation.transfer.accepted",
    "transfer_rejected": "conversation.transfer.rejected",
    "completed": "conversation.completed",
    "missed": "conversation.missed",
    "rated": "conversation.rated",
    "operator_profile": "operator.updated",
    "participants_added": "conversation.participants.added",
    "participants_deleted": "conversation.participants.deleted",
    "supervisor_added": "conversation.supervisor.added",
    "message_edited": "conversation.message.edited",
    "message_deleted": "conversation.message.deleted",
}
REFERENCE_EVENT_NAMES: dict[str, str] = {
    "created": "chat.started",
    "visitor_message": "message.received",
    "operator_message": "message.received",
    "completed": "chat.ended",
    "missed": "chat.missed",
    "rated": "chat.rating",
    "operator_presence": "operator.status_changed",
}
V2_EVENTS = frozenset(V2_EVENT_NAMES.values())
# The reference document lists more events than the simulator ever fires; a
# webhook may still subscribe to them.
REFERENCE_EVENTS = frozenset(
    [
        *REFERENCE_EVENT_NAMES.values(),
        "visitor.identified",
        "visitor.online",
        "visitor.offline",
        "lead.created",
        "trigger.executed",
    ]
)


class WorldError(Exception):
    """A mutation that the current state does not allow (the API maps it to its own code)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class World:
    def __init__(self, clock: Clock, ids: IdGen) -> None:
        self.clock = clock
        self.ids = ids
        self.portals: dict[str, Portal] = {}  # by screen name
        self.conversation_portal: dict[str, Portal] = {}
        self.operator_portal: dict[str, Portal] = {}
        # Past this many ended conversations a portal forgets the oldest, once they ended
        # more than KEEP_ENDED_SECONDS ago (memory stays bounded by a day's chats).
        self.max_ended_per_portal = 2000
        # Called with every Event; the simulator turns them into deliveries.
        self.on_event: Callable[[Event], None] = lambda event: None
        # Called whenever a conversation changed, so life can re-plan it.
        self.on_conversation_change: Callable[[Conversation, float], None] = lambda c, now: None

    # ----- lookups -------------------------------------------------------------------------

    def portal_for_conversation(self, conversation_id: str) -> Portal | None:
        return self.conversation_portal.get(conversation_id)

    def conversation(self, conversation_id: str) -> Conversation | None:
        portal = self.conversation_portal.get(conversation_id)
        return portal.conversations.get(conversation_id) if portal else None

    def operator(self, operator_id: str) -> Operator | None:
        portal = self.operator_portal.get(operator_id)
        return portal.operators.get(operator_id) if portal else None

    def portals_in_dc(self, dc: str) -> Iterable[Portal]:
        return (p for p in self.portals.values() if p.dc == dc)

    # ----- building ------------------------------------------------------------------------

    def add_department(self, portal: Portal, name: str) -> Department:
        dept = Department(id=self.ids(), name=name, display_name=name)
        portal.departments[dept.id] = dept
        return dept

    def add_operator(self, portal: Portal, operator: Operator) -> Operator:
        portal.operators[operator.id] = operator
        self.operator_portal[operator.id] = portal
        return operator

    def new_conversation(
        self,
        portal: Portal,
        *,
        visitor: Visitor,
        department_id: str,
        question: str,
        start_time: float,
        emit: bool = True,
        now: float | None = None,
    ) -> Conversation:
        portal.reference_counter += 1
        conv_id = self.ids()
        conv = Conversation(
            id=conv_id,
            portal_id=portal.id,
            reference_id=str(portal.reference_counter),
            chat_id=f"LD_{conv_id}",
            visitor=visitor,
            department_id=department_id,
            question=question,
            start_time=start_time,
            last_modified_time=start_time,
        )
        portal.conversations[conv.id] = conv
        portal.open_ids[conv.id] = None
        self.conversation_portal[conv.id] = portal
        self._add_message(conv, "visitor", visitor.id, visitor.name, question, start_time)
        now = start_time if now is None else now
        if emit:
            self._emit(portal, "created", now, conversation=conv)
        self.on_conversation_change(conv, now)
        return conv

    # ----- mutations (conversation) --------------------------------------------------------

    def pickup(self, conv: Conversation, op: Operator, now: float) -> None:
        portal = self._portal(conv)
        if not conv.is_open:
            raise WorldError("not_open")
        self._attach(conv, op)
        conv.status = "connected"
        if conv.attended_time is None:
            conv.attended_time = now
        conv.last_modified_time = now
        conv.next_speaker = "operator"
        self._emit(portal, "attender", now, conversation=conv)
        self.on_conversation_change(conv, now)

    def message(
        self,
        conv: Conversation,
        sender_type: str,
        text: str,
        now: float,
        *,
        by: Operator | None = None,
    ) -> Message:
        """A line in ``conv``: the visitor's, or an operator's (its attender's, or ``by``'s:
        the API's connected user writing in a chat they may not attend, as a supervisor)."""
        portal = self._portal(conv)
        if not conv.is_open:
            raise WorldError("not_open")
        if sender_type == "operator":
            op = by or portal.operators.get(conv.attender_id or "")
            if op is None:
                raise WorldError("no_attender")
            sender_id, sender_name = op.id, op.name
            op.last_active = now
            kind = "operator_message"
        else:
            sender_id, sender_name = conv.visitor.id, conv.visitor.name
            kind = "visitor_message"
        msg = self._add_message(conv, sender_type, sender_id, sender_name, text, now)
        # A settled transfer is shown until the conversation moves on.
        if conv.transfer and conv.transfer["status"] != "initiated":
            conv.transfer = None
        conv.last_modified_time = now
        conv.next_speaker = "visitor" if sender_type == "operator" else "operator"
        self._emit(portal, kind, now, conversation=conv, message=msg)
        self.on_conversation_change(conv, now)
        return msg

    def transfer_initiate(
        self,
        conv: Conversation,
        department: Department,
        operator: Operator | None,
        note: str | None,
        now: float,
    ) -> None:
        portal = self._portal(conv)
        if not conv.is_open:
            raise WorldError("not_open")
        conv.transfer = {
            "status": "initiated",
            "to_operator": {"id": operator.id, "name": operator.name} if operator else None,
            "to_department": {"id": department.id, "name": department.name},
            "note": note or "",
            "initiated_time": now,
        }
        conv.last_modified_time = now
        self._emit(portal, "transfer_initiated", now, conversation=conv)
        self.on_conversation_change(conv, now)

    def transfer_settle(self, conv: Conversation, accepted: bool, now: float) -> bool:
        """Accept or reject a pending transfer; returns whether it was accepted."""
        portal = self._portal(conv)
        if not conv.transfer or conv.transfer["status"] != "initiated":
            raise WorldError("no_transfer")
        target_dept = conv.transfer["to_department"]["id"]
        target_op = None
        if accepted:
            wanted = conv.transfer.get("to_operator")
            if wanted:
                target_op = portal.operators.get(wanted["id"])
                if target_op is not None and target_op.presence == "offline":
                    target_op = None
            else:
                target_op = next(
                    (
                        op
                        for op in portal.operators.values()
                        if target_dept in op.department_ids
                        and op.has_capacity
                        and op.id != conv.attender_id
                    ),
                    None,
                )
            # Nobody there to take it: a transfer to an empty department bounces.
            if target_op is None and conv.status == "connected":
                accepted = False
        conv.transfer_due_at = None
        conv.last_modified_time = now
        if not accepted:
            conv.transfer["status"] = "rejected"
            self._emit(portal, "transfer_rejected", now, conversation=conv)
            self.on_conversation_change(conv, now)
            return False
        conv.transfer["status"] = "accepted"
        conv.department_id = target_dept
        self._emit(portal, "transfer_accepted", now, conversation=conv)
        if target_op is not None:
            self._attach(conv, target_op)
            conv.status = "connected"
            if conv.attended_time is None:
                conv.attended_time = now
            conv.next_speaker = "operator"
            self._emit(portal, "attender", now, conversation=conv)
        self.on_conversation_change(conv, now)
        return True

    def close(self, conv: Conversation, now: float) -> None:
        portal = self._portal(conv)
        if not conv.is_open:
            raise WorldError("not_open")
        self._end(portal, conv, "closed", now)
        self._emit(portal, "completed", now, conversation=conv)
        self.on_conversation_change(conv, now)

    def miss(self, conv: Conversation, now: float) -> None:
        portal = self._portal(conv)
        if not conv.is_open:
            raise WorldError("not_open")
        self._end(portal, conv, "missed", now)
        self._emit(portal, "missed", now, conversation=conv)
        self.on_conversation_change(conv, now)

    def rate(self, conv: Conversation, rating: int, feedback: str | None, now: float) -> None:
        portal = self._portal(conv)
        conv.rating = rating
        conv.feedback = feedback
        conv.rating_due_at = None
        conv.last_modified_time = now
        self._emit(portal, "rated", now, conversation=conv)
        self.on_conversation_change(conv, now)

    # Reference: https://www.zoho.com/salesiq/help/webhook-events-conversation.html
    # (participants.added / .deleted, supervisor.added, message.edited / .deleted)
    def add_participant(self, conv: Conversation, op: Operator, role: str, now: float) -> None:
        """``op`` joins the chat: invited in as an operator, or as a supervisor."""
        portal = self._portal(conv)
        if not conv.is_open:
            raise WorldError("not_open")
        if role not in ("operator", "supervisor"):
            raise WorldError("bad_role")
        if op.id == conv.attender_id or op.id in conv.participants:
            raise WorldError("already_in_chat")
        person = {
            "id": op.id,
            "name": op.name,
            "email_id": op.email,
            "type": role,
            "joined_time": ms(now),
        }
        conv.participants[op.id] = person
        conv.last_modified_time = now
        kind = "supervisor_added" if role == "supervisor" else "participants_added"
        self._emit(portal, kind, now, conversation=conv, participant=dict(person))

    def remove_participant(self, conv: Conversation, op: Operator, now: float) -> None:
        portal = self._portal(conv)
        person = conv.participants.pop(op.id, None)
        if person is None:
            raise WorldError("not_in_chat")
        conv.last_modified_time = now
        self._emit(portal, "participants_deleted", now, conversation=conv, participant=person)

    def edit_message(self, conv: Conversation, msg: Message, text: str, now: float) -> None:
        portal = self._portal(conv)
        if msg.deleted_time is not None:
            raise WorldError("message_deleted")
        msg.text = text
        msg.edited_time = now
        conv.last_modified_time = now
        self._emit(portal, "message_edited", now, conversation=conv, message=msg)

    def delete_message(self, conv: Conversation, msg: Message, now: float) -> None:
        portal = self._portal(conv)
        if msg.deleted_time is not None:
            raise WorldError("message_deleted")
        msg.deleted_time = now
        conv.last_modified_time = now
        self._emit(portal, "message_deleted", now, conversation=conv, message=msg)

    # ----- mutations (operator) ------------------------------------------------------------

    def set_presence(self, op: Operator, presence: str, now: float) -> None:
        if presence not in PRESENCES:
            raise WorldError("bad_status")
        portal = self.operator_portal[op.id]
        previous = op.presence
        if previous == presence:
            return
        op.presence = presence
        # v2 clients poll presence with last_sync_time, so presence bumps modified_time.
        op.modified_time = now
        op.last_active = now
        self._emit(portal, "operator_presence", now, operator=op, previous_presence=previous)

    def update_profile(self, op: Operator, changes: dict[str, Any], now: float) -> None:
        portal = self.operator_portal[op.id]
        for key in ("first_name", "last_name", "nick_name", "role"):
            if key in changes and isinstance(changes[key], str):
                setattr(op, key, changes[key])
        if "max_chats" in changes:
            op.max_chats = int(changes["max_chats"])
        if "is_enabled" in changes:
            op.is_enabled = bool(changes["is_enabled"])
        op.modified_time = now
        self._emit(portal, "operator_profile", now, operator=op)

    # ----- internals -----------------------------------------------------------------------

    def _portal(self, conv: Conversation) -> Portal:
        return self.conversation_portal[conv.id]

    def _attach(self, conv: Conversation, op: Operator) -> None:
        if conv.attender_id:
            previous = self.operator(conv.attender_id)
            if previous is not None:
                previous.chat_ids.discard(conv.id)
        conv.attender_id = op.id
        op.chat_ids.add(conv.id)

    def _end(self, portal: Portal, conv: Conversation, status: str, now: float) -> None:
        if conv.attender_id:
            op = portal.operators.get(conv.attender_id)
            if op is not None:
                op.chat_ids.discard(conv.id)
        conv.status = status
        conv.end_time = now
        conv.last_modified_time = now
        if conv.transfer and conv.transfer["status"] == "initiated":
            conv.transfer = None
        portal.open_ids.pop(conv.id, None)
        portal.ended_ids[conv.id] = None
        # Bound memory in a long demo: forget the oldest ended conversations, but only once
        # they are older than any business day a dashboard may still read back.
        while len(portal.ended_ids) > self.max_ended_per_portal:
            old_id = next(iter(portal.ended_ids))
            old = portal.conversations.get(old_id)
            if old is not None and (old.end_time or 0) > now - KEEP_ENDED_SECONDS:
                break  # ended_ids is in order of ending: the rest are younger still
            del portal.ended_ids[old_id]
            portal.conversations.pop(old_id, None)
            self.conversation_portal.pop(old_id, None)

    def _add_message(
        self,
        conv: Conversation,
        sender_type: str,
        sender_id: str,
        sender_name: str,
        text: str,
        now: float,
    ) -> Message:
        msg = Message(
            id=self.ids(),
            sequence_id=len(conv.messages) + 1,
            sender_type=sender_type,
            sender_id=sender_id,
            sender_name=sender_name,
            text=text,
            time=now,
        )
        conv.messages.append(msg)
        return msg

    def _emit(self, portal: Portal, kind: str, now: float, **kwargs: Any) -> None:
        self.on_event(Event(portal=portal, kind=kind, time=now, **kwargs))


def conversations_newest_first(
    portal: Portal, statuses: Iterable[str] | None
) -> Iterator[Conversation]:
    """Open conversations (newest first) then ended ones (latest ended first), limited to
    ``statuses`` when given; walks the indexes, never sorts."""
    wanted = set(statuses) if statuses is not None else None
    convs = portal.conversations
    if wanted is None or wanted & set(OPEN_STATUSES):
        for cid in reversed(portal.open_ids):
            conv = convs[cid]
            if wanted is None or conv.status in wanted:
                yield conv
    if wanted is None or wanted - set(OPEN_STATUSES):
        for cid in reversed(portal.ended_ids):
            conv = convs.get(cid)
            if conv is not None and (wanted is None or conv.status in wanted):
                yield conv


# ----- serialisation ---------------------------------------------------------------------------


def v2_conversation(portal: Portal, conv: Conversation) -> dict[str, Any]:
    dept = portal.departments.get(conv.department_id)
    data: dict[str, Any] = {
        "id": conv.id,
        "reference_id": conv.reference_id,
        "chat_id": conv.chat_id,
        "type": "chat",
        "status": conv.status,
        "chat_status": dict(CHAT_STATUS[conv.status]),
        "question": conv.question,
        "visitor": {
            "id": conv.visitor.id,
            "name": conv.visitor.name,
            "email": conv.visitor.email,
            "ip": conv.visitor.ip,
            "country": conv.visitor.country,
        },
        "department": {"id": conv.department_id, "name": dept.name if dept else ""},
        "start_time": ms(conv.start_time),
        "attended_time": ms(conv.attended_time),
        "end_time": ms(conv.end_time),
        "last_modified_time": ms(conv.last_modified_time),
        "last_message_info": None,
        "rating": conv.rating,
        "feedback": conv.feedback,
    }
    if conv.attender_id:
        op = portal.operators.get(conv.attender_id)
        if op is not None:
            data["attender"] = {"id": op.id, "name": op.name, "email": op.email, "is_bot": False}
    if conv.messages:
        last = conv.messages[-1]
        data["last_message_info"] = {
            "sequence_id": str(last.sequence_id),
            "sender": {"id": last.sender_id, "name": last.sender_name, "type": last.sender_type},
            "type": "text",
            "message": {"text": last.text},
            "time": ms(last.time),
        }
    if conv.transfer:
        data["transfer"] = {
            "status": conv.transfer["status"],
            "to_operator": conv.transfer["to_operator"],
            "to_department": conv.transfer["to_department"],
            "note": conv.transfer["note"],
        }
    return data


def v2_message(msg: Message) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": msg.id,
        "sequence_id": str(msg.sequence_id),
        "sender": {"id": msg.sender_id, "name": msg.sender_name, "type": msg.sender_type},
        "type": "text",
        "message": {"text": "" if msg.deleted_time is not None else msg.text},
        "time": ms(msg.time),
    }
    if msg.edited_time is not None:
        data["edited_time"] = ms(msg.edited_time)
    if msg.deleted_time is not None:
        data["deleted_time"] = ms(msg.deleted_time)
    return data


def v2_operator(portal: Portal, op: Operator) -> dict[str, Any]:
    return {
        "id": op.id,
        "zuid": op.zuid,
        "email_id": op.email,
        "first_name": op.first_name,
        "last_name": op.last_name,
        "nick_name": op.nick_name,
        "status_code": PRESENCE_TO_V2_CODE[op.presence],
        "status_message": PRESENCE_TO_V2_MESSAGE[op.presence],
        "is_enabled": op.is_enabled,
        "role": op.role,
        "departments": [
            {"id": d, "name": portal.departments[d].name}
            for d in op.department_ids
            if d in portal.departments
        ],
        "maximum_concurrent_chat": str(op.max_chats),
        "modified_time": ms(op.modified_time),
    }


def v2_department(dept: Department) -> dict[str, Any]:
    return {
        "id": dept.id,
        "name": dept.name,
        "display_name": dept.display_name,
        "is_enabled": dept.is_enabled,
    }


def v2_webhook(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "type": hook.type,
        "url": hook.url,
        "events": list(hook.events),
        "version": hook.version,
        "enabled": hook.enabled,
        "created_time": ms(hook.created_time),
        # Reference: https://www.zoho.com/salesiq/help/developer-section/generate-public-key-webhook-v2.html
        "public_keys": [
            {
                "key": k.public_b64,
                "creator": {"id": k.creator_id},
                "created_time": ms(k.created_time),
                "id": k.id,
            }
            for k in hook.keys
        ],
    }


def reference_chat(
    portal: Portal, conv: Conversation, now: float, *, transcript: bool = False
) -> dict[str, Any]:
    end = conv.end_time if conv.end_time is not None else now
    data: dict[str, Any] = {
        "id": conv.id,
        "visitor_id": conv.visitor.id,
        "operator_id": conv.attender_id,
        "department_id": conv.department_id,
        "status": REFERENCE_STATUS[conv.status],
        "type": "live_chat",
        "started_at": iso(conv.start_time),
        "ended_at": iso(conv.end_time),
        "duration": max(0, int(end - conv.start_time)),
        "rating": conv.rating,
        "feedback": conv.feedback,
        "visitor_info": {
            "name": conv.visitor.name,
            "email": conv.visitor.email,
            "city": conv.visitor.city,
            "country": conv.visitor.country,
        },
    }
    if transcript:
        data["transcript"] = [reference_message(m) for m in conv.messages]
    return data


def reference_message(msg: Message) -> dict[str, Any]:
    return {
        "id": msg.id,
        "sender_type": "system" if msg.sender_type == "bot" else msg.sender_type,
        "sender_id": msg.sender_id,
        "message": msg.text,
        "timestamp": iso(msg.time),
        "type": "text",
    }


def reference_operator(portal: Portal, op: Operator) -> dict[str, Any]:
    first_dept = portal.departments.get(op.department_ids[0]) if op.department_ids else None
    return {
        "id": op.id,
        "name": op.name,
        "email": op.email,
        "status": op.presence,
        "availability": PRESENCE_TO_AVAILABILITY[op.presence],
        "role": REFERENCE_ROLE.get(op.role, "agent"),
        "department_id": first_dept.id if first_dept else None,
        "department_name": first_dept.name if first_dept else None,
        "max_chats": op.max_chats,
        "active_chats": len(op.chat_ids),
        "last_active": iso(op.last_active),
    }


def reference_webhook(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "name": hook.name,
        "url": hook.url,
        "events": list(hook.events),
        "enabled": hook.enabled,
        "created_at": iso(hook.created_time),
    }


def state_conversation(portal: Portal, conv: Conversation) -> dict[str, Any]:
    """The dialect-neutral form /_sim/state and the scene helpers answer with."""
    last = conv.messages[-1] if conv.messages else None
    return {
        "id": conv.id,
        "portal": portal.screen_name,
        "reference_id": conv.reference_id,
        "status": conv.status,
        "visitor": {"id": conv.visitor.id, "name": conv.visitor.name, "email": conv.visitor.email},
        "department_id": conv.department_id,
        "attender_id": conv.attender_id,
        "question": conv.question,
        "start_time": ms(conv.start_time),
        "attended_time": ms(conv.attended_time),
        "end_time": ms(conv.end_time),
        "last_modified_time": ms(conv.last_modified_time),
        "message_count": len(conv.messages),
        "last_message": (
            {"sender_type": last.sender_type, "text": last.text, "time": ms(last.time)}
            if last
            else None
        ),
        "rating": conv.rating,
        "feedback": conv.feedback,
        "participants": [dict(person) for person in conv.participants.values()],
        "transfer": (
            {k: v for k, v in conv.transfer.items() if k != "initiated_time"}
            if conv.transfer
            else None
        ),
    }


def state_operator(portal: Portal, op: Operator) -> dict[str, Any]:
    return {
        "id": op.id,
        "name": op.name,
        "email": op.email,
        "role": op.role,
        "presence": op.presence,
        "department_ids": list(op.department_ids),
        "max_chats": op.max_chats,
        "active_chats": sorted(op.chat_ids),
        "modified_time": ms(op.modified_time),
    }


def state_portal(portal: Portal) -> dict[str, Any]:
    return {
        "id": portal.id,
        "screen_name": portal.screen_name,
        "name": portal.name,
        "dialect": portal.dialect,
        "dc": portal.dc,
        "admin_email": portal.admin_email,
        "brand_id": portal.brand_id,
        "settings": {
            "rate_limit_per_minute": portal.settings.rate_limit_per_minute,
            "operator_status_for_others": portal.settings.operator_status_for_others,
            "close_method": portal.settings.close_method,
            "operator_status_method": portal.settings.operator_status_method,
            "pickup_method": portal.settings.pickup_method,
            "strict_webhook_urls": portal.settings.strict_webhook_urls,
            "visitor_interval": list(portal.settings.visitor_interval),
            "miss_after": portal.settings.miss_after,
        },
        "departments": [v2_department(d) for d in portal.departments.values()],
        "operators": [state_operator(portal, op) for op in portal.operators.values()],
        "conversations": [state_conversation(portal, c) for c in portal.conversations.values()],
        "open_conversation_ids": list(portal.open_ids),
        "webhooks": [
            {
                "id": h.id,
                "url": h.url,
                "events": list(h.events),
                "enabled": h.enabled,
                "name": h.name,
                "keys": [{"id": k.id, "created_time": ms(k.created_time)} for k in h.keys],
            }
            for h in portal.webhooks.values()
        ],
    }
