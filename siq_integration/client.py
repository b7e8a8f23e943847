"""The SalesIQ client: every call to SalesIQ goes through ``SalesIQClient._request``.

That one place picks the base URL (data centre + dialect), spends the portal's
call budget, writes the Zoho auth header, applies timeouts, unwraps either
envelope, raises the exception family of ``exceptions``, refreshes once on an
invalid token, retries with jittered exponential backoff where a retry is safe,
and records the portal's health.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from urllib3.exceptions import NewConnectionError

from . import budget, dialects, oauth
from . import exceptions as exc
from .budget import Priority
from .dialects import Call, Payload
from .models import Portal
from .normalised import (
    Conversation,
    Department,
    Message,
    Operator,
    OperatorStatus,
    OperatorSync,
    Webhook,
    WebhookKey,
)
from .normalised import Portal as RemotePortal

logger = logging.getLogger(__name__)

# Errors worth another attempt of an idempotent call after a pause.
_RETRYABLE = (exc.Unavailable,)
# Do not spend more than this recording "last success" on a busy portal.
_SUCCESS_RECORD_INTERVAL = timedelta(seconds=5)
# A listing longer than this many pages is taken to go round in circles.
MAX_PAGES = 500
_LISTING_WORDS = {
    "conversations": "chats",
    "operators": "operators",
    "departments": "departments",
    "brands": "brands",
}


@dataclass(frozen=True)
class ClosedPage:
    """One page of ended and missed chats (``SalesIQClient.closed_conversation_pages``)."""

    conversations: list[Conversation]
    # Where the listing goes on (which of the dialect's queries, which page of it), or None
    # when this was its last page.
    resume_at: tuple[int, int] | None


def record_failure(portal: Portal, failure: exc.SalesIQError) -> None:
    """Note a connection-level failure on ``portal`` for the health page."""
    now = timezone.now()
    fields = {
        "last_error_at": now,
        "last_error": failure.user_message[:500],
        "last_error_code": str(failure.code or "")[:40],
        "last_error_kind": type(failure).__name__[:40],
    }
    Portal.objects.filter(pk=portal.pk).update(
        problem_since=Coalesce(F("problem_since"), Value(now)), **fields
    )
    for name, value in fields.items():
        setattr(portal, name, value)
    if portal.problem_since is None:
        portal.problem_since = now


def _never_sent(error: requests.RequestException) -> bool:
    """True when the request provably did not reach SalesIQ (safe to send again)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    if isinstance(error, requests.ConnectionError):
        reason = getattr(error.args[0], "reason", None) if error.args else None
        return isinstance(reason, NewConnectionError)
    return False


