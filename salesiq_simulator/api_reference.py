"""The reference dialect: ``/api/v2/chats`` … with HTTP status codes on errors.

The token's user reaches one portal, so paths carry no screen name. Every answer,
errors included, carries ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .accounts import AccessToken, fingerprint, has_scope
from .base import ApiAnswer, ApiRequest, Route, json_answer, match_route, page_params
from .faults import Verdict
from .world import (
    PRESENCES,
    REFERENCE_EVENTS,
    REFERENCE_STATUS,
    Conversation,
    Portal,
    Webhook,
    WorldError,
    conversations_newest_first,
    reference_chat,
    reference_message,
    reference_operator,
    reference_webhook,
)

if TYPE_CHECKING:
    from .server import Simulator

ROOTS = frozenset({"chats", "operators", "brands", "webhooks"})
DEFAULT_LIMIT_PER_MINUTE = 100  # the Enterprise plan of the reference document
PER_PAGE_DEFAULT = 50
PER_PAGE_MAX = 100

HTTP_FOR_CODE = {
    "INVALID_TOKEN": 401,
    "INVALID_OAUTH_SCOPE": 403,
    "PERMISSION_DENIED": 403,
    "RESOURCE_NOT_FOUND": 404,
    "INVALID_REQUEST": 400,
    "REQUIRED_FIELD_MISSING": 400,
    "CHAT_NOT_ACTIVE": 400,
    "OPERATOR_OFFLINE": 400,
    "INVALID_DEPARTMENT": 400,
    "DUPLICATE_RESOURCE": 409,
    "RATE_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
    "SERVICE_UNAVAILABLE": 503,
}
MESSAGES = {
    "INVALID_TOKEN": "The access token is invalid or has expired",
    "INVALID_OAUTH_SCOPE": "Insufficient OAuth scope permissions",
    "PERMISSION_DENIED": "User lacks required permissions",
    "RESOURCE_NOT_FOUND": "Resource ID does not exist",
    "INVALID_REQUEST": "Invalid request parameters",
    "REQUIRED_FIELD_MISSING": "Required field not provided",
    "CHAT_NOT_ACTIVE": "Chat is not active",
    "OPERATOR_OFFLINE": "Operator is offline",
    "INVALID_DEPARTMENT": "Department does not exist",
    "DUPLICATE_RESOURCE": "Duplicate resource detected",
    "RATE_LIMIT_EXCEEDED": "API rate limit exceeded",
    "INTERNAL_ERROR": "Server error",
    "SERVICE_UNAVAILABLE": "Service temporarily unavailable",
}
STATUS_FILTER = {v: k for k, v in REFERENCE_STATUS.items()}  # active → connected …


def _iso_param(query: dict[str, str], name: str) -> float:
    """An ISO 8601 query parameter as epoch seconds ('Z' or an offset; naive is UTC)."""
    try:
        parsed = datetime.fromisoformat(query[name].replace("Z", "+00:00"))
    except ValueError:
        raise RefError("INVALID_REQUEST", message=f"Invalid {name}", param=name) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


# (pattern, {method: (handler, scope)})
ROUTES: list[Route] = [
    (("chats",), {"GET": ("list_chats", "chats.READ")}),
    (("chats", "*"), {"GET": ("get_chat", "chats.READ")}),
    (("chats", "*", "transcript"), {"GET": ("transcript", "chats.READ")}),
    (("chats", "*", "messages"), {"POST": ("send_message", "chats.CREATE")}),
    (("chats", "*", "transfer"), {"POST": ("transfer", "chats.UPDATE")}),
    (("chats", "*", "end"), {"POST": ("end", "chats.UPDATE")}),
    (("operators",), {"GET": ("list_operators", "operators.READ")}),
    (
        ("operators", "*"),
        {
            "GET": ("get_operator", "operators.READ"),
            "PATCH": ("patch_operator", "operators.UPDATE"),
        },
    ),
    (("brands",), {"GET": ("list_brands", "settings.READ")}),
    (("brands", "*"), {"GET": ("get_brand", "settings.READ")}),
    (("brands", "*", "departments"), {"GET": ("brand_departments", "settings.READ")}),
    # The reference document names no webhook scope; settings.READ is our reading.
    (
        ("webhooks",),
        {"GET": ("list_webhooks", "settings.READ"), "POST": ("create_webhook", "settings.READ")},
    ),
    (
        ("webhooks", "*"),
        {"GET": ("get_webhook", "settings.READ"), "DELETE": ("delete_webhook", "settings.READ")},
    ),
]


class RefError(Exception):
    def __init__(self, code: str, *, message: str | None = None, **details: Any) -> None:
        super().__init__(code)
        self.code = code
        self.message = message or MESSAGES.get(code, code)
        self.details = details


def error_answer(
    code: str, *, status: int | None = None, message: str | None = None, **details: Any
) -> ApiAnswer:
    return json_answer(
        status or HTTP_FOR_CODE.get(code, 400),
        {
            "status": "error",
            "code": code,
            "message": message or MESSAGES.get(code, code),
            "details": details,
        },
        error_code=code,
    )


def portal_limit(portal: Portal | None) -> int:
    if portal is None or portal.settings.rate_limit_per_minute is None:
        return DEFAULT_LIMIT_PER_MINUTE
    return portal.settings.rate_limit_per_minute


class ReferenceApi:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def portal_for_token(self, token: str | None, dc: str, now: float) -> Portal | None:
        if not token:
            return None
        access = self.sim.accounts.access_token(token)
        if access is None or not access.valid(now) or access.dc != dc:
            return None
        return self.sim.reference_portal_for(access.email, dc)

    # ----- entry ---------------------------------------------------------------------------

    def handle(self, req: ApiRequest, verdict: Verdict) -> ApiAnswer:
        token = req.bearer()
        portal = self.portal_for_token(token, req.dc, req.wall)
        counted: tuple[int, int] | None = None
        answer = self._handle(req, verdict, token, portal)
        limit = portal_limit(portal)
        if "counted" in req.extra:
            counted = req.extra["counted"]
        if counted is None:
            window = self.sim.rate_window(portal) if portal is not None else None
            counted = (
                window.peek(req.wall, limit)
                if window
                else (limit, int(req.wall - req.wall % 60 + 60))
            )
        remaining, reset = counted
        answer.headers.update(
            {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(reset),
            }
        )
        answer.token_fp = fingerprint(token)
        answer.portal = portal.screen_name if portal else None
        return answer

    def _handle(
        self, req: ApiRequest, verdict: Verdict, token: str | None, portal: Portal | None
    ) -> ApiAnswer:
        if verdict.targeted is not None:
            t = verdict.targeted
            code = str(t.code) if t.code is not None else "INTERNAL_ERROR"
            return error_answer(code, status=t.http_status, message=t.extra.get("message"))
        if verdict.random_error is not None:
            return error_answer("INTERNAL_ERROR")
        if token is None:
            return error_answer(
                "INVALID_TOKEN", message="Missing or malformed Authorization header"
            )
        access = self.sim.accounts.access_token(token)
        if access is None or not access.valid(req.wall) or access.dc != req.dc:
            return error_answer("INVALID_TOKEN")
        if portal is None:
            return error_answer(
                "PERMISSION_DENIED", message="No portal is reachable with this token"
            )
        parts = [p for p in req.path.split("/")[3:] if p]
        found = match_route(ROUTES, parts)
        if found is None:
            return error_answer("RESOURCE_NOT_FOUND", message="Unknown URL")
        (_pattern, methods), ids = found
        if req.method not in methods:
            return error_answer("INVALID_REQUEST", status=405, message="Method not allowed")
        handler_name, scope = methods[req.method]
        if not has_scope(access.scopes, f"SalesIQ.{scope}"):
            return error_answer("INVALID_OAUTH_SCOPE", required_scope=f"SalesIQ.{scope}")
        window = self.sim.rate_window(portal)
        allowed, remaining, reset = window.fixed(req.wall, portal_limit(portal))
        req.extra["counted"] = (remaining, reset)
        if verdict.rate_limited or not allowed:
            return error_answer(
                "RATE_LIMIT_EXCEEDED", status=429, retry_after=max(0, int(reset - req.wall))
            )
        handler: Callable[..., ApiAnswer] = getattr(self, "h_" + handler_name)
        try:
            return handler(req, portal, access, *ids)
        except RefError as exc:
            return error_answer(exc.code, message=exc.message, **exc.details)

    # ----- helpers -------------------------------------------------------------------------

    @staticmethod
    def _ok(data: Any, *, status: int = 200, pagination: dict[str, int] | None = None) -> ApiAnswer:
        payload: dict[str, Any] = {"status": "success", "data": data}
        if pagination is not None:
            payload["pagination"] = pagination
        return json_answer(status, payload)

    def _page(
        self, req: ApiRequest, items: Iterable[Any], render: Callable[[Any], dict[str, Any]]
    ) -> ApiAnswer:
        parsed = page_params(
            req.query,
            index_name="page",
            limit_name="per_page",
            default=PER_PAGE_DEFAULT,
            maximum=PER_PAGE_MAX,
        )
        if isinstance(parsed, str):
            raise RefError("INVALID_REQUEST", message=f"Invalid {parsed}", param=parsed)
        page, per_page = parsed
        everything = list(items)
        start = (page - 1) * per_page
        data = [render(item) for item in itertools.islice(everything, start, start + per_page)]
        return self._ok(
            data, pagination={"page": page, "per_page": per_page, "total": len(everything)}
        )

    def _body(self, req: ApiRequest) -> dict[str, Any]:
        try:
            body = req.json()
        except ValueError:
            raise RefError("INVALID_REQUEST", message="Body is not valid JSON") from None
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise RefError("INVALID_REQUEST", message="Body must be a JSON object")
        return body

    def _chat(self, portal: Portal, chat_id: str) -> Conversation:
        conv = portal.conversations.get(chat_id)
        if conv is None:
            raise RefError("RESOURCE_NOT_FOUND", message="Chat not found")
        return conv

    # ----- chats ---------------------------------------------------------------------------

    def h_list_chats(self, req: ApiRequest, portal: Portal, access: AccessToken) -> ApiAnswer:
        q = req.query
        wanted = q.get("status") or None
        if wanted is not None and wanted not in STATUS_FILTER:
            raise RefError("INVALID_REQUEST", message="Invalid status", param="status")
        status = STATUS_FILTER.get(wanted) if wanted else None
        operator_id = q.get("operator_id") or None
        department_id = q.get("department_id") or None
        # Seed 003, "List Chats": from_date / to_date (ISO 8601) bound the chats' start.
        dates = {name: _iso_param(q, name) for name in ("from_date", "to_date") if q.get(name)}

        def keep(conv: Conversation) -> bool:
            if "from_date" in dates and conv.start_time < dates["from_date"]:
                return False
            if "to_date" in dates and conv.start_time > dates["to_date"]:
                return False
            return (operator_id is None or conv.attender_id == operator_id) and (
                department_id is None or conv.department_id == department_id
            )

        return self._page(
            req,
            (
                c
                for c in conversations_newest_first(portal, [status] if status else None)
                if keep(c)
            ),
            lambda c: reference_chat(portal, c, req.now),
        )

    def h_get_chat(
        self, req: ApiRequest, portal: Portal, access: AccessToken, chat_id: str
    ) -> ApiAnswer:
        conv = self._chat(portal, chat_id)
        return self._ok(reference_chat(portal, conv, req.now, transcript=True))

    def h_transcript(
        self, req: ApiRequest, portal: Portal, access: AccessToken, chat_id: str
    ) -> ApiAnswer:
        conv = self._chat(portal, chat_id)
        return self._ok([reference_message(m) for m in conv.messages])

    def h_transfer(
        self, req: ApiRequest, portal: Portal, access: AccessToken, chat_id: str
    ) -> ApiAnswer:
        conv = self._chat(portal, chat_id)
        body = self._body(req)
        operator_id = body.get("operator_id")
        if operator_id in (None, ""):
            raise RefError("REQUIRED_FIELD_MISSING", field="operator_id")
        if not conv.is_open:
            raise RefError("CHAT_NOT_ACTIVE")
        op = portal.operators.get(str(operator_id))
        if op is None:
            raise RefError("RESOURCE_NOT_FOUND", message="Operator not found")
        if op.presence == "offline":
            raise RefError("OPERATOR_OFFLINE")
        dept_id = (
            conv.department_id
            if conv.department_id in op.department_ids or not op.department_ids
            else op.department_ids[0]
        )
        world = self.sim.world
        note = body.get("message")
        # The reference dialect has no transfer handshake: the chat moves at once.
        world.transfer_initiate(
            conv, portal.departments[dept_id], op, str(note) if note else None, req.now
        )
        world.transfer_settle(conv, True, req.now)
        conv.transfer = None
        return self._ok(reference_chat(portal, conv, req.now))

    def h_send_message(
        self, req: ApiRequest, portal: Portal, access: AccessToken, chat_id: str
    ) -> ApiAnswer:
        # Reference: ../shared/seeds/003_5ce7e3d4e9e50253.txt, "Send Chat Message":
        # {"message": …, "type": "text"}; only text is simulated. It goes out as the token's
        # user and arrives as the usual message.received webhook.
        conv = self._chat(portal, chat_id)
        body = self._body(req)
        text = body.get("message")
        if text in (None, ""):
            raise RefError("REQUIRED_FIELD_MISSING", field="message")
        if not isinstance(text, str) or body.get("type", "text") != "text":
            raise RefError("INVALID_REQUEST", field="message")
        if not conv.is_open:
            raise RefError("CHAT_NOT_ACTIVE")
        op = portal.operator_by_email(access.email)
        if op is None:
            raise RefError("PERMISSION_DENIED")
        msg = self.sim.world.message(conv, "operator", text, req.now, by=op)
        return self._ok(reference_message(msg), status=201)

    def h_end(
        self, req: ApiRequest, portal: Portal, access: AccessToken, chat_id: str
    ) -> ApiAnswer:
        conv = self._chat(portal, chat_id)
        body = self._body(req)
        if not conv.is_open:
            raise RefError("CHAT_NOT_ACTIVE")
        world = self.sim.world
        message = body.get("message")
        if message and conv.attender_id:
            world.message(conv, "operator", str(message), req.now)
        try:
            world.close(conv, req.now)
        except WorldError:
            raise RefError("CHAT_NOT_ACTIVE") from None
        return self._ok(reference_chat(portal, conv, req.now))

    # ----- operators -----------------------------------------------------------------------

    def h_list_operators(self, req: ApiRequest, portal: Portal, access: AccessToken) -> ApiAnswer:
        status = req.query.get("status") or None
        department_id = req.query.get("department_id") or None
        ops = (
            op
            for op in portal.operators.values()
            if (status is None or op.presence == status)
            and (department_id is None or department_id in op.department_ids)
        )
        return self._page(req, ops, lambda op: reference_operator(portal, op))

    def h_get_operator(
        self, req: ApiRequest, portal: Portal, access: AccessToken, operator_id: str
    ) -> ApiAnswer:
        op = portal.operators.get(operator_id)
        if op is None:
            raise RefError("RESOURCE_NOT_FOUND", message="Operator not found")
        return self._ok(reference_operator(portal, op))

    def h_patch_operator(
        self, req: ApiRequest, portal: Portal, access: AccessToken, operator_id: str
    ) -> ApiAnswer:
        op = portal.operators.get(operator_id)
        if op is None:
            raise RefError("RESOURCE_NOT_FOUND", message="Operator not found")
        own = portal.operator_by_email(access.email)
        if (own is None or own.id != op.id) and not portal.settings.operator_status_for_others:
            raise RefError("PERMISSION_DENIED", message="You may only change your own status")
        body = self._body(req)
        status = body.get("status")
        if status not in PRESENCES:
            raise RefError(
                "INVALID_REQUEST",
                message="status must be online, away, busy or offline",
                field="status",
            )
        self.sim.world.set_presence(op, str(status), req.now)
        return self._ok(reference_operator(portal, op))

    # ----- brands --------------------------------------------------------------------------

    def _brand(self, portal: Portal) -> dict[str, Any]:
        return {
            "id": portal.brand_id,
            "name": portal.name,
            "status": "active",
            "departments": [{"id": d.id, "name": d.name} for d in portal.departments.values()],
        }

    def h_list_brands(self, req: ApiRequest, portal: Portal, access: AccessToken) -> ApiAnswer:
        return self._ok([self._brand(portal)])

    def h_get_brand(
        self, req: ApiRequest, portal: Portal, access: AccessToken, brand_id: str
    ) -> ApiAnswer:
        if brand_id != portal.brand_id:
            raise RefError("RESOURCE_NOT_FOUND", message="Brand not found")
        return self._ok(self._brand(portal))

    def h_brand_departments(
        self, req: ApiRequest, portal: Portal, access: AccessToken, brand_id: str
    ) -> ApiAnswer:
        if brand_id != portal.brand_id:
            raise RefError("RESOURCE_NOT_FOUND", message="Brand not found")
        return self._ok([{"id": d.id, "name": d.name} for d in portal.departments.values()])

    # ----- webhooks ------------------------------------------------------------------------

    def h_list_webhooks(self, req: ApiRequest, portal: Portal, access: AccessToken) -> ApiAnswer:
        return self._page(req, iter(portal.webhooks.values()), reference_webhook)

    def h_get_webhook(
        self, req: ApiRequest, portal: Portal, access: AccessToken, webhook_id: str
    ) -> ApiAnswer:
        hook = portal.webhooks.get(webhook_id)
        if hook is None:
            raise RefError("RESOURCE_NOT_FOUND", message="Webhook not found")
        return self._ok(reference_webhook(hook))

    def h_create_webhook(self, req: ApiRequest, portal: Portal, access: AccessToken) -> ApiAnswer:
        body = self._body(req)
        for name in ("url", "events"):
            if not body.get(name):
                raise RefError("REQUIRED_FIELD_MISSING", field=name)
        url = body["url"]
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise RefError("INVALID_REQUEST", message="Invalid url", field="url")
        if portal.settings.strict_webhook_urls and parts.port is not None:
            raise RefError(
                "INVALID_REQUEST", message="Webhook URLs may not carry a port", field="url"
            )
        events = body["events"]
        if not isinstance(events, list) or any(e not in REFERENCE_EVENTS for e in events):
            raise RefError("INVALID_REQUEST", message="Unknown event", field="events")
        if any(h.url == url for h in portal.webhooks.values()):
            raise RefError("DUPLICATE_RESOURCE", message="A webhook with this URL exists")
        secret = body.get("secret")
        hook = Webhook(
            id=self.sim.world.ids(),
            url=url,
            events=list(dict.fromkeys(events)),
            created_time=req.now,
            name=str(body.get("name") or ""),
            enabled=bool(body.get("enabled", True)),
            secret=str(secret) if secret else "",
        )
        portal.webhooks[hook.id] = hook
        return self._ok(reference_webhook(hook), status=201)

    def h_delete_webhook(
        self, req: ApiRequest, portal: Portal, access: AccessToken, webhook_id: str
    ) -> ApiAnswer:
        hook = portal.webhooks.pop(webhook_id, None)
        if hook is None:
            raise RefError("RESOURCE_NOT_FOUND", message="Webhook not found")
        return self._ok({"id": hook.id, "deleted": True})
