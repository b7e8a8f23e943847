"""SalesIQ REST API v2, the real and documented one.

The screen name is in every path; failures come as HTTP 200 with an ``error`` key and a
numeric code; times are epoch-ms strings; events are ``conversation.*``; webhooks are
RSA-signed with keys SalesIQ hands out.
Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
(and ../shared/SALESIQ_API.md, "v2").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.conf import settings

from .. import exceptions as exc
from ..normalised import (
    ChatStatus,
    Conversation,
    Department,
    EventKind,
    Message,
    MessageChange,
    Operator,
    OperatorStatus,
    Participant,
    ParticipantRole,
    Portal,
    SenderType,
    Transfer,
    Visitor,
    Webhook,
    WebhookEvent,
    WebhookKey,
)
from .base import (
    SENDER_TYPES,
    Call,
    Payload,
    Purpose,
    as_dict,
    as_int,
    as_str,
    backoff_until,
    delivery_key,
    epoch_ms,
    json_or_none,
    reset_time,
    snippet,
)

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
# Send Message (Operator) needs it. Asked for, not required: a grant made before the dashboard
# asked for it still works, it only cannot message visitors (oauth.OPTIONAL_SCOPES).
V2_MESSAGING_SCOPE = "SalesIQ.conversations.CREATE"
# Update a Webhook needs it. Asked for, not required, like messaging: a grant made before the
# dashboard asked for it gets new events by registering its webhook again (webhook_events.py).
V2_WEBHOOK_UPDATE_SCOPE = "SalesIQ.webhooks.UPDATE"

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
    # Reference: https://www.zoho.com/salesiq/help/webhook-events-conversation.html
    # (the conversation events' list) and, per event,
    # https://www.zoho.com/salesiq/help/developer-section/workflows-module-conversation.html
    "conversation.participants.added": EventKind.PARTICIPANTS_ADDED,
    "conversation.participants.deleted": EventKind.PARTICIPANTS_REMOVED,
    "conversation.supervisor.added": EventKind.SUPERVISOR_JOINED,
    "conversation.message.edited": EventKind.MESSAGE_EDITED,
    "conversation.message.deleted": EventKind.MESSAGE_DELETED,
}

# Events about who is in a chat, and about a line changed after it was sent: they name the
# chat and say what changed; they are not a fresh description of the whole chat, so they
# are applied as their own facts and never as the conversation they may carry.
_PEOPLE_EVENTS = {
    EventKind.PARTICIPANTS_ADDED,
    EventKind.PARTICIPANTS_REMOVED,
    EventKind.SUPERVISOR_JOINED,
}
_LINE_EVENTS = {EventKind.MESSAGE_EDITED, EventKind.MESSAGE_DELETED}

# What a participant's role may be called (our reading: Zoho's pages list the events and
# show the conversation payload, but no example of these five; see docs/participants.md).
_SUPERVISOR_ROLES = {"supervisor", "admin", "administrator", "superadmin", "owner"}

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


def _epoch_ms(when: datetime) -> int:
    """v2 query times: epoch milliseconds."""
    return int(when.timestamp() * 1000)


class V2:
    name = "v2"
    scopes = V2_SCOPES
    page_size = 99  # SalesIQ's maximum for conversations
    small_page_size = 20  # operators and departments come 20 a page

    lists_portals = True
    departments_by_brand = False
    has_webhook_keys = True
    # The status call sets the connected user's own status only (1016 for anyone else).
    can_set_others_status = False
    # 1023 names no time: the client backs off, doubling with each strike in a row.
    names_retry_time = False
    # The transfer call takes a department (and optionally an operator of it); the new
    # operator then accepts or declines, and a webhook says which.
    transfer_needs_department = True
    transfer_needs_operator = False
    transfer_needs_acceptance = True
    settable_statuses = (OperatorStatus.AVAILABLE, OperatorStatus.BUSY)  # all v2 documents
    transfer_note_to_visitor = False  # the note goes to the new operator
    addresses_name_portal = True  # /api/v2/{screen_name}/…
    lists_operator_changes = True  # last_sync_time: only operators changed since
    presence_by_webhook = False  # presence is only known by polling
    lists_closed_conversations = True  # status closed / missed, from_time, updated_from_time
    can_pick_up = True  # Pick up Chat: the connected user becomes the chat's operator
    messaging_scope = V2_MESSAGING_SCOPE
    webhook_update_scope = V2_WEBHOOK_UPDATE_SCOPE
    signature_header = "x-siqsignature"  # ../shared/SALESIQ_API.md, "Webhooks": Signature
    reach_checks = (
        ("SalesIQ.departments.READ", "departments"),
        ("SalesIQ.operators.READ", "operators"),
        ("SalesIQ.conversations.READ", "conversations"),
        ("SalesIQ.webhooks.READ", "webhooks"),
    )

    # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
    # (../shared/SALESIQ_API.md, "URL shape and envelopes": the screen name in every path)
    def base_url(self, api_url: str, screen_name: str) -> str:
        if not screen_name:
            raise exc.Misconfigured(
                "This portal has no SalesIQ screen name yet. An admin needs to pick it.",
                code="no-screen-name",
            )
        return f"{api_url}/api/v2/{screen_name}"

    # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
    # (../shared/SALESIQ_API.md, "URL shape and envelopes": GET /api/v2/portals)
    def portals_url(self, api_url: str) -> str:
        return f"{api_url}/api/v2/portals"

    # --- envelope ---------------------------------------------------------------------

    # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
    # (../shared/SALESIQ_API.md, "URL shape and envelopes": an error key fails any status)
    def unwrap(
        self, status: int, headers: Mapping[str, str], body: bytes, *, call: Call | None = None
    ) -> Payload:
        document = json_or_none(body)
        # An error key means failure whatever the HTTP status says (v2 answers errors with 200).
        if isinstance(document, dict) and isinstance(document.get("error"), dict):
            raise self.error(document["error"], status, call=call)
        if status >= 500 or status in (408, 425):
            raise exc.Unavailable(http_status=status, detail=snippet(body))
        if status == 429:
            raise exc.RateLimited(retry_at=backoff_until(0), http_status=status)
        if status >= 400 or not isinstance(document, dict) or "data" not in document:
            if status < 400 and isinstance(document, dict):
                # A 2xx without data (a delete, say) is still a success.
                return Payload(data=None, meta=document, headers=headers)
            raise exc.SalesIQError(
                "SalesIQ gave an answer the dashboard does not understand.",
                http_status=status,
                detail=snippet(body),
            )
        meta = {key: value for key, value in document.items() if key != "data"}
        return Payload(data=document["data"], meta=meta, headers=headers)

    def error(
        self,
        document: dict,
        status: int,
        headers: Mapping[str, str] | None = None,
        *,
        call: Call | None = None,
    ) -> exc.SalesIQError:
        """The exception for v2's ``error`` object (``document``): its numeric code."""
        # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
        # (the error codes table); ../shared/SALESIQ_API.md, "v2 errors".
        error = document
        code = as_int(error.get("code"))
        message = str(error.get("message") or "")
        detail = f"{message}".strip()
        kw = {"code": code, "http_status": status, "detail": detail}
        field_keys = {
            "param": as_str(error.get("param")),
            "json_key": as_str(error.get("json_key")),
            "header": as_str(error.get("header")),
        }
        match code:
            case 1001:
                return exc.Unavailable("SalesIQ had an internal error.", **kw)
            case 1002 | 1054:
                return exc.RequestHeadersRefused(
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
            case 1016 if call is not None and call.purpose is Purpose.OPERATOR_STATUS:
                # The status call sets the connected user's own status only.
                return exc.NotOwnStatus(**kw)
            case 1016 if call is not None and call.purpose is Purpose.PICKUP:
                # The pickup page names no error; a chat an operator has already is refused
                # as not permitted (the simulator's reading, docs/step-in.md).
                return exc.ChatNotWaiting(**kw)
            case 1016:
                return exc.PermissionDenied(**kw)
            case 1017 | 1021:
                return exc.PlanLimit(**kw)
            case 1019:
                return exc.ChatGone(_V2_NOT_FOUND[code], **kw)
            case 1020 | 1024:
                return exc.OperatorGone(_V2_NOT_FOUND[code], **kw)
            case 1025:
                return exc.DepartmentGone(_V2_NOT_FOUND[code], **kw)
            case 1023:
                return exc.TooManyRequests(
                    "SalesIQ says too many requests came from this dashboard and paused it.",
                    retry_at=backoff_until(0),
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

    # --- rate limits ---------------------------------------------------------------

    def paused_until(self, headers: Mapping[str, str]) -> datetime | None:
        """When a call says none are left (X-RateLimit-Remaining: 0), until when to stop.
        v2 documents no such headers; read them all the same should SalesIQ send them."""
        if headers.get("X-RateLimit-Remaining") != "0":
            return None
        return reset_time(headers)

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

    # Reference: https://www.zoho.com/salesiq/help/developer-section/get-conversation-list-details-v2.html
    def open_conversation_queries(self) -> list[dict[str, Any]]:
        return [{"status": "open"}]

    # Reference: https://www.zoho.com/salesiq/help/developer-section/get-conversation-list-details-v2.html
    # status: open, closed, waiting, connected, missed, end; from_time: start time greater
    # than (ms); updated_from_time: updated after (ms). Both bounds are excluded, so each is
    # asked for a millisecond earlier.
    def closed_conversation_queries(
        self, *, arrived_since: datetime, changed_since: datetime
    ) -> list[dict[str, Any]]:
        """Ended and missed chats that began after ``arrived_since`` and changed after
        ``changed_since``: one query per status (whether "closed" includes "missed" the page
        does not say; a chat listed by both counts once)."""
        bounds = {
            "from_time": str(_epoch_ms(arrived_since) - 1),
            "updated_from_time": str(_epoch_ms(changed_since) - 1),
        }
        return [{"status": "closed", **bounds}, {"status": "missed", **bounds}]

    # Reference: https://www.zoho.com/salesiq/help/developer-section/get-conversation-list-details-v2.html
    def conversations_path(self) -> str:
        return "/conversations"

    # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
    # (../shared/SALESIQ_API.md, "Resources and actions": One chat)
    def conversation_path(self, conversation_id: str) -> str:
        return f"/conversations/{conversation_id}"

    # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
    # (../shared/SALESIQ_API.md, "Resources and actions": Messages, seen in practice)
    def messages_path(self, conversation_id: str) -> str:
        return f"/conversations/{conversation_id}/messages"

    # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-operator-list.html
    def operators_path(self) -> str:
        return "/operators"

    # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
    # (../shared/SALESIQ_API.md, "Resources and actions": Departments, GET …/departments)
    def departments_path(self) -> str:
        return "/departments"

    # v2 lists departments at once (departments_by_brand is False): never asked for.
    def brands_path(self) -> str:
        return "/brands"

    def brand_departments_path(self, brand_id: str) -> str:
        return f"/brands/{brand_id}/departments"

    # Reference: https://www.zoho.com/salesiq/help/developer-section/webhooks.html
    # (../shared/SALESIQ_API.md, "Resources and actions": Webhooks)
    def webhooks_path(self) -> str:
        return "/webhooks"

    # Reference: https://www.zoho.com/salesiq/help/developer-section/webhooks.html
    # (../shared/SALESIQ_API.md, "Resources and actions": DELETE …/webhooks/{id})
    def webhook_path(self, webhook_id: str) -> str:
        return f"/webhooks/{webhook_id}"

    # Reference: https://www.zoho.com/salesiq/help/developer-section/generate-public-key-webhook-v2.html
    def webhook_keys_path(self, webhook_id: str) -> str:
        return f"/webhooks/{webhook_id}/keys"

    # Reference: https://www.zoho.com/salesiq/help/developer-section/delete-public-key-webhook-v2.html
    def webhook_key_path(self, webhook_id: str, key_id: str) -> str:
        return f"/webhooks/{webhook_id}/keys/{key_id}"

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
        # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-transfer-chat-v2.html
        return Call(
            "PUT",
            f"/conversations/{conversation_id}/transfer",
            json=body,
            idempotent=False,
            purpose=Purpose.TRANSFER,
        )

    # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
    # (../shared/SALESIQ_API.md, "Resources and actions": End; the method is a setting)
    def close_call(self, conversation_id: str, *, message: str) -> Call:
        method = settings.SIQ_HTTP_METHODS["v2.conversation_close"]
        return Call(
            method,
            f"/conversations/{conversation_id}/close",
            json={},
            idempotent=False,
            purpose=Purpose.CLOSE,
        )

    # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
    # (../shared/SALESIQ_API.md, "Resources and actions": Operator status; own status only)
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
            purpose=Purpose.OPERATOR_STATUS,
        )

    # Reference: https://www.zoho.com/salesiq/help/developer-section/send-message-operator-conversation-v2.html
    # POST …/conversations/{id}/messages {"text": …}, scope SalesIQ.conversations.CREATE; the
    # message goes out as the connected user. Sending twice sends twice: never retried.
    def send_message_call(self, conversation_id: str, *, text: str) -> Call:
        return Call(
            "POST",
            f"/conversations/{conversation_id}/messages",
            json={"text": text},
            idempotent=False,
            purpose=Purpose.MESSAGE,
        )

    # Reference: https://www.zoho.com/salesiq/help/developer-section/pickup-chat-v2.html
    # …/conversations/{id}/pickup, scope SalesIQ.conversations.UPDATE; the answer is the
    # conversation with the connected user as its attender. The page names no method: PUT, as
    # v2's other UPDATE calls (transfer, status), and a setting (SIQ_HTTP_METHODS).
    def pickup_call(self, conversation_id: str) -> Call:
        return Call(
            settings.SIQ_HTTP_METHODS["v2.conversation_pickup"],
            f"/conversations/{conversation_id}/pickup",
            json={},
            idempotent=False,
            purpose=Purpose.PICKUP,
        )

    # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-operator-list.html
    # (last_sync_time: the operators changed since)
    def operators_params(self, since: str | None) -> dict[str, Any]:
        return {"last_sync_time": since} if since else {}

    # Reference: https://www.zoho.com/salesiq/help/developer-section/webhooks.html
    # (../shared/SALESIQ_API.md, "Resources and actions": Webhooks)
    def register_webhook_call(self, *, url: str, events: list[str], secret: str) -> Call:
        body = {"type": "data", "url": url, "events": events, "version": "1"}
        return Call("POST", "/webhooks", json=body, idempotent=False)

    # Reference: https://www.zoho.com/salesiq/help/developer-section/update-webhook-v2.html
    # …/webhooks/{id}, scope SalesIQ.webhooks.UPDATE; "type" is mandatory and the events sent
    # replace the webhook's events (callers send every event it should keep). No url: a new
    # url makes SalesIQ send it a HEAD first, and the dashboard's stays as it is. The page's
    # excerpt names no method: PUT, as v2's other UPDATE calls, and a setting.
    def update_webhook_call(self, webhook_id: str, *, events: list[str]) -> Call:
        return Call(
            settings.SIQ_HTTP_METHODS["v2.webhook_update"],
            f"/webhooks/{webhook_id}",
            json={"type": "data", "events": events},
            idempotent=True,  # the same events twice leave the same webhook
        )

    # --- parsing --------------------------------------------------------------------

    # Reference: https://www.zoho.com/salesiq/help/developer-section/get-conversation-list-details-v2.html
    def parse_conversation(self, raw: dict) -> Conversation:
        raw = as_dict(raw)
        state = as_dict(raw.get("chat_status"))
        status_key = str(state.get("state_key") or raw.get("status") or "").lower()
        status = V2_CHAT_STATUS.get(status_key)
        attender = as_dict(raw.get("attender"))
        if status is None:
            status = ChatStatus.CONNECTED if attender.get("id") else ChatStatus.WAITING
        if status is ChatStatus.CONNECTED and not attender.get("id"):
            status = ChatStatus.WAITING
        if status.is_open and epoch_ms(raw.get("end_time")):
            status = ChatStatus.ENDED  # an end time settles it whatever the label says
        visitor = as_dict(raw.get("visitor"))
        department = as_dict(raw.get("department"))
        conversation_id = as_str(raw.get("id"))
        transfer_raw = as_dict(raw.get("transfer"))
        transfer = None
        if transfer_raw:
            to_operator = as_dict(transfer_raw.get("to_operator"))
            to_department = as_dict(transfer_raw.get("to_department"))
            transfer = Transfer(
                status=str(transfer_raw.get("status") or ""),
                to_operator_id=as_str(to_operator.get("id")),
                to_operator_name=as_str(to_operator.get("name")),
                to_department_id=as_str(to_department.get("id")),
                to_department_name=as_str(to_department.get("name")),
                note=as_str(transfer_raw.get("note")),
            )
        return Conversation(
            id=conversation_id,
            reference_id=as_str(raw.get("reference_id")),
            status=status,
            visitor=Visitor(
                id=as_str(visitor.get("id")),
                name=as_str(visitor.get("name")),
                email=as_str(visitor.get("email")),
                details={
                    key: as_str(visitor.get(key))
                    for key in ("ip", "city", "country", "browser", "os", "phone")
                    if visitor.get(key)
                },
            ),
            started_at=epoch_ms(raw.get("start_time")),
            operator_id=as_str(attender.get("id")),
            operator_name=as_str(attender.get("name")),
            department_id=as_str(department.get("id")),
            department_name=as_str(department.get("name")),
            question=as_str(raw.get("question")),
            attended_at=epoch_ms(raw.get("attended_time")),
            ended_at=epoch_ms(raw.get("end_time")),
            last_message=self._last_message(conversation_id, raw.get("last_message_info")),
            rating=as_int(raw.get("rating")),
            feedback=as_str(raw.get("feedback")),
            transfer=transfer,
            modified_at=epoch_ms(raw.get("last_modified_time")),
        )

    def _last_message(self, conversation_id: str, raw: Any) -> Message | None:
        raw = as_dict(raw)
        if not raw:
            return None
        return self.parse_message(conversation_id, raw)

    # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
    # (../shared/SALESIQ_API.md, "Resources and actions": Messages)
    def parse_message(self, conversation_id: str, raw: dict) -> Message:
        raw = as_dict(raw)
        sender = as_dict(raw.get("sender"))
        sender_id = as_str(sender.get("id"))
        kind = str(sender.get("type") or "").lower()
        if kind in SENDER_TYPES:
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
        text = as_str(as_dict(body).get("text")) if isinstance(body, dict) else as_str(body)
        return Message(
            # The sequence number names a message the same way in a conversation's
            # last_message_info and in its messages list; the id may not.
            id=as_str(raw.get("sequence_id") or raw.get("id")),
            chat_id=conversation_id,
            sender_type=sender_type,
            sender_id=sender_id,
            sender_name=as_str(sender.get("name")),
            text=text,
            sent_at=epoch_ms(raw.get("time")),
        )

    # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-operator-list.html
    def parse_operator(self, raw: dict) -> Operator:
        raw = as_dict(raw)
        first = as_str(raw.get("first_name")).strip()
        last = as_str(raw.get("last_name")).strip()
        nick = as_str(raw.get("nick_name")).strip()
        email = as_str(raw.get("email_id"))
        # The full name, as people know each other; the nickname ("patty" on Zoho's own
        # example) only when there is none: several operators often share a first name.
        name = " ".join(p for p in (first, last) if p) or nick or email
        departments = raw.get("departments") or []
        department_ids = tuple(
            as_str(d.get("id")) if isinstance(d, dict) else as_str(d) for d in departments
        )
        code = as_int(raw.get("status_code"))
        # The list and the operator pages say is_enabled; the operator webhooks' entity, enabled.
        enabled = raw.get("is_enabled", raw.get("enabled"))
        return Operator(
            id=as_str(raw.get("id")),
            name=name,
            email=email,
            first_name=first,
            last_name=last,
            nick_name=nick,
            status=V2_OPERATOR_STATUS.get(code, OperatorStatus.OFFLINE),
            status_message=as_str(raw.get("status_message")),
            enabled=enabled not in (False, "false", "0", 0),
            department_ids=tuple(d for d in department_ids if d),
            max_chats=as_int(raw.get("maximum_concurrent_chat")),
            role=as_str(raw.get("role")),
            modified_at=epoch_ms(raw.get("modified_time")),
        )

    # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
    # (../shared/SALESIQ_API.md, "Resources and actions": Departments)
    def parse_department(self, raw: dict) -> Department:
        raw = as_dict(raw)
        enabled = raw.get("is_enabled")
        return Department(
            id=as_str(raw.get("id")),
            name=as_str(raw.get("display_name") or raw.get("name")),
            enabled=enabled not in (False, "false", "0", 0),
        )

    # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
    # (../shared/SALESIQ_API.md, "URL shape and envelopes": portals carry screenname)
    def parse_portal(self, raw: dict) -> Portal:
        raw = as_dict(raw)
        screen = as_str(raw.get("screenname") or raw.get("screen_name"))
        return Portal(
            id=as_str(raw.get("id")),
            screen_name=screen,
            name=as_str(raw.get("name") or raw.get("company_name") or screen),
        )

    def parse_webhook(self, raw: dict) -> Webhook:
        # Reference: https://www.zoho.com/salesiq/help/developer-section/generate-public-key-webhook-v2.html
        # object "webhook", public_keys: [{key, creator: {id}, created_time, id}].
        raw = as_dict(raw)
        keys = tuple(
            WebhookKey(
                id=as_str(key.get("id")),
                public_key_pem=as_str(key.get("key")),
                created_at=epoch_ms(key.get("created_time")),
                creator_id=as_str(as_dict(key.get("creator")).get("id")),
            )
            for key in raw.get("public_keys") or []
            if isinstance(key, dict)
        )
        status = str(raw.get("status") or "enabled").lower()
        return Webhook(
            id=as_str(raw.get("id")),
            url=as_str(raw.get("url")),
            events=tuple(as_str(e) for e in raw.get("events") or []),
            enabled=status == "enabled",
            public_keys=keys,
        )

    # Reference: https://www.zoho.com/salesiq/help/developer-section/webhooks.html
    # (../shared/SALESIQ_API.md, "Webhooks": body and event names)
    def parse_event(self, document: dict) -> WebhookEvent:
        name = str(document.get("event") or "")
        kind = V2_EVENTS.get(name, EventKind.UNKNOWN)
        if kind in _PEOPLE_EVENTS or kind in _LINE_EVENTS:
            return self._parse_chat_change(document, name, kind)
        entity = as_dict(document.get("entity"))
        entity_type = str(document.get("entity_type") or "").lower()
        entity_id = as_str(document.get("entity_id") or entity.get("id"))
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
            attempt=as_int(document.get("attempt")) or 1,
        )

    # Reference: https://www.zoho.com/salesiq/help/webhook-events-conversation.html
    # Reference: https://www.zoho.com/salesiq/help/developer-section/workflows-module-conversation.html
    # Those pages list conversation.participants.added / .deleted, conversation.supervisor.added
    # and conversation.message.edited / .deleted as conversation events (entity_type
    # "conversation", the conversation as entity) but show no example of them. Our reading,
    # in this one place (docs/participants.md): who joined or left is the entity's
    # "participants" (or one "participant"; a supervisor's event: "supervisor"), each
    # {id, name, email_id, type|role}; the changed line is the entity's "message", shaped as
    # a line of the messages list ({id, sequence_id, sender, message: {text}, time}) with
    # "edited_time" / "deleted_time".
    def _parse_chat_change(self, document: dict, name: str, kind: EventKind) -> WebhookEvent:
        entity = as_dict(document.get("entity"))
        chat_id = as_str(entity.get("id") or document.get("entity_id"))
        if not chat_id:
            raise exc.MalformedPayload(
                f"A {name} webhook arrived without saying which chat it is about.",
                detail=f"{name} without a conversation id",
            )
        occurred_at = epoch_ms(document.get("event_time"))
        participants: tuple[Participant, ...] = ()
        change = None
        if kind in _PEOPLE_EVENTS:
            participants = self._participants(entity, kind)
            if not participants:
                raise exc.MalformedPayload(
                    f"A {name} webhook arrived without saying who joined or left the chat.",
                    detail=f"{name} without a participant id",
                )
            if occurred_at is None:
                occurred_at = epoch_ms(entity.get("last_modified_time"))
        else:
            change = self._message_change(entity, kind)
            if change is None:
                raise exc.MalformedPayload(
                    f"A {name} webhook arrived without saying which message changed.",
                    detail=f"{name} without a message id",
                )
            raw = as_dict(entity.get("message"))
            if occurred_at is None:
                occurred_at = epoch_ms(
                    raw.get("deleted_time" if change.deleted else "edited_time")
                    or entity.get("last_modified_time")
                )
        return WebhookEvent(
            kind=kind,
            name=name,
            dedupe_key=delivery_key("v2", document),
            occurred_at=occurred_at,
            entity_id=chat_id,
            chat_id=chat_id,
            participants=participants,
            message_change=change,
            attempt=as_int(document.get("attempt")) or 1,
        )

    def _participants(self, entity: dict, kind: EventKind) -> tuple[Participant, ...]:
        if kind is EventKind.SUPERVISOR_JOINED:
            found = entity.get("supervisor") or entity.get("participants")
        else:
            found = entity.get("participants") or entity.get("participant")
        people = found if isinstance(found, list) else [found]
        parsed = []
        for raw in people:
            raw = as_dict(raw)
            person_id = as_str(raw.get("id"))
            if not person_id:
                continue
            role = str(raw.get("role") or raw.get("type") or "").lower()
            is_supervisor = kind is EventKind.SUPERVISOR_JOINED or role in _SUPERVISOR_ROLES
            parsed.append(
                Participant(
                    id=person_id,
                    role=ParticipantRole.SUPERVISOR if is_supervisor else ParticipantRole.OPERATOR,
                    name=as_str(raw.get("name")),
                    email=as_str(raw.get("email_id") or raw.get("email")),
                )
            )
        return tuple(parsed)

    def _message_change(self, entity: dict, kind: EventKind) -> MessageChange | None:
        raw = as_dict(entity.get("message"))
        if not raw:
            return None
        line = self.parse_message(as_str(entity.get("id")), raw)
        if not line.id:
            return None
        deleted = kind is EventKind.MESSAGE_DELETED
        return MessageChange(
            message_id=line.id,
            deleted=deleted,
            text="" if deleted else line.text,
            sender_type=line.sender_type if (line.sender_id or "sender" in raw) else None,
            sender_id=line.sender_id,
            sender_name=line.sender_name,
            sent_at=line.sent_at,
        )