class SalesIQClient:
    """Talks to one portal. Cheap to create; make one per unit of work."""

    def __init__(
        self,
        portal: Portal,
        *,
        priority: Priority = Priority.BACKGROUND,
        sleep: Callable[[float], None] = time.sleep,
        access_token: str | None = None,
        budgeted: bool = True,
        attempts: int | None = None,
    ) -> None:
        """``access_token`` pins a token not stored yet (probing a new grant before it is
        saved): no refresh, and the portal's health is left alone. ``budgeted=False``: a
        portal being added has no budget yet (nothing of it is saved): its few probing calls
        are counted in ``unbudgeted_calls`` and charged once it is saved. ``attempts``
        overrides SIQ_RETRY_ATTEMPTS (1: no retry, for a caller that asks again on its own
        schedule)."""
        self.portal = portal
        self.priority = priority
        self.dialect = dialects.get(portal.dialect)
        self._sleep = sleep
        self._http: requests.Session | None = None
        self._pinned_token = access_token
        self._budgeted = budgeted
        self.unbudgeted_calls = 0
        # What a listing could not read whole, in words, and which listings those were.
        self.notices: list[str] = []
        self.incomplete: set[str] = set()
        self._attempts = attempts
        # Requests sent (each spent a call of the budget, or counts in unbudgeted_calls).
        self.calls = 0

    # --- the choke point ----------------------------------------------------------------

    def _base_url(self) -> str:
        return self.dialect.base_url(self.portal.data_center_entry.api_url, self.portal.screen_name)

    def _session(self, access_token: str) -> requests.Session:
        client_id, _ = self.portal.oauth_client_credentials()
        if self._http is None:
            self._http = oauth.session_for(client_id or "salesiq-supervisor")
        self._http.token = {"access_token": access_token, "token_type": "Bearer"}
        return self._http

    def _request(self, call: Call, *, url: str | None = None) -> Payload:
        try:
            url = url or self._base_url() + call.path
        except exc.SalesIQError as failure:  # no screen name, unknown data centre
            self._record_failure(failure)
            raise
        attempts = self._attempts or settings.SIQ_RETRY_ATTEMPTS
        token_refreshed = False
        attempt = 0
        while True:
            attempt += 1
            token = self._access_token()
            if self._budgeted:
                budget.spend(self.portal, priority=self.priority)
            else:
                self.unbudgeted_calls += 1
            self.calls += 1
            started = time.monotonic()
            try:
                response = self._session(token).request(
                    call.method,
                    url,
                    params=call.params or None,
                    json=call.json,
                    timeout=(settings.SIQ_HTTP_CONNECT_TIMEOUT, settings.SIQ_HTTP_READ_TIMEOUT),
                    headers={"Accept": "application/json"},
                )
            except requests.RequestException as error:
                failure = exc.Unavailable(
                    "SalesIQ did not answer."
                    if not isinstance(error, requests.Timeout)
                    else "SalesIQ took too long to answer.",
                    detail=f"{type(error).__name__} on {call.method} {call.path}",
                )
                retry_safe = call.idempotent or _never_sent(error)
                if retry_safe and attempt < attempts:
                    self._pause(attempt)
                    continue
                self._record_failure(failure)
                raise failure from None
            logger.debug(
                "SalesIQ %s %s → %s in %.0f ms",
                call.method,
                call.path,
                response.status_code,
                (time.monotonic() - started) * 1000,
            )
            try:
                payload = self.dialect.unwrap(
                    response.status_code, response.headers, response.content, call=call
                )
            except exc.TokenInvalid as failure:
                if not token_refreshed:
                    # Refused at the door: nothing happened, so any call may go again once.
                    token_refreshed = True
                    self._access_token(rejected=token)
                    continue
                self._record_failure(failure)
                raise
            except exc.RateLimited as failure:
                self._note_rate_limit(failure)
                raise
            except _RETRYABLE as failure:
                if call.idempotent and attempt < attempts:
                    self._pause(attempt)
                    continue
                self._record_failure(failure)
                raise
            except exc.Misconfigured as failure:
                if isinstance(failure, exc.RequestHeadersRefused):
                    logger.error("SalesIQ refused our request headers: %s", failure.technical())
                self._record_failure(failure)
                raise
            except exc.SalesIQError as failure:
                # Refusals about the thing asked for (not found, bad value, not allowed)
                # say nothing about the connection's health; the caller shows them.
                if isinstance(failure, exc.ScopeMissing):
                    self._record_failure(failure)
                raise
            self._respect_rate_headers(response.headers)
            self._record_success()
            return payload

    def _access_token(self, *, rejected: str | None = None) -> str:
        if self._pinned_token is not None:
            if rejected is not None:
                raise exc.TokenInvalid("Zoho's new sign-in was refused by SalesIQ straight away.")
            return self._pinned_token
        try:
            return oauth.access_token(self.portal, rejected=rejected)
        except exc.SalesIQError as failure:
            self._record_failure(failure)
            raise

    def _respect_rate_headers(self, headers: Any) -> None:
        """Stop before the 429 when SalesIQ says no call is left (the reference dialect)."""
        reset = self.dialect.paused_until(headers)
        if reset and reset > timezone.now():
            Portal.objects.filter(pk=self.portal.pk).update(rate_limited_until=reset)

    def _pause(self, attempt: int) -> None:
        ceiling = min(
            settings.SIQ_RETRY_MAX_DELAY, settings.SIQ_RETRY_BASE_DELAY * 2 ** (attempt - 1)
        )
        self._sleep(random.uniform(0, ceiling))  # noqa: S311 (full jitter, not security)

    # --- health ----------------------------------------------------------------------------

    def _record_success(self) -> None:
        if self._pinned_token is not None:
            return
        now = timezone.now()
        changes: dict[str, Any] = {}
        last = self.portal.last_success_at
        failing = self.portal.last_error_at is not None and (
            last is None or self.portal.last_error_at >= last
        )
        # Throttled while all is well; at once when it ends a run of failures.
        if last is None or failing or now - last > _SUCCESS_RECORD_INTERVAL:
            changes["last_success_at"] = now
            changes["problem_since"] = None
        if self.portal.rate_limit_strikes:
            changes["rate_limit_strikes"] = 0
        if changes:
            Portal.objects.filter(pk=self.portal.pk).update(**changes)
            for name, value in changes.items():
                setattr(self.portal, name, value)

    def _record_failure(self, failure: exc.SalesIQError) -> None:
        if self._pinned_token is None:
            record_failure(self.portal, failure)

    def _note_rate_limit(self, failure: exc.RateLimited) -> None:
        strikes = self.portal.rate_limit_strikes + 1
        if failure.retry_at is None or not self.dialect.names_retry_time:
            # No reset time given: the pause doubles with every strike in a row.
            failure.retry_at = dialects.backoff_until(strikes - 1)
        Portal.objects.filter(pk=self.portal.pk).update(
            rate_limited_until=failure.retry_at, rate_limit_strikes=strikes
        )
        self.portal.rate_limit_strikes = strikes
        self.portal.rate_limited_until = failure.retry_at
        self._record_failure(failure)

    # --- paging ------------------------------------------------------------------------------

    def _pages(
        self,
        path: str,
        params: dict[str, Any],
        size: int,
        *,
        listing: str = "",
        first_page: int = 1,
    ) -> Iterator[Payload]:
        """Every page of a listing, each item once (its ``data`` keeps only the items not
        seen on an earlier page). A page that brings nothing new (SalesIQ ignoring the page
        parameter, or going round in circles) ends the listing: what was read is kept, the
        listing counts as incomplete and ``notices`` says so. ``first_page``: resume a
        listing read partly before (items seen then are not known here)."""
        page = first_page
        seen: set[str] = set()
        while True:
            query = {**params, **self.dialect.page_params(page, size, listing=listing)}
            payload = self._request(Call("GET", path, params=query))
            items = payload.data if isinstance(payload.data, list) else []
            fresh = []
            for item in items:
                key = dialects.as_str(item.get("id")) if isinstance(item, dict) else ""
                if key and key in seen:
                    continue  # moved from an earlier page while we read: counted there
                seen.add(key)
                fresh.append(item)
            if items and not fresh:
                self._stopped_repeating(listing or path, page, len(seen))
                return
            yield replace(payload, data=fresh) if len(fresh) < len(items) else payload
            if not items or not self.dialect.has_more(payload, size, len(items)):
                return
            if page >= MAX_PAGES:
                self._stopped_repeating(listing or path, page, len(seen), endless=True)
                return
            page += 1

    def _stopped_repeating(self, listing: str, page: int, kept: int, *, endless=False) -> None:
        what = _LISTING_WORDS.get(listing.strip("/"), "items")
        if endless:
            words = (
                f"SalesIQ's list of {what} did not end after {page} pages, so the dashboard "
                f"stopped reading it and kept the {kept} it had."
            )
        else:
            words = (
                f"SalesIQ sent the same {what} again on page {page} of its list, so the "
                f"dashboard stopped reading there and kept the {kept} it had; any beyond "
                "that page are missing until SalesIQ pages correctly."
            )
        logger.warning(
            "Portal %s: listing %s stopped at page %d (%s); kept %d",
            self.portal.pk,
            listing,
            page,
            "no end" if endless else "a page repeated ids already seen",
            kept,
        )
        self.notices.append(words)
        self.incomplete.add(listing.strip("/"))

    def _all(
        self, path: str, params: dict[str, Any], size: int, *, listing: str = ""
    ) -> Iterator[dict]:
        for payload in self._pages(path, params, size, listing=listing):
            if isinstance(payload.data, list):
                yield from (item for item in payload.data if isinstance(item, dict))

    # --- reads ----------------------------------------------------------------------------------

    def list_portals(self) -> list[RemotePortal]:
        """The portals the connected Zoho user can reach (v2 only)."""
        if not self.dialect.lists_portals:
            return []
        url = self.dialect.portals_url(self.portal.data_center_entry.api_url)
        payload = self._request(Call("GET", "/portals"), url=url)
        items = payload.data if isinstance(payload.data, list) else []
        return [self.dialect.parse_portal(item) for item in items if isinstance(item, dict)]

    def probe(self, resource: str) -> None:
        """One small read of ``resource`` (conversations, operators, departments, webhooks):
        proves the grant reaches it without paging through everything."""
        paths = {
            "conversations": (
                self.dialect.conversations_path(),
                self.dialect.open_conversation_queries()[0],
            ),
            "operators": (self.dialect.operators_path(), {}),
            "departments": (
                self.dialect.brands_path()
                if self.dialect.departments_by_brand
                else self.dialect.departments_path(),
                {},
            ),
            "webhooks": (self.dialect.webhooks_path(), {}),
        }
        path, params = paths[resource]
        if resource != "webhooks":
            params = {**params, **self.dialect.page_params(1, 1, listing=resource)}
        self._request(Call("GET", path, params=params))

    def list_open_conversations(self) -> list[Conversation]:
        """Every waiting and connected chat, all pages."""
        seen: dict[str, Conversation] = {}
        for query in self.dialect.open_conversation_queries():
            for raw in self._all(
                self.dialect.conversations_path(),
                query,
                self.dialect.page_size,
                listing="conversations",
            ):
                conversation = self.dialect.parse_conversation(raw)
                # A chat can move between pages while we read; the last reading wins.
                seen[conversation.id] = conversation
        return list(seen.values())

    def closed_conversation_pages(
        self,
        *,
        arrived_since: datetime,
        changed_since: datetime,
        resume_at: tuple[int, int] = (0, 1),
    ) -> Iterator[ClosedPage]:
        """Ended and missed chats that began since ``arrived_since`` and, where the dialect
        can ask, changed since ``changed_since``: one page per call, so the caller may stop
        between pages (its budget) and go on later from ``resume_at`` (query, page)."""
        queries = self.dialect.closed_conversation_queries(
            arrived_since=arrived_since, changed_since=changed_since
        )
        first_query, first_page = resume_at
        for index in range(first_query, len(queries)):
            start = first_page if index == first_query else 1
            payloads = self._pages(
                self.dialect.conversations_path(),
                queries[index],
                self.dialect.page_size,
                listing="conversations",
                first_page=start,
            )
            for number, payload in enumerate(payloads, start=start):
                items = payload.data if isinstance(payload.data, list) else []
                if items and self.dialect.has_more(payload, self.dialect.page_size, len(items)):
                    resume: tuple[int, int] | None = (index, number + 1)
                else:
                    resume = (index + 1, 1) if index + 1 < len(queries) else None
                yield ClosedPage(
                    conversations=[
                        self.dialect.parse_conversation(raw)
                        for raw in items
                        if isinstance(raw, dict)
                    ],
                    resume_at=resume,
                )

    def get_conversation(self, conversation_id: str) -> Conversation:
        payload = self._request(Call("GET", self.dialect.conversation_path(conversation_id)))
        return self.dialect.parse_conversation(payload.data)

    def list_messages(self, conversation_id: str) -> list[Message]:
        path = self.dialect.messages_path(conversation_id)
        return [
            self.dialect.parse_message(conversation_id, raw)
            for raw in self._all(path, {}, self.dialect.page_size)
        ]

    def list_operators(self, *, since: str | None = None) -> OperatorSync:
        """Operators; in v2, only those changed since ``since`` (a previous sync_time)."""
        params = self.dialect.operators_params(since)
        sync_time: str | None = None
        operators: list[Operator] = []
        for payload in self._pages(
            self.dialect.operators_path(),
            params,
            self.dialect.small_page_size,
            listing="operators",
        ):
            if sync_time is None and payload.meta.get("sync_time") is not None:
                # The first page's time: changes made while we page are asked for next time.
                sync_time = str(payload.meta["sync_time"])
            if isinstance(payload.data, list):
                operators.extend(
                    self.dialect.parse_operator(raw)
                    for raw in payload.data
                    if isinstance(raw, dict)
                )
        complete = not params and "operators" not in self.incomplete
        return OperatorSync(operators=operators, sync_time=sync_time, complete=complete)

    def list_departments(self) -> list[Department]:
        if not self.dialect.departments_by_brand:
            raws = self._all(
                self.dialect.departments_path(),
                {},
                self.dialect.small_page_size,
                listing="departments",
            )
            return [self.dialect.parse_department(raw) for raw in raws]
        departments: dict[str, Department] = {}
        for brand in self._all(self.dialect.brands_path(), {}, self.dialect.page_size):
            path = self.dialect.brand_departments_path(dialects.as_str(brand.get("id")))
            for raw in self._all(path, {}, self.dialect.page_size):
                department = self.dialect.parse_department(raw)
                departments[department.id] = department
        return list(departments.values())

    # --- actions ---------------------------------------------------------------------------

    def transfer(
        self,
        conversation_id: str,
        *,
        department_id: str = "",
        operator_id: str = "",
        note: str = "",
    ) -> Conversation | None:
        call = self.dialect.transfer_call(
            conversation_id, department_id=department_id, operator_id=operator_id, note=note
        )
        payload = self._request(call)
        return self._conversation_or_none(payload)

    def close(self, conversation_id: str, *, message: str = "") -> Conversation | None:
        payload = self._request(self.dialect.close_call(conversation_id, message=message))
        return self._conversation_or_none(payload)

    def send_message(self, conversation_id: str, *, text: str) -> Message | None:
        """Write ``text`` in the chat as the portal's connected user (Send Message (Operator)
        in v2, "Send Chat Message" in the reference dialect): the message SalesIQ made, when
        its answer carries one."""
        payload = self._request(self.dialect.send_message_call(conversation_id, text=text))
        if isinstance(payload.data, dict) and (
            payload.data.get("id") or payload.data.get("sequence_id")
        ):
            return self.dialect.parse_message(conversation_id, payload.data)
        return None

    def pickup(self, conversation_id: str) -> Conversation | None:
        """Pick up a waiting chat as the portal's connected user (v2 only, ``can_pick_up``):
        the conversation as SalesIQ has it then, with that user as its operator."""
        payload = self._request(self.dialect.pickup_call(conversation_id))
        return self._conversation_or_none(payload)

    def set_operator_status(self, operator_id: str, status: OperatorStatus) -> Operator | None:
        payload = self._request(self.dialect.operator_status_call(operator_id, status))
        if isinstance(payload.data, dict) and payload.data.get("id"):
            return self.dialect.parse_operator(payload.data)
        return None

    def _conversation_or_none(self, payload: Payload) -> Conversation | None:
        if isinstance(payload.data, dict) and (
            payload.data.get("id") or payload.data.get("chat_id")
        ):
            return self.dialect.parse_conversation(payload.data)
        return None

    # --- webhooks --------------------------------------------------------------------------

    def list_webhooks(self) -> list[Webhook]:
        payload = self._request(Call("GET", self.dialect.webhooks_path()))
        items = payload.data if isinstance(payload.data, list) else []
        return [self.dialect.parse_webhook(item) for item in items if isinstance(item, dict)]

    def register_webhook(self, *, url: str, events: list[str], secret: str = "") -> Webhook:
        """Register ``url`` for ``events``; an existing registration of ``url`` is reused."""
        call = self.dialect.register_webhook_call(url=url, events=events, secret=secret)
        try:
            payload = self._request(call)
        except exc.AlreadyExists:
            for webhook in self.list_webhooks():
                if webhook.url == url:
                    return webhook
            raise
        return self.dialect.parse_webhook(payload.data)

    def update_webhook_events(self, webhook_id: str, events: list[str]) -> Webhook:
        """Make ``events`` the webhook's whole list of events (SalesIQ replaces the list, it
        does not add to it); returns the webhook as SalesIQ now has it. Its url, keys and
        id stay as they are."""
        # Reference: https://www.zoho.com/salesiq/help/developer-section/update-webhook-v2.html
        payload = self._request(self.dialect.update_webhook_call(webhook_id, events=events))
        if not isinstance(payload.data, dict):
            raise exc.SalesIQError("SalesIQ answered without the webhook.")
        return self.dialect.parse_webhook(payload.data)

    def delete_webhook(self, webhook_id: str) -> None:
        with contextlib.suppress(exc.NotFound):  # already gone: what we wanted
            self._request(Call("DELETE", self.dialect.webhook_path(webhook_id)))

    def get_webhook(self, webhook_id: str) -> Webhook:
        """The webhook as SalesIQ has it now, with every public key it lists (v2): keys
        can be added or removed in SalesIQ's own settings."""
        # Reference: https://www.zoho.com/salesiq/help/developer-section/generate-public-key-webhook-v2.html
        # (the webhook object and its public_keys: at most 2, the oldest signs).
        payload = self._request(Call("GET", self.dialect.webhook_path(webhook_id)))
        if not isinstance(payload.data, dict):
            raise exc.SalesIQError("SalesIQ answered without the webhook.")
        return self.dialect.parse_webhook(payload.data)

    def create_webhook_key(self, webhook_id: str) -> WebhookKey:
        """Ask SalesIQ (v2) for a new signing key; returns the newest public key."""
        webhook = self.add_webhook_key(webhook_id)
        return max(
            webhook.public_keys,
            key=lambda key: (key.created_at.timestamp() if key.created_at else 0, key.id),
        )

    def add_webhook_key(self, webhook_id: str) -> Webhook:
        """Ask SalesIQ (v2) for a new signing key; returns the webhook with every key it
        now lists (the new one and any older one, which SalesIQ keeps signing with)."""
        if not self.dialect.has_webhook_keys:
            raise exc.BadRequest("Only SalesIQ v2 signs webhooks with public keys.")
        payload = self._request(
            Call("POST", self.dialect.webhook_keys_path(webhook_id), json={}, idempotent=False)
        )
        webhook = self.dialect.parse_webhook(payload.data)
        if not webhook.public_keys:
            raise exc.SalesIQError("SalesIQ created a key but did not return it.")
        return webhook

    def delete_webhook_key(self, webhook_id: str, key_id: str) -> None:
        with contextlib.suppress(exc.NotFound):
            self._request(Call("DELETE", self.dialect.webhook_key_path(webhook_id, key_id)))
