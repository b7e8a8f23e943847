"""What every SalesIQ dialect shares: the contract, the call and answer values, readers.

A dialect turns the dashboard's questions into SalesIQ calls and SalesIQ's answers,
errors and webhook documents into the normalised form (``..normalised``). ``Dialect``
declares every member a caller may use; where the two shapes of SalesIQ differ in what
they can do, a capability flag says so, so callers never ask which dialect they hold.
See ../shared/SALESIQ_API.md; the simulator's docs/simulator.md shows both shapes.
"""

from __future__ import annotations

import enum
import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, runtime_checkable

from .. import exceptions as exc
from ..normalised import (
    Conversation,
    Department,
    Message,
    Operator,
    OperatorStatus,
    Portal,
    SenderType,
    Webhook,
    WebhookEvent,
)

# --- small readers (shared by the dialects) ---------------------------------------


def as_str(value: Any) -> str:
    """An id or text as a string; ints are accepted but never floats (precision)."""
    if value is None:
        return ""
    if isinstance(value, float):
        # A float id has already lost digits somewhere upstream; refuse to guess.
        raise exc.MalformedPayload(detail="numeric id arrived as a float")
    return str(value)


def as_int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def epoch_ms(value: Any) -> datetime | None:
    """v2 times: epoch milliseconds, usually as strings."""
    number = as_int(value)
    if number is None or number <= 0:
        return None
    return datetime.fromtimestamp(number / 1000, tz=UTC)


