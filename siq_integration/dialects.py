"""The two shapes of SalesIQ: paths, envelopes, errors and fields → one normalised form.

``V2`` is the real, documented SalesIQ REST API v2 (screen name in every path,
HTTP 200 with an ``error`` key on failure, epoch-ms strings, ``conversation.*``
events, RSA-signed webhooks). ``REFERENCE`` is the older reference shape
(``/chats``, HTTP status codes, ISO 8601, ``chat.*`` events, HMAC webhooks).
See ../shared/SALESIQ_API.md; the simulator's docs/simulator.md shows both.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from . import exceptions as exc
from .normalised import (
    ChatStatus,
    Conversation,
    Department,
    EventKind,
    Message,
    Operator,
    OperatorStatus,
    Portal,
    SenderType,
    Transfer,
    Visitor,
    Webhook,
    WebhookEvent,
    WebhookKey,
)

# --- small readers -----------------------------------------------------------------


def _str(value: Any) -> str:
    """An id or text as a string; ints are accepted but never floats (precision)."""
    if value is None:
        return ""
    if isinstance(value, float):
        # A float id has already lost digits somewhere upstream; refuse to guess.
        raise exc.MalformedPayload(detail="numeric id arrived as a float")
    return str(value)


def _int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def epoch_ms(value: Any) -> datetime | None:
    """v2 times: epoch milliseconds, usually as strings."""
    number = _int(value)
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


_SENDER_TYPES = frozenset(member.value for member in SenderType)


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Call:
    """One HTTP request to SalesIQ, relative to the dialect's base URL."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] | None = None
    # Safe to send again after a timeout or a 5xx: SalesIQ doing it twice changes nothing.
    idempotent: bool = True


@dataclass(frozen=True)
class Payload:
    """An unwrapped success: the ``data`` and what the envelope said about it."""

    data: Any
    meta: Mapping[str, Any]
    headers: Mapping[str, str]


def _backoff_until(strikes: int) -> datetime:
    """v2 1023 gives no reset time: back off exponentially with jitter."""
    seconds = min(300.0, 15.0 * (2 ** min(strikes, 5)))
    seconds *= random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not security)
    return datetime.now(tz=UTC) + timedelta(seconds=seconds)


class Dialect:
    name: str
    scopes: tuple[str, ...]
    page_size: int

    def base_url(self, api_url: str, screen_name: str) -> str:
        raise NotImplementedError

    def unwrap(self, status: int, headers: Mapping[str, str], body: bytes) -> Payload:
        raise NotImplementedError


# =====================================================================================
# v2
# =====================================================================================

V2_SCOPES = (
    "SalesIQ.conversations.READ",
    "SalesIQ.conversations.UPDATE",
    "SalesIQ.operators.READ",
    "SalesIQ.operators.UPDATE",
    "SalesIQ.departments.READ",
    "SalesIQ.webhooks.READ",
    "SalesIQ.webhooks.CREATE",
    "SalesIQ.webhooks.DELETE",
    "SalesIQ.portals.READ",
)

V2_EVENTS = {
    "conversation.created": EventKind.CHAT_CREATED,
    "conversation.attender.updated": EventKind.CHAT_ATTENDER_CHANGED,
    "conversation.visitor.replied": EventKind.VISITOR_MESSAGE,
    "conversation.operator.replied": EventKind.OPERATOR_MESSAGE,
    "conversation.transfer.initiated": EventKind.TRANSFER_INITIATED,
    "conversation.transfer.accepted": EventKind.TRANSFER_ACCEPTED,
    "conversation.transfer.rejected": EventKind.TRANSFER_REJECTED,
    "conversation.completed": EventKind.CHAT_ENDED,
    "conversation.missed": EventKind.CHAT_MISSED,
    "conversation.rated": EventKind.CHAT_RATED,
    "operator.updated": EventKind.OPERATOR_UPDATED,
}

# status_code: 1 Available and 3 Busy are Zoho's; 0 (offline) and 2 (away) are our reading.
V2_OPERATOR_STATUS = {
    1: OperatorStatus.AVAILABLE,
    2: OperatorStatus.AWAY,
    3: OperatorStatus.BUSY,
    0: OperatorStatus.OFFLINE,
}

