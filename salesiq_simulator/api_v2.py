"""SalesIQ REST API v2 as Zoho documents it: ``/api/v2/{screen_name}/…``.

Every answer is HTTP 200, success or error (faults aside). Checks run in the
documented order: header 1002, token 1008, portal 1005, path 1006, method 1004,
scope 1009, rate limit 1023; then the call's own checks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from .accounts import AccessToken, fingerprint, has_scope
from .base import ApiAnswer, ApiRequest, Route, html_answer, json_answer, match_route, page_params
from .faults import Verdict
from .world import (
    OPEN_STATUSES,
    V2_EVENTS,
    Conversation,
    Operator,
    Portal,
    Webhook,
    WebhookKey,
    WorldError,
    conversations_newest_first,
    ms,
    v2_conversation,
    v2_department,
    v2_message,
    v2_operator,
    v2_webhook,
)

if TYPE_CHECKING:
    from .server import Simulator

# Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
MESSAGES: dict[int, str] = {
    1001: "Unknown authentication error. Contact SalesIQ Team!",
    1002: "Invalid authorization header.",
    1004: "Invalid Request Type.",
    1005: "Invalid portal or wrong screen name.",
    1006: "Invalid URL",
    1007: "Invalid datatypes found in params",
    1008: "Invalid OAuthToken.",
    1009: "Invalid OAuthScope.",
    1010: "Invalid Method.",
    1011: "Either the request parameters are invalid or absent",
    1014: "Resource already exists",
    1015: "Either the input stream is invalid or absent",
    1016: "Operator doesn't have permission to perform the operation",
    1017: "Resource limit reached for current plan",
    1019: "Invalid Resource",
    1020: "Invalid operator",
    1021: "Operation is not available in the current plan",
    1023: "Too many requests, lease try after sometime",
    1024: "Invalid Operator id/s",
    1025: "Invalid Department IDs",
    1029: "Invalid Filter",
    1031: "Insufficient data",
    1054: "Invalid header value",
}

LIST_PAGE_DEFAULT = 20
LIST_PAGE_MAX = 99
DIRECTORY_PAGE = 20  # operators and departments
MAX_WEBHOOK_KEYS = 2
# Zoho's "Get details of a List of Conversations" names these statuses. "open" is waiting and
# connected; "end" is our reading: closed and missed together (as the mobile SDKs' "ended").
CONVERSATION_STATUSES = ("open", "waiting", "connected", "closed", "missed", "end")
_STATUS_GROUPS = {"open": OPEN_STATUSES, "end": ("closed", "missed")}


def _ms(t: float) -> int:
    """Epoch seconds → whole milliseconds, rounded as ``world.ms`` writes them."""
    return round(t * 1000)


# sort_by: what each value sorts by (newest first; the page names the keys, not the order).
_SORT_KEYS = {
    "in_time": lambda conv: conv.start_time,
    "end_time": lambda conv: conv.end_time or 0.0,
    "updated_time": lambda conv: conv.last_modified_time,
}

# (path pattern, {method: (handler, scope)}); "*" is an id. "@close", "@status" and
# "@pickup" stand for the portal's configurable methods.
ROUTES: list[Route] = [
    (("conversations",), {"GET": ("list_conversations", "conversations.READ")}),
    (("conversations", "*"), {"GET": ("get_conversation", "conversations.READ")}),
    (
        ("conversations", "*", "messages"),
        {
            "GET": ("list_messages", "conversations.READ"),
            "POST": ("send_message", "conversations.CREATE"),
        },
    ),
    (("conversations", "*", "pickup"), {"@pickup": ("pickup", "conversations.UPDATE")}),
    (("conversations", "*", "transfer"), {"PUT": ("transfer", "conversations.UPDATE")}),
    (("conversations", "*", "close"), {"@close": ("close", "conversations.UPDATE")}),
    (("operators",), {"GET": ("list_operators", "operators.READ")}),
    (("operators", "*"), {"GET": ("get_operator", "operators.READ")}),
    (("operators", "*", "status"), {"@status": ("operator_status", "operators.UPDATE")}),
    (("departments",), {"GET": ("list_departments", "departments.READ")}),
    (("departments", "*"), {"GET": ("get_department", "departments.READ")}),
    (
        ("webhooks",),
        {"GET": ("list_webhooks", "webhooks.READ"), "POST": ("create_webhook", "webhooks.CREATE")},
    ),
    (
        ("webhooks", "*"),
        {
            "GET": ("get_webhook", "webhooks.READ"),
            "PUT": ("update_webhook", "webhooks.UPDATE"),
            "DELETE": ("delete_webhook", "webhooks.DELETE"),
        },
    ),
    (("webhooks", "*", "keys"), {"POST": ("add_key", "webhooks.CREATE")}),
    (("webhooks", "*", "keys", "*"), {"DELETE": ("delete_key", "webhooks.DELETE")}),
]


class V2Error(Exception):
    def __init__(self, code: int, *, message: str | None = None, **key: str) -> None:
        super().__init__(code)
        self.code = code
        self.message = message or MESSAGES.get(code, "Error")
        self.key = key


def error_answer(
    code: int, *, status: int = 200, message: str | None = None, **key: str
) -> ApiAnswer:
    body: dict[str, Any] = {"code": code, "message": message or MESSAGES.get(code, "Error")}
    body.update({k: v for k, v in key.items() if k in {"json_key", "param", "header"}})
    return json_answer(status, {"error": body}, error_code=code)


class V2Api:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    # ----- entry ---------------------------------------------------------------------------

    def handle(self, req: ApiRequest, verdict: Verdict) -> ApiAnswer:
        token = req.bearer()
        raw_header = req.headers.get("authorization", "")
        fp = fingerprint(token or raw_header.split(" ")[-1] if raw_header else None)
        parts = [p for p in req.path.split("/")[3:] if p]  # after /api/v2/
        screen = parts[0] if parts and parts[0] != "portals" else None
        answer = self._handle(req, verdict, token, parts)
        answer.token_fp = fp
        if answer.portal is None:
            answer.portal = screen
        return answer

    def _handle(
        self, req: ApiRequest, verdict: Verdict, token: str | None, parts: list[str]
    ) -> ApiAnswer:
        if verdict.targeted is not None:
            t = verdict.targeted
            code = int(t.code) if t.code is not None and str(t.code).isdigit() else 1001
            return error_answer(
                code,
                status=t.http_status or 200,
                message=t.extra.get("message"),
                **{k: v for k, v in t.extra.items() if k != "message"},
            )
        if verdict.random_error == "5xx":
            return html_answer(500, "Internal Server Error")
        if verdict.random_error == "1001":
            return error_answer(1001)
        if token is None:
            return error_answer(1002)
        access = self.sim.accounts.access_token(token)
        if access is None or not access.valid(req.wall) or access.dc != req.dc:
            return error_answer(1008)
        if parts == ["portals"]:
            if req.method != "GET":
                return error_answer(1004)
            if not has_scope(access.scopes, "SalesIQ.portals.READ"):
                return error_answer(1009)
            return self._portals(req, access)
        if not parts:
            return error_answer(1006)
        portal = self.sim.world.portals.get(parts[0])
        if (
            portal is None
            or portal.dc != req.dc
            or portal.dialect != "v2"
            or not self.sim.reaches(access.email, portal)
        ):
            return error_answer(1005)
        found = match_route(ROUTES, parts[1:])
        if found is None:
            return error_answer(1006)
        (_pattern, methods), ids = found
        handler_name: str | None = None
        scope = ""
        for method, (name, needed) in methods.items():
            actual = {
                "@close": portal.settings.close_method,
                "@status": portal.settings.operator_status_method,
                "@pickup": portal.settings.pickup_method,
            }.get(method, method)
            if actual.upper() == req.method:
                handler_name, scope = name, needed
        if handler_name is None:
            return error_answer(1004)
        if not has_scope(access.scopes, f"SalesIQ.{scope}"):
            return error_answer(1009)
        if not self._within_rate(portal, req.wall, verdict.rate_limited):
            return error_answer(1023)
        if req.body.strip():
            content_type = req.headers.get("content-type", "application/json")
            if "json" not in content_type.lower():
                return error_answer(1054, header="Content-Type")
        handler: Callable[..., Any] = getattr(self, "h_" + handler_name)
        try:
            return handler(req, portal, access, *ids)
        except V2Error as exc:
            return error_answer(exc.code, message=exc.message, **exc.key)

    def _within_rate(self, portal: Portal, now: float, forced: bool) -> bool:
        window = self.sim.rate_window(portal)
        if now < window.locked_until:
            return False
        limit = portal.settings.rate_limit_per_minute
        if forced or (limit is not None and not window.sliding(now, limit)):
            # SalesIQ locks the caller's IP for a while once it asked too much.
            window.locked_until = now + self.sim.ip_lock_seconds
            return False
        return True

    # ----- envelopes -----------------------------------------------------------------------

    @staticmethod
    def _ok(req: ApiRequest, obj: str, data: Any, **extra: Any) -> ApiAnswer:
        payload: dict[str, Any] = {"url": req.path, "object": obj, "data": data}
        payload.update(extra)
        return json_answer(200, payload)

    def _page(
        self,
        req: ApiRequest,
        items: Iterable[Any],
        render: Callable[[Any], dict[str, Any]],
        *,
        default: int,
        maximum: int,
        fixed: bool = False,
        page_name: str = "index",
    ) -> ApiAnswer:
        """One page of ``items``; ``page_name`` is the parameter numbering the pages (from
        1) on this listing's own page; any other is ignored, as SalesIQ ignores them."""
        parsed = page_params(
            req.query, index_name=page_name, limit_name="limit", default=default, maximum=maximum
        )
        if isinstance(parsed, str):
            if not (fixed and parsed == "limit"):
                raise V2Error(1007, param=parsed)
            parsed = (int(req.query.get(page_name, "1")), default)
        index, limit = parsed
        if fixed:
            limit = min(limit, default)
        start = (index - 1) * limit
        # Take one more than a page to know whether another page follows, without
        # materialising (or sorting) the whole list for every page.
        window = list(itertools.islice(items, start, start + limit + 1))
        more = len(window) > limit
        data = [render(item) for item in window[:limit]]
        return self._ok(req, "list", data, sync_time=ms(req.now), more_data_available=more)

    # ----- portals -------------------------------------------------------------------------

    def _portals(self, req: ApiRequest, access: AccessToken) -> ApiAnswer:
        data = [
            {"id": p.id, "screenname": p.screen_name, "name": p.name, "dc": p.dc}
            for p in self.sim.world.portals_in_dc(req.dc)
            if p.dialect == "v2" and self.sim.reaches(access.email, p)
        ]
        return self._ok(req, "list", data, sync_time=ms(req.now))

    # ----- conversations -------------------------------------------------------------------

    def _conversation(self, portal: Portal, conversation_id: str) -> Conversation:
        conv = portal.conversations.get(conversation_id)
        if conv is None:
            raise V2Error(1019)
        return conv

    def h_list_conversations(
        self, req: ApiRequest, portal: Portal, access: AccessToken
    ) -> ApiAnswer:
        q = req.query
        status = q.get("status") or None
        if status is not None and status not in CONVERSATION_STATUSES:
            raise V2Error(1007, param="status")
        # Compared in whole milliseconds, as the times are written in every answer.
        bounds: dict[str, int] = {}
        for name in ("from_time", "to_time", "updated_from_time", "updated_till_time"):
            if q.get(name):
                try:
                    bounds[name] = int(q[name])
                except ValueError:
                    raise V2Error(1007, param=name) from None
        sort_by = q.get("sort_by") or None
        if sort_by is not None and sort_by not in _SORT_KEYS:
            raise V2Error(1007, param="sort_by")
        department_id = q.get("department_id") or None
        attender_id = q.get("attender_id") or None

        statuses = None if status is None else _STATUS_GROUPS.get(status, (status,))

        # Reference: https://www.zoho.com/salesiq/help/developer-section/get-conversation-list-details-v2.html
        # from_time / to_time: start time greater / lesser than; updated_from_time /
        # updated_till_time: updated after / before (all epoch milliseconds, bounds excluded).
        def keep(conv: Conversation) -> bool:
            if department_id and conv.department_id != department_id:
                return False
            if attender_id and conv.attender_id != attender_id:
                return False
            started, updated = _ms(conv.start_time), _ms(conv.last_modified_time)
            if "from_time" in bounds and not started > bounds["from_time"]:
                return False
            if "to_time" in bounds and not started < bounds["to_time"]:
                return False
            if "updated_from_time" in bounds and not updated > bounds["updated_from_time"]:
                return False
            return not ("updated_till_time" in bounds and not updated < bounds["updated_till_time"])

        found: Iterable[Conversation] = (
            c for c in conversations_newest_first(portal, statuses) if keep(c)
        )
        if sort_by is not None:
            found = sorted(found, key=_SORT_KEYS[sort_by], reverse=True)
        # Paged by "page" and "limit" (20 by default, at most 99); "index" means nothing here.
        return self._page(
            req,
            iter(found),
            lambda c: v2_conversation(portal, c),
            default=LIST_PAGE_DEFAULT,
            maximum=LIST_PAGE_MAX,
            page_name="page",
        )

    def h_get_conversation(
        self, req: ApiRequest, portal: Portal, access: AccessToken, conversation_id: str
    ) -> ApiAnswer:
        conv = self._conversation(portal, conversation_id)
        return self._ok(req, "conversation", v2_conversation(portal, conv))

    def h_list_messages(
        self, req: ApiRequest, portal: Portal, access: AccessToken, conversation_id: str
    ) -> ApiAnswer:
        conv = self._conversation(portal, conversation_id)
        return self._page(
            req,
            (m for m in conv.messages if m.deleted_time is None),
            v2_message,
            default=LIST_PAGE_DEFAULT,
            maximum=LIST_PAGE_MAX,
        )

    def _body(self, req: ApiRequest) -> dict[str, Any]:
        try:
            body = req.json()
        except ValueError:
            raise V2Error(1015) from None
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise V2Error(1015)
        return body

    def h_transfer(
        self, req: ApiRequest, portal: Portal, access: AccessToken, conversation_id: str
    ) -> ApiAnswer:
        conv = self._conversation(portal, conversation_id)
        body = self._body(req)
        department_id = body.get("department_id")
        if department_id in (None, ""):
            raise V2Error(1015, json_key="department_id")
        department = portal.departments.get(str(department_id))
        if department is None:
            raise V2Error(1025)
        operator = None
        if body.get("operator_id") not in (None, ""):
            operator = portal.operators.get(str(body["operator_id"]))
            if operator is None:
                raise V2Error(1020)
        if not conv.is_open:
            raise V2Error(1019)
        note = body.get("note")
        self.sim.world.transfer_initiate(
            conv, department, operator, str(note) if note is not None else None, req.now
        )
        return self._ok(req, "conversation", v2_conversation(portal, conv))

    def _connected_operator(self, portal: Portal, access: AccessToken) -> Operator:
        """The operator the token's user is in this portal: who sends and who picks up."""
        op = portal.operator_by_email(access.email)
        if op is None:
            raise V2Error(1016)
        return op

    def h_send_message(
        self, req: ApiRequest, portal: Portal, access: AccessToken, conversation_id: str
    ) -> ApiAnswer:
        # Reference: https://www.zoho.com/salesiq/help/developer-section/send-message-operator-conversation-v2.html
        # {"text": …} (a file is the page's other payload; not simulated). The message goes out
        # as the connected user, appears in the transcript and is delivered as the usual
        # conversation.operator.replied webhook. The page shows no answer: the message, in the
        # shape the messages list gives it, is our reading.
        conv = self._conversation(portal, conversation_id)
        body = self._body(req)
        text = body.get("text")
        if text in (None, ""):
            raise V2Error(1015, json_key="text")
        if not isinstance(text, str) or not text.strip():
            raise V2Error(1007, json_key="text")
        if not conv.is_open:
            raise V2Error(1019)
        op = self._connected_operator(portal, access)
        msg = self.sim.world.message(conv, "operator", text, req.now, by=op)
        return self._ok(req, "message", v2_message(msg))

    def h_pickup(
        self, req: ApiRequest, portal: Portal, access: AccessToken, conversation_id: str
    ) -> ApiAnswer:
        # Reference: https://www.zoho.com/salesiq/help/developer-section/pickup-chat-v2.html
        # "pick up an incoming chat request": the connected user becomes its attender; the
        # answer is the conversation ("object": "conversations"). The page names no errors:
        # an unknown or ended chat is 1019 (Invalid Resource), a chat an operator has already
        # is 1016 (not permitted), as the v2 error table reads (docs/step-in.md).
        conv = self._conversation(portal, conversation_id)
        if not conv.is_open:
            raise V2Error(1019)
        if conv.status != "waiting":
            raise V2Error(1016, message="The chat is not waiting: it has an operator already.")
        op = self._connected_operator(portal, access)
        self.sim.world.pickup(conv, op, req.now)
        return self._ok(req, "conversations", v2_conversation(portal, conv))

    def h_close(
        self, req: ApiRequest, portal: Portal, access: AccessToken, conversation_id: str
    ) -> ApiAnswer:
        conv = self._conversation(portal, conversation_id)
        try:
            self.sim.world.close(conv, req.now)
        except WorldError:
            raise V2Error(1019) from None
        return self._ok(req, "conversation", v2_conversation(portal, conv))

    # ----- operators and departments -------------------------------------------------------

    def h_list_operators(self, req: ApiRequest, portal: Portal, access: AccessToken) -> ApiAnswer:
        since: float | None = None
        if req.query.get("last_sync_time"):
            try:
                since = int(req.query["last_sync_time"]) / 1000.0
            except ValueError:
                raise V2Error(1007, param="last_sync_time") from None
        ops = (op for op in portal.operators.values() if since is None or op.modified_time > since)
        # Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-operator-list.html
        # Paged by "index", 20 a fetch; "last_sync_time" for changes since.
        return self._page(
            req,
            ops,
            lambda op: v2_operator(portal, op),
            default=DIRECTORY_PAGE,
            maximum=LIST_PAGE_MAX,
            fixed=True,
        )

    def h_get_operator(
        self, req: ApiRequest, portal: Portal, access: AccessToken, operator_id: str
    ) -> ApiAnswer:
        op = portal.operators.get(operator_id)
        if op is None:
            raise V2Error(1020)
        return self._ok(req, "operator", v2_operator(portal, op))

    def h_operator_status(
        self, req: ApiRequest, portal: Portal, access: AccessToken, operator_id: str
    ) -> ApiAnswer:
        op = portal.operators.get(operator_id)
        if op is None:
            raise V2Error(1020)
        own = portal.operator_by_email(access.email)
        if (own is None or own.id != op.id) and not portal.settings.operator_status_for_others:
            raise V2Error(1016)
        body = self._body(req)
        wanted = body.get("status")
        presence = (
            {"Available": "online", "Busy": "busy"}.get(wanted) if isinstance(wanted, str) else None
        )
        if presence is None:
            raise V2Error(1007, json_key="status")
        self.sim.world.set_presence(op, presence, req.now)
        return self._ok(req, "operator", v2_operator(portal, op))

    def h_list_departments(self, req: ApiRequest, portal: Portal, access: AccessToken) -> ApiAnswer:
        return self._page(
            req,
            iter(portal.departments.values()),
            v2_department,
            default=DIRECTORY_PAGE,
            maximum=LIST_PAGE_MAX,
            fixed=True,
        )

    def h_get_department(
        self, req: ApiRequest, portal: Portal, access: AccessToken, department_id: str
    ) -> ApiAnswer:
        dept = portal.departments.get(department_id)
        if dept is None:
            raise V2Error(1025)
        return self._ok(req, "department", v2_department(dept))

    # ----- webhooks ------------------------------------------------------------------------

    def _webhook(self, portal: Portal, webhook_id: str) -> Webhook:
        hook = portal.webhooks.get(webhook_id)
        if hook is None:
            raise V2Error(1019)
        return hook

    def h_list_webhooks(self, req: ApiRequest, portal: Portal, access: AccessToken) -> ApiAnswer:
        data = [v2_webhook(h) for h in portal.webhooks.values()]
        return self._ok(req, "list", data, sync_time=ms(req.now))

    def h_get_webhook(
        self, req: ApiRequest, portal: Portal, access: AccessToken, webhook_id: str
    ) -> ApiAnswer:
        return self._ok(req, "webhook", v2_webhook(self._webhook(portal, webhook_id)))

    def h_create_webhook(self, req: ApiRequest, portal: Portal, access: AccessToken) -> ApiAnswer:
        body = self._body(req)
        url = body.get("url")
        if not url:
            raise V2Error(1015, json_key="url")
        if not isinstance(url, str):
            raise V2Error(1007, json_key="url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise V2Error(1007, json_key="url")
        if portal.settings.strict_webhook_urls and parts.port is not None:
            # Real SalesIQ refuses webhook URLs that carry a port number.
            raise V2Error(1007, json_key="url")
        events = body.get("events")
        if not events:
            raise V2Error(1015, json_key="events")
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise V2Error(1007, json_key="events")
        if any(e not in V2_EVENTS for e in events):
            raise V2Error(1007, json_key="events")
        if body.get("type", "data") != "data":
            raise V2Error(1007, json_key="type")
        if any(h.url == url for h in portal.webhooks.values()):
            raise V2Error(1014)
        hook = Webhook(
            id=self.sim.world.ids(),
            url=url,
            events=list(dict.fromkeys(events)),
            created_time=req.now,
            version=str(body.get("version", "1")),
        )
        portal.webhooks[hook.id] = hook
        return self._ok(req, "webhook", v2_webhook(hook))

    def h_update_webhook(
        self, req: ApiRequest, portal: Portal, access: AccessToken, webhook_id: str
    ) -> ApiAnswer:
        # Reference: https://www.zoho.com/salesiq/help/developer-section/update-webhook-v2.html
        # "type" is mandatory; "events", when given, replace the webhook's events ("will not
        # get added to it"); a new "url" is first sent a HEAD that must answer 200.
        hook = self._webhook(portal, webhook_id)
        body = self._body(req)
        kind = body.get("type")
        if not kind:
            raise V2Error(1015, json_key="type")
        if kind != hook.type:
            raise V2Error(1007, json_key="type")
        events = hook.events
        if "events" in body:
            events = body["events"]
            if not events:
                raise V2Error(1015, json_key="events")
            if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
                raise V2Error(1007, json_key="events")
            if any(e not in V2_EVENTS for e in events):
                raise V2Error(1007, json_key="events")
        url = hook.url
        if "url" in body and body["url"] != hook.url:
            url = body["url"]
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                raise V2Error(1007, json_key="url")
            if portal.settings.strict_webhook_urls and parts.port is not None:
                raise V2Error(1007, json_key="url")
            if any(h.url == url for h in portal.webhooks.values()):
                raise V2Error(1014)
            if not self._answers_head(url):
                raise V2Error(1007, json_key="url")
        hook.events = list(dict.fromkeys(events))
        hook.url = url
        if "version" in body:
            hook.version = str(body["version"])
        return self._ok(req, "webhook", v2_webhook(hook))

    @staticmethod
    def _answers_head(url: str) -> bool:
        """Whether ``url`` answers SalesIQ's HEAD with a 200 (a webhook url being changed)."""
        try:
            return requests.head(url, timeout=5, allow_redirects=False).status_code == 200
        except requests.RequestException:
            return False

    def h_delete_webhook(
        self, req: ApiRequest, portal: Portal, access: AccessToken, webhook_id: str
    ) -> ApiAnswer:
        hook = self._webhook(portal, webhook_id)
        del portal.webhooks[hook.id]
        return self._ok(req, "webhook", v2_webhook(hook))

    def h_add_key(
        self, req: ApiRequest, portal: Portal, access: AccessToken, webhook_id: str
    ) -> ApiAnswer:
        # Reference: https://www.zoho.com/salesiq/help/developer-section/generate-public-key-webhook-v2.html
        # "The Maximum number of public keys allowed is 2, and the oldest key will be in
        # use always": a third is refused; the delivery signs with the oldest.
        hook = self._webhook(portal, webhook_id)
        if len(hook.keys) >= MAX_WEBHOOK_KEYS:
            raise V2Error(1017)
        private_key, public_b64 = req.extra.get("rsa_key") or self.sim.new_rsa_key()
        hook.keys.append(
            WebhookKey(
                id=self.sim.world.ids(),
                public_b64=public_b64,
                private_key=private_key,
                created_time=req.now,
                creator_id=self.sim.user_id(access.email),
            )
        )
        return self._ok(req, "webhook", v2_webhook(hook))

    def h_delete_key(
        self, req: ApiRequest, portal: Portal, access: AccessToken, webhook_id: str, key_id: str
    ) -> ApiAnswer:
        # Reference: https://www.zoho.com/salesiq/help/developer-section/delete-public-key-webhook-v2.html
        # "The webhooks should contain atleast one public key and the last available key
        # cannot be deleted."
        hook = self._webhook(portal, webhook_id)
        if not any(k.id == key_id for k in hook.keys):
            raise V2Error(1019)
        if len(hook.keys) <= 1:
            raise V2Error(1016, message="The last available key cannot be deleted.")
        hook.keys = [k for k in hook.keys if k.id != key_id]
        return self._ok(req, "webhook", v2_webhook(hook))