def iso8601(value: Any) -> datetime | None:
    """Reference times: ISO 8601, 'Z' or an offset; naive means UTC."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


SENDER_TYPES = frozenset(member.value for member in SenderType)


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


class Purpose(enum.StrEnum):
    """What a call does, where a refusal means something particular to it (v2's 1016 on
    the status call is about whose status, not about the connected user's role)."""

    OTHER = "other"
    TRANSFER = "transfer"
    CLOSE = "close"
    OPERATOR_STATUS = "operator_status"
    MESSAGE = "message"
    PICKUP = "pickup"


@dataclass(frozen=True)
class Call:
    """One HTTP request to SalesIQ, relative to the dialect's base URL."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] | None = None
    # Safe to send again after a timeout or a 5xx: SalesIQ doing it twice changes nothing.
    idempotent: bool = True
    purpose: Purpose = Purpose.OTHER


@dataclass(frozen=True)
class Payload:
    """An unwrapped success: the ``data`` and what the envelope said about it."""

    data: Any
    meta: Mapping[str, Any]
    headers: Mapping[str, str]


def backoff_until(strikes: int) -> datetime:
    """v2 1023 gives no reset time: back off exponentially with jitter."""
    seconds = min(300.0, 15.0 * (2 ** min(strikes, 5)))
    seconds *= random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not security)
    return datetime.now(tz=UTC) + timedelta(seconds=seconds)


# --- the contract -----------------------------------------------------------------------

#: The capability flags every dialect declares (the contract test checks each one).
CAPABILITIES = (
    "lists_portals",
    "departments_by_brand",
    "has_webhook_keys",
    "can_set_others_status",
    "names_retry_time",
    "transfer_needs_department",
    "transfer_needs_operator",
    "transfer_needs_acceptance",
    "transfer_note_to_visitor",
    "addresses_name_portal",
    "lists_operator_changes",
    "presence_by_webhook",
    "lists_closed_conversations",
    "can_pick_up",
)


@runtime_checkable
class Dialect(Protocol):
    """Everything a caller may ask of a dialect. Both dialects implement every member;
    tests/test_dialect_contract.py fails when one gains a public member the other lacks."""

    name: ClassVar[str]
    scopes: ClassVar[tuple[str, ...]]
    page_size: ClassVar[int]  # the largest page of conversations (and messages)
    small_page_size: ClassVar[int]  # the page of operators and departments

    # Capabilities: what this shape of SalesIQ can do, so callers need not know its name.
    lists_portals: ClassVar[bool]  # GET /portals names the portals the grant reaches
    departments_by_brand: ClassVar[bool]  # departments are listed per brand, not at once
    has_webhook_keys: ClassVar[bool]  # webhooks are signed with keys SalesIQ hands out
    can_set_others_status: ClassVar[bool]  # the grant may set any operator's status
    names_retry_time: ClassVar[bool]  # a rate-limit refusal says when to try again
    transfer_needs_department: ClassVar[bool]  # a transfer must name a department
    transfer_needs_operator: ClassVar[bool]  # a transfer must name an operator
    # A transfer waits for the new operator to accept (a webhook or a poll says so).
    transfer_needs_acceptance: ClassVar[bool]
    settable_statuses: ClassVar[tuple[OperatorStatus, ...]]  # what the status call can set
    transfer_note_to_visitor: ClassVar[bool]  # a transfer's note is shown to the visitor
    addresses_name_portal: ClassVar[bool]  # the API address names the portal (screen name)
    lists_operator_changes: ClassVar[bool]  # operators can be listed changed-since
    presence_by_webhook: ClassVar[bool]  # operators' presence arrives by webhook
    # Ended and missed chats can be listed by when they began (a day's figures read back).
    lists_closed_conversations: ClassVar[bool]
    can_pick_up: ClassVar[bool]  # the grant's user can pick up a waiting chat themselves
    # The scope that lets the grant's user write in a chat (old grants may lack it).
    messaging_scope: ClassVar[str]
    # The scope that lets the dashboard change its webhook's events in place ("" when the
    # dashboard never does: the webhook is registered again instead). Old grants may lack it.
    webhook_update_scope: ClassVar[str]
    signature_header: ClassVar[str]  # the header a webhook delivery's signature comes in
    # (scope, resource) pairs: one small read per scope family proves a grant reaches it.
    reach_checks: ClassVar[tuple[tuple[str, str], ...]]

    def base_url(self, api_url: str, screen_name: str) -> str: ...

    def portals_url(self, api_url: str) -> str: ...

    # --- answers
    def unwrap(
        self, status: int, headers: Mapping[str, str], body: bytes, *, call: Call | None = None
    ) -> Payload: ...

    def error(
        self,
        document: dict,
        status: int,
        headers: Mapping[str, str] | None = None,
        *,
        call: Call | None = None,
    ) -> exc.SalesIQError: ...

    def paused_until(self, headers: Mapping[str, str]) -> datetime | None: ...

    # --- paging
    def page_params(self, page: int, size: int, *, listing: str = "") -> dict[str, Any]: ...

    def has_more(self, payload: Payload, size: int, got: int) -> bool: ...

    # --- calls
    def open_conversation_queries(self) -> list[dict[str, Any]]: ...

    def closed_conversation_queries(
        self, *, arrived_since: datetime, changed_since: datetime
    ) -> list[dict[str, Any]]: ...

    def conversations_path(self) -> str: ...

    def conversation_path(self, conversation_id: str) -> str: ...

    def messages_path(self, conversation_id: str) -> str: ...

    def operators_path(self) -> str: ...

    def departments_path(self) -> str: ...

    def brands_path(self) -> str: ...

    def brand_departments_path(self, brand_id: str) -> str: ...

    def webhooks_path(self) -> str: ...

    def webhook_path(self, webhook_id: str) -> str: ...

    def webhook_keys_path(self, webhook_id: str) -> str: ...

    def webhook_key_path(self, webhook_id: str, key_id: str) -> str: ...

    def transfer_call(
        self, conversation_id: str, *, department_id: str, operator_id: str, note: str
    ) -> Call: ...

    def close_call(self, conversation_id: str, *, message: str) -> Call: ...

    def operator_status_call(self, operator_id: str, status: OperatorStatus) -> Call: ...

    def send_message_call(self, conversation_id: str, *, text: str) -> Call: ...

    def pickup_call(self, conversation_id: str) -> Call: ...

    def operators_params(self, since: str | None) -> dict[str, Any]: ...

    def register_webhook_call(self, *, url: str, events: list[str], secret: str) -> Call: ...

    def update_webhook_call(self, webhook_id: str, *, events: list[str]) -> Call: ...

    # --- parsing
    def parse_conversation(self, raw: dict) -> Conversation: ...

    def parse_message(self, conversation_id: str, raw: dict) -> Message: ...

    def parse_operator(self, raw: dict) -> Operator: ...

    def parse_department(self, raw: dict) -> Department: ...

    def parse_portal(self, raw: dict) -> Portal: ...

    def parse_webhook(self, raw: dict) -> Webhook: ...

    def parse_event(self, document: dict) -> WebhookEvent: ...


# --- helpers ----------------------------------------------------------------------------


def delivery_key(dialect: str, document: dict) -> str:
    """What makes a delivery the same delivery: its whole content but the retry counter.

    A retry or a replay gives the same key; two different events that share a name, an
    entity and even a millisecond (a transfer's two attender updates) do not.
    """
    stripped = {key: value for key, value in document.items() if key != "attempt"}
    canonical = json.dumps(stripped, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{dialect}|{canonical}".encode()).hexdigest()


def with_time(message: Message, when: datetime | None) -> Message:
    return replace(message, sent_at=when)


# --- helpers ----------------------------------------------------------------------------


def json_or_none(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def snippet(body: bytes, limit: int = 200) -> str:
    text = body[:limit].decode("utf-8", errors="replace")
    return " ".join(text.split())


def reset_time(headers: Mapping[str, str] | None) -> datetime | None:
    if not headers:
        return None
    reset = as_int(headers.get("X-RateLimit-Reset") or headers.get("x-ratelimit-reset"))
    if reset:
        return datetime.fromtimestamp(reset, tz=UTC)
    retry_after = as_int(headers.get("Retry-After") or headers.get("retry-after"))
    if retry_after is not None:
        return datetime.now(tz=UTC) + timedelta(seconds=retry_after)
    return None