V2_CHAT_STATUS = {
    "waiting": ChatStatus.WAITING,
    "connected": ChatStatus.CONNECTED,
    "open": ChatStatus.CONNECTED,
    "closed": ChatStatus.ENDED,
    "end": ChatStatus.ENDED,
    "ended": ChatStatus.ENDED,
    "completed": ChatStatus.ENDED,
    "missed": ChatStatus.MISSED,
}

_V2_NOT_FOUND = {
    1019: "SalesIQ no longer has that chat.",
    1020: "That operator does not belong to this portal (any more).",
    1024: "SalesIQ does not know that operator.",
    1025: "That department does not exist in SalesIQ (any more).",
}


class V2(Dialect):
    name = "v2"
    scopes = V2_SCOPES
    page_size = 99  # SalesIQ's maximum for conversations
    small_page_size = 20  # operators and departments come 20 a page

    def base_url(self, api_url: str, screen_name: str) -> str:
        if not screen_name:
            raise exc.Misconfigured(
                "This portal has no SalesIQ screen name yet. An admin needs to pick it.",
                code="no-screen-name",
            )
        return f"{api_url}/api/v2/{screen_name}"

    def portals_url(self, api_url: str) -> str:
        return f"{api_url}/api/v2/portals"

    # --- envelope ---------------------------------------------------------------------

    def unwrap(self, status: int, headers: Mapping[str, str], body: bytes) -> Payload:
        document = _json_or_none(body)
        # An error key means failure whatever the HTTP status says (v2 answers errors with 200).
        if isinstance(document, dict) and isinstance(document.get("error"), dict):
            raise self.error(document["error"], status)
        if status >= 500 or status in (408, 425):
            raise exc.Unavailable(http_status=status, detail=_snippet(body))
        if status == 429:
            raise exc.RateLimited(retry_at=_backoff_until(0), http_status=status)
        if status >= 400 or not isinstance(document, dict) or "data" not in document:
            if status < 400 and isinstance(document, dict):
                # A 2xx without data (a delete, say) is still a success.
                return Payload(data=None, meta=document, headers=headers)
            raise exc.SalesIQError(
                "SalesIQ gave an answer the dashboard does not understand.",
                http_status=status,
                detail=_snippet(body),
            )
        meta = {key: value for key, value in document.items() if key != "data"}
        return Payload(data=document["data"], meta=meta, headers=headers)

    def error(self, error: dict, status: int, *, strikes: int = 0) -> exc.SalesIQError:
        code = _int(error.get("code"))
        message = str(error.get("message") or "")
        detail = f"{message}".strip()
        kw = {"code": code, "http_status": status, "detail": detail}
        field_keys = {
            "param": _str(error.get("param")),
            "json_key": _str(error.get("json_key")),
            "header": _str(error.get("header")),
        }
        match code:
            case 1001:
                return exc.Unavailable("SalesIQ had an internal error.", **kw)
            case 1002 | 1054:
                return exc.Misconfigured(
                    "SalesIQ refused the dashboard's request headers. This is a bug in the "
                    "dashboard; the log has the details.",
                    **kw,
                )
            case 1004 | 1010:
                return exc.Misconfigured(
                    "SalesIQ refused the HTTP method of this call. An admin can change it in "
                    "SIQ_HTTP_METHODS.",
                    **kw,
                )
            case 1005:
                return exc.Misconfigured(
                    "SalesIQ does not know this portal's screen name, or the connected user "
                    "cannot reach it. An admin needs to check the screen name.",
                    **kw,
                )
            case 1006:
                return exc.Misconfigured(
                    "SalesIQ did not recognise the address. An admin needs to check the "
                    "portal's data centre and screen name.",
                    **kw,
                )
            case 1008:
                return exc.TokenInvalid(**kw)
            case 1009:
                return exc.ScopeMissing(**kw)
            case 1014:
                return exc.AlreadyExists(**kw)
            case 1016:
                return exc.PermissionDenied(**kw)
            case 1017 | 1021:
                return exc.PlanLimit(**kw)
            case 1019 | 1020 | 1024 | 1025:
                return exc.NotFound(_V2_NOT_FOUND[code], **kw)
            case 1023:
                return exc.RateLimited(
                    "SalesIQ says too many requests came from this dashboard and paused it.",
                    retry_at=_backoff_until(strikes),
                    **kw,
                )
            case 1026:
                return exc.BadRequest(
                    "SalesIQ will not remove the last one of those.", **field_keys, **kw
                )
            case 1007 | 1011 | 1015 | 1018 | 1027 | 1028 | 1029 | 1031:
                return exc.BadRequest(**field_keys, **kw)
            case _:
                return exc.SalesIQError(
                    f"SalesIQ refused the request (error {code})." if code else None, **kw
                )

    # --- paging ---------------------------------------------------------------------

    def page_params(self, page: int, size: int, *, listing: str = "") -> dict[str, Any]:
        """The query naming page ``page`` (from 1) of ``size`` items of ``listing``: each
        listing pages as its own page documents."""
        if listing == "conversations":
            # Reference: https://www.zoho.com/salesiq/help/developer-section/get-conversation-list-details-v2.html
            # "page" numbers the pages and "limit" sizes them (20 by default, at most 99).
            return {"page": page, "limit": min(size, self.page_size)}
        # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-operator-list.html
        # The operators list (and, as far as we know, the other lists) page by "index".
        return {"index": page, "limit": size}

    def has_more(self, payload: Payload, size: int, got: int) -> bool:
        more = payload.meta.get("more_data_available")
        if isinstance(more, bool):
            return more
        return got >= size

    # --- calls ----------------------------------------------------------------------

    def open_conversation_queries(self) -> list[dict[str, Any]]:
        return [{"status": "open"}]

    def conversations_path(self) -> str:
        return "/conversations"

    def conversation_path(self, conversation_id: str) -> str:
        return f"/conversations/{conversation_id}"

    def messages_path(self, conversation_id: str) -> str:
        return f"/conversations/{conversation_id}/messages"

    def transfer_call(
        self, conversation_id: str, *, department_id: str, operator_id: str, note: str
    ) -> Call:
        if not department_id:
            raise exc.BadRequest(
                "SalesIQ needs a department to transfer a chat to.", json_key="department_id"
            )
        body: dict[str, Any] = {"department_id": department_id}
        if operator_id:
            body["operator_id"] = operator_id
        if note:
            body["note"] = note
        # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
        return Call(
            "PUT", f"/conversations/{conversation_id}/transfer", json=body, idempotent=False
        )

    def close_call(self, conversation_id: str, *, message: str) -> Call:
        method = settings.SIQ_HTTP_METHODS["v2.conversation_close"]
        return Call(method, f"/conversations/{conversation_id}/close", json={}, idempotent=False)

    def operator_status_call(self, operator_id: str, status: OperatorStatus) -> Call:
        values = {OperatorStatus.AVAILABLE: "Available", OperatorStatus.BUSY: "Busy"}
        if status not in values:
            raise exc.BadRequest(
                "SalesIQ v2 can only set an operator to Available or Busy.", json_key="status"
            )
        method = settings.SIQ_HTTP_METHODS["v2.operator_status"]
        return Call(
            method,
            f"/operators/{operator_id}/status",
            json={"status": values[status]},
            idempotent=True,
        )

    def operators_params(self, since: str | None) -> dict[str, Any]:
        return {"last_sync_time": since} if since else {}

    def register_webhook_call(self, *, url: str, events: list[str], secret: str) -> Call:
        body = {"type": "data", "url": url, "events": events, "version": "1"}
        return Call("POST", "/webhooks", json=body, idempotent=False)

    # --- parsing --------------------------------------------------------------------

    def parse_conversation(self, raw: dict) -> Conversation:
        raw = _dict(raw)
        state = _dict(raw.get("chat_status"))
        status_key = str(state.get("state_key") or raw.get("status") or "").lower()
        status = V2_CHAT_STATUS.get(status_key)
        attender = _dict(raw.get("attender"))
        if status is None:
            status = ChatStatus.CONNECTED if attender.get("id") else ChatStatus.WAITING
        if status is ChatStatus.CONNECTED and not attender.get("id"):
            status = ChatStatus.WAITING
        if status.is_open and epoch_ms(raw.get("end_time")):
            status = ChatStatus.ENDED  # an end time settles it whatever the label says
        visitor = _dict(raw.get("visitor"))
        department = _dict(raw.get("department"))
        conversation_id = _str(raw.get("id"))
        transfer_raw = _dict(raw.get("transfer"))
        transfer = None
        if transfer_raw:
            to_operator = _dict(transfer_raw.get("to_operator"))
            to_department = _dict(transfer_raw.get("to_department"))
            transfer = Transfer(
                status=str(transfer_raw.get("status") or ""),
                to_operator_id=_str(to_operator.get("id")),
                to_operator_name=_str(to_operator.get("name")),
                to_department_id=_str(to_department.get("id")),
                to_department_name=_str(to_department.get("name")),
                note=_str(transfer_raw.get("note")),
            )
        return Conversation(
            id=conversation_id,
            reference_id=_str(raw.get("reference_id")),
            status=status,
            visitor=Visitor(
                id=_str(visitor.get("id")),
                name=_str(visitor.get("name")),
                email=_str(visitor.get("email")),
                details={
                    key: _str(visitor.get(key))
                    for key in ("ip", "city", "country", "browser", "os", "phone")
                    if visitor.get(key)
                },
            ),
            started_at=epoch_ms(raw.get("start_time")),
            operator_id=_str(attender.get("id")),
            operator_name=_str(attender.get("name")),
            department_id=_str(department.get("id")),
            department_name=_str(department.get("name")),
            question=_str(raw.get("question")),
            attended_at=epoch_ms(raw.get("attended_time")),
            ended_at=epoch_ms(raw.get("end_time")),
            last_message=self._last_message(conversation_id, raw.get("last_message_info")),
            rating=_int(raw.get("rating")),
            feedback=_str(raw.get("feedback")),
            transfer=transfer,
            modified_at=epoch_ms(raw.get("last_modified_time")),
        )

    def _last_message(self, conversation_id: str, raw: Any) -> Message | None:
        raw = _dict(raw)
        if not raw:
            return None
        return self.parse_message(conversation_id, raw)

    def parse_message(self, conversation_id: str, raw: dict) -> Message:
        raw = _dict(raw)
        sender = _dict(raw.get("sender"))
        sender_id = _str(sender.get("id"))
        kind = str(sender.get("type") or "").lower()
        if kind in _SENDER_TYPES:
            sender_type = SenderType(kind)
        elif sender.get("is_bot"):
            sender_type = SenderType.BOT
        elif sender_id.startswith("$"):
            sender_type = SenderType.VISITOR  # visitor ids carry a leading $
        elif sender_id:
            sender_type = SenderType.OPERATOR
        else:
            sender_type = SenderType.SYSTEM
        body = raw.get("message")
        text = _str(_dict(body).get("text")) if isinstance(body, dict) else _str(body)
        return Message(
            # The sequence number names a message the same way in a conversation's
            # last_message_info and in its messages list; the id may not.
            id=_str(raw.get("sequence_id") or raw.get("id")),
            chat_id=conversation_id,
            sender_type=sender_type,
            sender_id=sender_id,
            sender_name=_str(sender.get("name")),
            text=text,
            sent_at=epoch_ms(raw.get("time")),
        )

    # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-operator-list.html
    def parse_operator(self, raw: dict) -> Operator:
        raw = _dict(raw)
        first = _str(raw.get("first_name")).strip()
        last = _str(raw.get("last_name")).strip()
        nick = _str(raw.get("nick_name")).strip()
        email = _str(raw.get("email_id"))
        # The full name, as people know each other; the nickname ("patty" on Zoho's own
        # example) only when there is none: several operators often share a first name.
        name = " ".join(p for p in (first, last) if p) or nick or email
        departments = raw.get("departments") or []
        department_ids = tuple(
            _str(d.get("id")) if isinstance(d, dict) else _str(d) for d in departments
        )
        code = _int(raw.get("status_code"))
        # The list and the operator pages say is_enabled; the operator webhooks' entity, enabled.
        enabled = raw.get("is_enabled", raw.get("enabled"))
        return Operator(
            id=_str(raw.get("id")),
            name=name,
            email=email,
            first_name=first,
            last_name=last,
            nick_name=nick,
            status=V2_OPERATOR_STATUS.get(code, OperatorStatus.OFFLINE),
            status_message=_str(raw.get("status_message")),
            enabled=enabled not in (False, "false", "0", 0),
            department_ids=tuple(d for d in department_ids if d),
            max_chats=_int(raw.get("maximum_concurrent_chat")),
            role=_str(raw.get("role")),
            modified_at=epoch_ms(raw.get("modified_time")),
        )

    def parse_department(self, raw: dict) -> Department:
        raw = _dict(raw)
        enabled = raw.get("is_enabled")
        return Department(
            id=_str(raw.get("id")),
            name=_str(raw.get("display_name") or raw.get("name")),
            enabled=enabled not in (False, "false", "0", 0),
        )

    def parse_portal(self, raw: dict) -> Portal:
        raw = _dict(raw)
        screen = _str(raw.get("screenname") or raw.get("screen_name"))
        return Portal(
            id=_str(raw.get("id")),
            screen_name=screen,
            name=_str(raw.get("name") or raw.get("company_name") or screen),
        )

    def parse_webhook(self, raw: dict) -> Webhook:
        # Reference: https://www.zoho.com/salesiq/help/developer-section/generate-public-key-webhook-v2.html
        # object "webhook", public_keys: [{key, creator: {id}, created_time, id}].
        raw = _dict(raw)
        keys = tuple(
            WebhookKey(
                id=_str(key.get("id")),
                public_key_pem=_str(key.get("key")),
                created_at=epoch_ms(key.get("created_time")),
                creator_id=_str(_dict(key.get("creator")).get("id")),
            )
            for key in raw.get("public_keys") or []
            if isinstance(key, dict)
        )
        status = str(raw.get("status") or "enabled").lower()
        return Webhook(
            id=_str(raw.get("id")),
            url=_str(raw.get("url")),
            events=tuple(_str(e) for e in raw.get("events") or []),
            enabled=status == "enabled",
            public_keys=keys,
        )

    def parse_event(self, document: dict) -> WebhookEvent:
        name = str(document.get("event") or "")
        kind = V2_EVENTS.get(name, EventKind.UNKNOWN)
        entity = _dict(document.get("entity"))
        entity_type = str(document.get("entity_type") or "").lower()
        entity_id = _str(document.get("entity_id") or entity.get("id"))
        conversation = operator = message = None
        if kind is EventKind.UNKNOWN:
            pass
        elif entity_type == "operator" or name.startswith("operator."):
            operator = self.parse_operator(entity) if entity else None
        elif entity:
            conversation = self.parse_conversation(entity)
            if kind in (EventKind.VISITOR_MESSAGE, EventKind.OPERATOR_MESSAGE):
                message = conversation.last_message
        occurred_at = epoch_ms(document.get("event_time"))
        if occurred_at is None and conversation is not None:
            occurred_at = conversation.modified_at
        return WebhookEvent(
            kind=kind,
            name=name,
            dedupe_key=delivery_key("v2", document),
            occurred_at=occurred_at,
            entity_id=entity_id,
            conversation=conversation,
            operator=operator,
            message=message,
            chat_id=conversation.id if conversation else "",
            operator_id=operator.id if operator else "",
            rating=conversation.rating if conversation else None,
            feedback=conversation.feedback if conversation else "",
            attempt=_int(document.get("attempt")) or 1,
        )


