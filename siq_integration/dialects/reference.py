"""The older reference shape of SalesIQ's REST API.

``/chats`` paths, HTTP status codes and ``code`` strings for errors, ISO 8601 times,
``chat.*`` events and HMAC-signed webhooks with a secret the dashboard chooses.
Reference: ../shared/SALESIQ_API.md, "reference dialect" (the seed this shape comes from;
Zoho publishes no page for it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .. import exceptions as exc
from ..normalised import (
    ChatStatus,
    Conversation,
    Department,
    EventKind,
    Message,
    Operator,
    OperatorStatus,
    Portal,
    SenderType,
    Visitor,
    Webhook,
    WebhookEvent,
)
from .base import (
    SENDER_TYPES,
    Call,
    Payload,
    Purpose,
    as_dict,
    as_int,
    as_str,
    delivery_key,
    iso8601,
    json_or_none,
    reset_time,
    snippet,
    with_time,
)

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


class Reference:
    name = "reference"
    scopes = REFERENCE_SCOPES
    page_size = 100
    small_page_size = 100

    lists_portals = False
    departments_by_brand = True  # /brands, then /brands/{id}/departments
    has_webhook_keys = False  # HMAC with the secret given at registration
    can_set_others_status = True  # PATCH /operators/{id} takes any operator
    names_retry_time = True  # X-RateLimit-Reset or Retry-After on a 429
    # POST /conversations/{id}/transfer hands the chat to an operator at once.
    transfer_needs_department = False
    transfer_needs_operator = True
    transfer_needs_acceptance = False
    settable_statuses = (
        OperatorStatus.AVAILABLE,
        OperatorStatus.AWAY,
        OperatorStatus.BUSY,
        OperatorStatus.OFFLINE,
    )
    transfer_note_to_visitor = True  # "Transfer Chat" sends it as the visitor's message
    addresses_name_portal = False  # /api/v2/…: the token decides which portal answers
    lists_operator_changes = False  # "List Operators" has no changed-since: the full list
    presence_by_webhook = True  # operator.status_changed events carry presence
    lists_closed_conversations = True  # "List Chats": status ended / missed, from_date
    can_pick_up = False  # the reference document has no pickup call
    messaging_scope = "SalesIQ.chats.ALL"  # "Send Chat Message" is a chats call
    # "Update Webhook" exists, but the dashboard's reference events never changed: it never
    # updates them in place (webhook_events.py leaves these portals alone).
    webhook_update_scope = ""
    signature_header = "X-Salesiq-Signature"  # "Handle Webhooks in Your Application"
    reach_checks = (
        ("SalesIQ.settings.READ", "departments"),
        ("SalesIQ.operators.READ", "operators"),
        ("SalesIQ.chats.READ", "conversations"),
    )

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "REST API v2" / "API Structure"
    def base_url(self, api_url: str, screen_name: str) -> str:
        return f"{api_url}/api/v2"

    def portals_url(self, api_url: str) -> str:
        raise exc.BadRequest("Only SalesIQ v2 lists the portals a sign-in reaches.")

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Response Format" and
    # "Error Response Structure"
    def unwrap(
        self, status: int, headers: Mapping[str, str], body: bytes, *, call: Call | None = None
    ) -> Payload:
        document = json_or_none(body)
        is_error = status >= 400 or (
            isinstance(document, dict)
            and (document.get("status") == "error" or "error" in document)
        )
        if is_error:
            raise self.error(
                document if isinstance(document, dict) else {}, status, headers, call=call
            )
        if status == 204 or not body.strip():
            return Payload(data=None, meta={}, headers=headers)
        if not isinstance(document, dict):
            raise exc.SalesIQError(
                "SalesIQ gave an answer the dashboard does not understand.",
                http_status=status,
                detail=snippet(body),
            )
        meta = {key: value for key, value in document.items() if key != "data"}
        return Payload(data=document.get("data"), meta=meta, headers=headers)

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Common Error Codes" and
    # "HTTP Status Codes"
    def error(
        self,
        document: dict,
        status: int,
        headers: Mapping[str, str] | None = None,
        *,
        call: Call | None = None,
    ) -> exc.SalesIQError:
        code = str(document.get("code") or "").upper()
        if not code and isinstance(document.get("error"), str):
            code = document["error"].upper()
        message = str(document.get("message") or "")
        details = as_dict(document.get("details"))
        kw = {"code": code or None, "http_status": status, "detail": message}
        field_name = as_str(details.get("field") or details.get("param"))
        match code:
            case "INVALID_TOKEN":
                return exc.TokenInvalid(**kw)
            case "INVALID_OAUTH_SCOPE":
                return exc.ScopeMissing(scope=as_str(details.get("scope")), **kw)
            case "PERMISSION_DENIED":
                return exc.PermissionDenied(**kw)
            case "RESOURCE_NOT_FOUND" if call is not None and call.purpose in (
                Purpose.CLOSE,
                Purpose.MESSAGE,
            ):
                # Ending a chat or writing in it names nothing else: the chat is what is gone.
                # (A transfer's 404 may be the operator as much as the chat.)
                return exc.ChatGone(exc.NotFound.default_message, **kw)
            case "RESOURCE_NOT_FOUND":
                return exc.NotFound(**kw)
            case "CHAT_NOT_ACTIVE":
                return exc.ChatNotActive(**kw)
            case "OPERATOR_OFFLINE":
                return exc.OperatorOffline(**kw)
            case "INVALID_DEPARTMENT":
                return exc.DepartmentGone(**kw)
            case "DUPLICATE_RESOURCE":
                return exc.AlreadyExists(**kw)
            case "RATE_LIMIT_EXCEEDED":
                return exc.TooManyRequests(retry_at=reset_time(headers), **kw)
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
            # With a code of its own, SalesIQ said so; a bare 429 counts as not sent.
            refused = exc.TooManyRequests if code else exc.RateLimited
            return refused(retry_at=reset_time(headers), **kw)
        if status >= 500:
            return exc.Unavailable(**kw)
        if status == 400:
            return exc.BadRequest(param=field_name, **kw)
        return exc.SalesIQError(**kw)

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Rate Limit Headers"
    def paused_until(self, headers: Mapping[str, str]) -> datetime | None:
        """When a call says none are left (X-RateLimit-Remaining: 0), until when to stop:
        stop before the 429 rather than after it."""
        if headers.get("X-RateLimit-Remaining") != "0":
            return None
        return reset_time(headers)

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "List Chats" (page, per_page)
    def page_params(self, page: int, size: int, *, listing: str = "") -> dict[str, Any]:
        return {"page": page, "per_page": size}

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "List Chats" (pagination.total)
    def has_more(self, payload: Payload, size: int, got: int) -> bool:
        pagination = as_dict(payload.meta.get("pagination"))
        total, page, per_page = (
            as_int(pagination.get("total")),
            as_int(pagination.get("page")),
            as_int(pagination.get("per_page")),
        )
        if total is not None and page and per_page:
            return page * per_page < total
        return got >= size

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "List Chats" (status)
    def open_conversation_queries(self) -> list[dict[str, Any]]:
        # "active" is connected chats only; waiting ones are asked for separately.
        return [{"status": "waiting"}, {"status": "active"}]

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "List Chats" (status, from_date)
    def closed_conversation_queries(
        self, *, arrived_since: datetime, changed_since: datetime
    ) -> list[dict[str, Any]]:
        """Ended and missed chats that began at ``arrived_since`` or later. This shape can
        not ask for what changed since a time: every such chat is listed."""
        since = arrived_since.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return [{"status": "ended", "from_date": since}, {"status": "missed", "from_date": since}]

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "List Chats"
    def conversations_path(self) -> str:
        return "/chats"

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Get Chat by ID"
    def conversation_path(self, conversation_id: str) -> str:
        return f"/chats/{conversation_id}"

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Get Chat Transcript"
    def messages_path(self, conversation_id: str) -> str:
        return f"/chats/{conversation_id}/transcript"

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "List Operators"
    def operators_path(self) -> str:
        return "/operators"

    # This dialect lists departments per brand (departments_by_brand): never asked for.
    def departments_path(self) -> str:
        return "/departments"

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "List Brands"
    def brands_path(self) -> str:
        return "/brands"

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "List Departments"
    def brand_departments_path(self, brand_id: str) -> str:
        return f"/brands/{brand_id}/departments"

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "List Webhooks"
    def webhooks_path(self) -> str:
        return "/webhooks"

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Update Webhook", "Delete Webhook"
    def webhook_path(self, webhook_id: str) -> str:
        return f"/webhooks/{webhook_id}"

    # This dialect signs with a shared secret (has_webhook_keys is False): never asked for.
    def webhook_keys_path(self, webhook_id: str) -> str:
        return f"/webhooks/{webhook_id}/keys"

    def webhook_key_path(self, webhook_id: str, key_id: str) -> str:
        return f"/webhooks/{webhook_id}/keys/{key_id}"

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Transfer Chat"
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
        return Call(
            "POST",
            f"/chats/{conversation_id}/transfer",
            json=body,
            idempotent=False,
            purpose=Purpose.TRANSFER,
        )

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "End Chat"
    def close_call(self, conversation_id: str, *, message: str) -> Call:
        body = {"message": message} if message else {}
        return Call(
            "POST",
            f"/chats/{conversation_id}/end",
            json=body,
            idempotent=False,
            purpose=Purpose.CLOSE,
        )

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Update Operator"
    def operator_status_call(self, operator_id: str, status: OperatorStatus) -> Call:
        return Call(
            "PATCH",
            f"/operators/{operator_id}",
            json={"status": _REFERENCE_STATUS_VALUES[status]},
            idempotent=True,
            purpose=Purpose.OPERATOR_STATUS,
        )

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Send Chat Message"
    # POST /chats/{chat_id}/messages {"message": …, "type": "text"}.
    def send_message_call(self, conversation_id: str, *, text: str) -> Call:
        return Call(
            "POST",
            f"/chats/{conversation_id}/messages",
            json={"message": text, "type": "text"},
            idempotent=False,
            purpose=Purpose.MESSAGE,
        )

    # The reference document has no pickup call (can_pick_up is False): never asked for.
    def pickup_call(self, conversation_id: str) -> Call:
        raise exc.BadRequest("This portal's SalesIQ cannot pick up a chat for the dashboard.")

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "List Operators"
    def operators_params(self, since: str | None) -> dict[str, Any]:
        return {}  # no incremental sync in this dialect: always the full list

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Create Webhook"
    def register_webhook_call(self, *, url: str, events: list[str], secret: str) -> Call:
        body = {
            "name": "SalesIQ Supervisor",
            "url": url,
            "events": events,
            "enabled": True,
            "secret": secret,
        }
        return Call("POST", "/webhooks", json=body, idempotent=False)

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Update Webhook" (PATCH)
    def update_webhook_call(self, webhook_id: str, *, events: list[str]) -> Call:
        return Call("PATCH", f"/webhooks/{webhook_id}", json={"events": events})

    # --- parsing --------------------------------------------------------------------

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Chat Object Structure"
    def parse_conversation(self, raw: dict) -> Conversation:
        raw = as_dict(raw)
        info = as_dict(raw.get("visitor_info"))
        conversation_id = as_str(raw.get("id") or raw.get("chat_id"))
        status = REFERENCE_CHAT_STATUS.get(str(raw.get("status") or "").lower())
        operator_id = as_str(raw.get("operator_id"))
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
                id=as_str(raw.get("visitor_id")),
                name=as_str(info.get("name") or raw.get("visitor_name")),
                email=as_str(info.get("email") or raw.get("visitor_email")),
                details={
                    key: as_str(info.get(key))
                    for key in ("phone", "city", "country", "browser", "platform")
                    if info.get(key)
                },
            ),
            started_at=iso8601(raw.get("started_at")),
            operator_id=operator_id,
            operator_name=as_str(raw.get("operator_name")),
            department_id=as_str(raw.get("department_id")),
            department_name=as_str(raw.get("department_name")),
            ended_at=iso8601(raw.get("ended_at")),
            last_message=last_message,
            rating=as_int(raw.get("rating")),
            feedback=as_str(raw.get("feedback")),
        )

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Get Chat Transcript"
    def parse_message(self, conversation_id: str, raw: dict) -> Message:
        raw = as_dict(raw)
        kind = str(raw.get("sender_type") or "").lower()
        sender_type = SenderType(kind) if kind in SENDER_TYPES else SenderType.SYSTEM
        return Message(
            id=as_str(raw.get("id") or raw.get("message_id")),
            chat_id=conversation_id or as_str(raw.get("chat_id")),
            sender_type=sender_type,
            sender_id=as_str(raw.get("sender_id")),
            sender_name=as_str(raw.get("sender_name")),
            text=as_str(raw.get("message")),
            sent_at=iso8601(raw.get("timestamp") or raw.get("sent_at")),
        )

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Operator Object Structure"
    def parse_operator(self, raw: dict) -> Operator:
        raw = as_dict(raw)
        status = REFERENCE_OPERATOR_STATUS.get(
            str(raw.get("status") or "").lower(), OperatorStatus.OFFLINE
        )
        department_ids = raw.get("department_ids")
        if not isinstance(department_ids, list):
            department_ids = [raw.get("department_id")]
        return Operator(
            id=as_str(raw.get("id")),
            name=as_str(raw.get("name")) or as_str(raw.get("email")),
            email=as_str(raw.get("email")),
            status=status,
            department_ids=tuple(as_str(d) for d in department_ids if d),
            max_chats=as_int(raw.get("max_chats")),
            active_chats=as_int(raw.get("active_chats")),
            role=as_str(raw.get("role")),
            modified_at=iso8601(raw.get("last_active")),
        )

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "List Departments"
    def parse_department(self, raw: dict) -> Department:
        raw = as_dict(raw)
        enabled = raw.get("enabled", raw.get("is_enabled"))
        return Department(
            id=as_str(raw.get("id")),
            name=as_str(raw.get("name")),
            enabled=enabled not in (False, "false", "0", 0),
        )

    def parse_portal(self, raw: dict) -> Portal:
        raise exc.BadRequest("Only SalesIQ v2 lists the portals a sign-in reaches.")

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "List Webhooks"
    def parse_webhook(self, raw: dict) -> Webhook:
        raw = as_dict(raw)
        return Webhook(
            id=as_str(raw.get("id")),
            url=as_str(raw.get("url")),
            events=tuple(as_str(e) for e in raw.get("events") or []),
            enabled=raw.get("enabled", True) not in (False, "false"),
        )

    # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Webhook Payload Examples"
    def parse_event(self, document: dict) -> WebhookEvent:
        name = str(document.get("event") or "")
        kind = REFERENCE_EVENTS.get(name, EventKind.UNKNOWN)
        data = as_dict(document.get("data"))
        chat_id = as_str(data.get("chat_id"))
        operator_id = as_str(data.get("operator_id"))
        occurred_at = iso8601(document.get("timestamp"))
        conversation = message = operator = None
        operator_status = None
        if kind is EventKind.VISITOR_MESSAGE:
            message = self.parse_message(chat_id, data)
            if message.sender_type is SenderType.OPERATOR:
                kind = EventKind.OPERATOR_MESSAGE
            if message.sent_at is None:
                message = with_time(message, occurred_at)
        elif kind is EventKind.OPERATOR_STATUS_CHANGED:
            operator_status = REFERENCE_OPERATOR_STATUS.get(str(data.get("status") or "").lower())
            if data.get("name") or data.get("email"):
                operator = Operator(
                    id=operator_id,
                    name=as_str(data.get("name")),
                    email=as_str(data.get("email")),
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
                    id=as_str(data.get("visitor_id")),
                    name=as_str(data.get("visitor_name")),
                    email=as_str(data.get("visitor_email")),
                ),
                started_at=iso8601(data.get("started_at")),
                operator_id=operator_id,
                operator_name=as_str(data.get("operator_name")),
                department_id=as_str(data.get("department_id")),
                department_name=as_str(data.get("department_name")),
                ended_at=iso8601(data.get("ended_at")),
                rating=as_int(data.get("rating")),
                feedback=as_str(data.get("feedback")),
            )
        entity_id = chat_id or operator_id or as_str(data.get("visitor_id"))
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
            rating=as_int(data.get("rating")),
            feedback=as_str(data.get("feedback")),
        )