# =====================================================================================
# reference
# =====================================================================================

REFERENCE_SCOPES = (
    "SalesIQ.chats.ALL",
    "SalesIQ.operators.ALL",
    "SalesIQ.settings.READ",
)

REFERENCE_EVENTS = {
    "chat.started": EventKind.CHAT_CREATED,
    "chat.ended": EventKind.CHAT_ENDED,
    "chat.missed": EventKind.CHAT_MISSED,
    "chat.rating": EventKind.CHAT_RATED,
    "message.received": EventKind.VISITOR_MESSAGE,  # refined by sender_type below
    "operator.status_changed": EventKind.OPERATOR_STATUS_CHANGED,
}

REFERENCE_OPERATOR_STATUS = {
    "online": OperatorStatus.AVAILABLE,
    "available": OperatorStatus.AVAILABLE,
    "busy": OperatorStatus.BUSY,
    "away": OperatorStatus.AWAY,
    "offline": OperatorStatus.OFFLINE,
}
_REFERENCE_STATUS_VALUES = {
    OperatorStatus.AVAILABLE: "online",
    OperatorStatus.BUSY: "busy",
    OperatorStatus.AWAY: "away",
    OperatorStatus.OFFLINE: "offline",
}

REFERENCE_CHAT_STATUS = {
    "waiting": ChatStatus.WAITING,
    "active": ChatStatus.CONNECTED,
    "ended": ChatStatus.ENDED,
    "closed": ChatStatus.ENDED,
    "missed": ChatStatus.MISSED,
}


class Reference(Dialect):
    name = "reference"
    scopes = REFERENCE_SCOPES
    page_size = 100
    small_page_size = 100

    def base_url(self, api_url: str, screen_name: str) -> str:
        return f"{api_url}/api/v2"

    def unwrap(self, status: int, headers: Mapping[str, str], body: bytes) -> Payload:
        document = _json_or_none(body)
        is_error = status >= 400 or (
            isinstance(document, dict)
            and (document.get("status") == "error" or "error" in document)
        )
        if is_error:
            raise self.error(document if isinstance(document, dict) else {}, status, headers)
        if status == 204 or not body.strip():
            return Payload(data=None, meta={}, headers=headers)
        if not isinstance(document, dict):
            raise exc.SalesIQError(
                "SalesIQ gave an answer the dashboard does not understand.",
                http_status=status,
                detail=_snippet(body),
            )
        meta = {key: value for key, value in document.items() if key != "data"}
        return Payload(data=document.get("data"), meta=meta, headers=headers)

    def error(
        self, document: dict, status: int, headers: Mapping[str, str] | None = None
    ) -> exc.SalesIQError:
        code = str(document.get("code") or "").upper()
        if not code and isinstance(document.get("error"), str):
            code = document["error"].upper()
        message = str(document.get("message") or "")
        details = _dict(document.get("details"))
        kw = {"code": code or None, "http_status": status, "detail": message}
        field_name = _str(details.get("field") or details.get("param"))
        match code:
            case "INVALID_TOKEN":
                return exc.TokenInvalid(**kw)
            case "INVALID_OAUTH_SCOPE":
                return exc.ScopeMissing(scope=_str(details.get("scope")), **kw)
            case "PERMISSION_DENIED":
                return exc.PermissionDenied(**kw)
            case "RESOURCE_NOT_FOUND":
                return exc.NotFound(**kw)
            case "CHAT_NOT_ACTIVE":
                return exc.ChatNotActive(**kw)
            case "OPERATOR_OFFLINE":
                return exc.OperatorOffline(**kw)
            case "INVALID_DEPARTMENT":
                return exc.NotFound("That department does not exist in SalesIQ (any more).", **kw)
            case "DUPLICATE_RESOURCE":
                return exc.AlreadyExists(**kw)
            case "RATE_LIMIT_EXCEEDED":
                return exc.RateLimited(retry_at=_reset_time(headers), **kw)
            case "INTERNAL_ERROR":
                return exc.Unavailable("SalesIQ had an internal error.", **kw)
            case "INVALID_REQUEST" | "REQUIRED_FIELD_MISSING" | "INVALID_VISITOR_ID":
                return exc.BadRequest(param=field_name, **kw)
        if status == 401:
            return exc.TokenInvalid(**kw)
        if status == 403:
            return exc.PermissionDenied(**kw)
        if status in (404, 410):
            return exc.NotFound(**kw)
        if status == 429:
            return exc.RateLimited(retry_at=_reset_time(headers), **kw)
        if status >= 500:
            return exc.Unavailable(**kw)
        if status == 400:
            return exc.BadRequest(param=field_name, **kw)
        return exc.SalesIQError(**kw)

    def page_params(self, page: int, size: int, *, listing: str = "") -> dict[str, Any]:
        return {"page": page, "per_page": size}

    def has_more(self, payload: Payload, size: int, got: int) -> bool:
        pagination = _dict(payload.meta.get("pagination"))
        total, page, per_page = (
            _int(pagination.get("total")),
            _int(pagination.get("page")),
            _int(pagination.get("per_page")),
        )
        if total is not None and page and per_page:
            return page * per_page < total
        return got >= size

    def open_conversation_queries(self) -> list[dict[str, Any]]:
        # "active" is connected chats only; waiting ones are asked for separately.
        return [{"status": "waiting"}, {"status": "active"}]

    def conversations_path(self) -> str:
        return "/chats"

    def conversation_path(self, conversation_id: str) -> str:
        return f"/chats/{conversation_id}"

    def messages_path(self, conversation_id: str) -> str:
        return f"/chats/{conversation_id}/transcript"

    def transfer_call(
        self, conversation_id: str, *, department_id: str, operator_id: str, note: str
    ) -> Call:
        if not operator_id:
            raise exc.BadRequest(
                "This portal's SalesIQ needs an operator to transfer a chat to.",
                param="operator_id",
            )
        body = {"operator_id": operator_id}
        if note:
            body["message"] = note
        return Call("POST", f"/chats/{conversation_id}/transfer", json=body, idempotent=False)

    def close_call(self, conversation_id: str, *, message: str) -> Call:
        body = {"message": message} if message else {}
        return Call("POST", f"/chats/{conversation_id}/end", json=body, idempotent=False)

    def operator_status_call(self, operator_id: str, status: OperatorStatus) -> Call:
        return Call(
            "PATCH",
            f"/operators/{operator_id}",
            json={"status": _REFERENCE_STATUS_VALUES[status]},
            idempotent=True,
        )

    def operators_params(self, since: str | None) -> dict[str, Any]:
        return {}  # no incremental sync in this dialect: always the full list

    def register_webhook_call(self, *, url: str, events: list[str], secret: str) -> Call:
        body = {
            "name": "SalesIQ Supervisor",
            "url": url,
            "events": events,
            "enabled": True,
            "secret": secret,
        }
        return Call("POST", "/webhooks", json=body, idempotent=False)

    # --- parsing --------------------------------------------------------------------

    def parse_conversation(self, raw: dict) -> Conversation:
        raw = _dict(raw)
        info = _dict(raw.get("visitor_info"))
        conversation_id = _str(raw.get("id") or raw.get("chat_id"))
        status = REFERENCE_CHAT_STATUS.get(str(raw.get("status") or "").lower())
        operator_id = _str(raw.get("operator_id"))
        if status is None:
            status = ChatStatus.CONNECTED if operator_id else ChatStatus.WAITING
        transcript = raw.get("transcript")
        last_message = None
        if isinstance(transcript, list) and transcript:
            last_message = self.parse_message(conversation_id, transcript[-1])
        return Conversation(
            id=conversation_id,
            status=status,
            visitor=Visitor(
                id=_str(raw.get("visitor_id")),
                name=_str(info.get("name") or raw.get("visitor_name")),
                email=_str(info.get("email") or raw.get("visitor_email")),
                details={
                    key: _str(info.get(key))
                    for key in ("phone", "city", "country", "browser", "platform")
                    if info.get(key)
                },
            ),
            started_at=iso8601(raw.get("started_at")),
            operator_id=operator_id,
            operator_name=_str(raw.get("operator_name")),
            department_id=_str(raw.get("department_id")),
            department_name=_str(raw.get("department_name")),
            ended_at=iso8601(raw.get("ended_at")),
            last_message=last_message,
            rating=_int(raw.get("rating")),
            feedback=_str(raw.get("feedback")),
        )

    def parse_message(self, conversation_id: str, raw: dict) -> Message:
        raw = _dict(raw)
        kind = str(raw.get("sender_type") or "").lower()
        sender_type = SenderType(kind) if kind in _SENDER_TYPES else SenderType.SYSTEM
        return Message(
            id=_str(raw.get("id") or raw.get("message_id")),
            chat_id=conversation_id or _str(raw.get("chat_id")),
            sender_type=sender_type,
            sender_id=_str(raw.get("sender_id")),
            sender_name=_str(raw.get("sender_name")),
            text=_str(raw.get("message")),
            sent_at=iso8601(raw.get("timestamp") or raw.get("sent_at")),
        )

    def parse_operator(self, raw: dict) -> Operator:
        raw = _dict(raw)
        status = REFERENCE_OPERATOR_STATUS.get(
            str(raw.get("status") or "").lower(), OperatorStatus.OFFLINE
        )
        department_ids = raw.get("department_ids")
        if not isinstance(department_ids, list):
            department_ids = [raw.get("department_id")]
        return Operator(
            id=_str(raw.get("id")),
            name=_str(raw.get("name")) or _str(raw.get("email")),
            email=_str(raw.get("email")),
            status=status,
            department_ids=tuple(_str(d) for d in department_ids if d),
            max_chats=_int(raw.get("max_chats")),
            active_chats=_int(raw.get("active_chats")),
            role=_str(raw.get("role")),
            modified_at=iso8601(raw.get("last_active")),
        )

    def parse_department(self, raw: dict) -> Department:
        raw = _dict(raw)
        enabled = raw.get("enabled", raw.get("is_enabled"))
        return Department(
            id=_str(raw.get("id")),
            name=_str(raw.get("name")),
            enabled=enabled not in (False, "false", "0", 0),
        )

    def parse_webhook(self, raw: dict) -> Webhook:
        raw = _dict(raw)
        return Webhook(
            id=_str(raw.get("id")),
            url=_str(raw.get("url")),
            events=tuple(_str(e) for e in raw.get("events") or []),
            enabled=raw.get("enabled", True) not in (False, "false"),
        )

    def parse_event(self, document: dict) -> WebhookEvent:
        name = str(document.get("event") or "")
        kind = REFERENCE_EVENTS.get(name, EventKind.UNKNOWN)
        data = _dict(document.get("data"))
        chat_id = _str(data.get("chat_id"))
        operator_id = _str(data.get("operator_id"))
        occurred_at = iso8601(document.get("timestamp"))
        conversation = message = operator = None
        operator_status = None
        if kind is EventKind.VISITOR_MESSAGE:
            message = self.parse_message(chat_id, data)
            if message.sender_type is SenderType.OPERATOR:
                kind = EventKind.OPERATOR_MESSAGE
            if message.sent_at is None:
                message = _with_time(message, occurred_at)
        elif kind is EventKind.OPERATOR_STATUS_CHANGED:
            operator_status = REFERENCE_OPERATOR_STATUS.get(str(data.get("status") or "").lower())
            if data.get("name") or data.get("email"):
                operator = Operator(
                    id=operator_id,
                    name=_str(data.get("name")),
                    email=_str(data.get("email")),
                    status=operator_status or OperatorStatus.OFFLINE,
                )
        elif kind is not EventKind.UNKNOWN and chat_id:
            status = {
                EventKind.CHAT_CREATED: ChatStatus.CONNECTED if operator_id else ChatStatus.WAITING,
                EventKind.CHAT_ENDED: ChatStatus.ENDED,
                EventKind.CHAT_MISSED: ChatStatus.MISSED,
                EventKind.CHAT_RATED: ChatStatus.ENDED,
            }[kind]
            conversation = Conversation(
                id=chat_id,
                status=status,
                visitor=Visitor(
                    id=_str(data.get("visitor_id")),
                    name=_str(data.get("visitor_name")),
                    email=_str(data.get("visitor_email")),
                ),
                started_at=iso8601(data.get("started_at")),
                operator_id=operator_id,
                operator_name=_str(data.get("operator_name")),
                department_id=_str(data.get("department_id")),
                department_name=_str(data.get("department_name")),
                ended_at=iso8601(data.get("ended_at")),
                rating=_int(data.get("rating")),
                feedback=_str(data.get("feedback")),
            )
        entity_id = chat_id or operator_id or _str(data.get("visitor_id"))
        return WebhookEvent(
            kind=kind,
            name=name,
            dedupe_key=delivery_key("reference", document),
            occurred_at=occurred_at,
            entity_id=entity_id,
            conversation=conversation,
            operator=operator,
            message=message,
            chat_id=chat_id,
            operator_id=operator_id,
            operator_status=operator_status,
            rating=_int(data.get("rating")),
            feedback=_str(data.get("feedback")),
        )


def delivery_key(dialect: str, document: dict) -> str:
    """What makes a delivery the same delivery: its whole content but the retry counter.

    A retry or a replay gives the same key; two different events that share a name, an
    entity and even a millisecond (a transfer's two attender updates) do not.
    """
    stripped = {key: value for key, value in document.items() if key != "attempt"}
    canonical = json.dumps(stripped, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{dialect}|{canonical}".encode()).hexdigest()


def _with_time(message: Message, when: datetime | None) -> Message:
    return replace(message, sent_at=when)


# --- helpers ----------------------------------------------------------------------------


def _json_or_none(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body[:limit].decode("utf-8", errors="replace")
    return " ".join(text.split())


def _reset_time(headers: Mapping[str, str] | None) -> datetime | None:
    if not headers:
        return None
    reset = _int(headers.get("X-RateLimit-Reset") or headers.get("x-ratelimit-reset"))
    if reset:
        return datetime.fromtimestamp(reset, tz=UTC)
    retry_after = _int(headers.get("Retry-After") or headers.get("retry-after"))
    if retry_after is not None:
        return datetime.now(tz=UTC) + timedelta(seconds=retry_after)
    return None


DIALECTS: dict[str, Dialect] = {"v2": V2(), "reference": Reference()}


def get(name: str) -> V2 | Reference:
    try:
        return DIALECTS[name]  # type: ignore[return-value]
    except KeyError:
        raise exc.Misconfigured(f"Unknown SalesIQ dialect “{name}”.") from None
