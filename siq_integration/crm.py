"""The Zoho CRM client: who a visitor is to the business, and a lead made from a chat.

Every call goes through ``CrmClient._request``: it spends the portal's CRM credit
budget (counted apart from SalesIQ's: CRM counts API credits per 24 hours for the whole
CRM account), writes the Zoho auth header with the portal's grant (one grant serves
SalesIQ and CRM once an admin added CRM's scopes), refreshes once on an invalid token,
turns each status of Zoho's list (seed 002) into an exception of the ``Crm…`` family
with a sentence a supervisor understands, and records CRM's health on the portal. A 429
stops every CRM call for the portal until the pause ends.

Never called while applying a webhook: the dashboard asks from a worker job and keeps
the answer for a while (a chat row never waits for CRM).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from . import exceptions as exc
from . import oauth
from .models import CallWindow, Portal

logger = logging.getLogger(__name__)

API_VERSION = "v8"
# The scopes are oauth.CRM_SCOPES (asked for when an admin adds CRM to a portal).
CRM_SCOPES = oauth.CRM_SCOPES
DEAL_FIELDS = "Deal_Name,Stage,Amount,Closing_Date"
# Stages that end a deal (Zoho's default pipeline); any other stage is open.
CLOSED_WON = ("closed won", "closed-won")
CLOSED_STAGES = (*CLOSED_WON, "closed lost", "closed-lost", "closed lost to competition")
# A 429 without a reset time: how long the dashboard leaves CRM alone.
CREDITS_PAUSE = timedelta(hours=1)
CONCURRENCY_PAUSE = timedelta(seconds=10)


@dataclass(frozen=True)
class Deal:
    record_id: str
    name: str
    stage: str
    amount: Decimal | None
    closing_date: str = ""

    @property
    def is_open(self) -> bool:
        return self.stage.strip().lower() not in CLOSED_STAGES

    @property
    def is_won(self) -> bool:
        return self.stage.strip().lower() in CLOSED_WON


@dataclass(frozen=True)
class Person:
    """A visitor as CRM knows them: a contact (with their deals) or a lead."""

    module: str  # "Contacts" | "Leads"
    record_id: str
    name: str
    email: str
    company: str  # a lead's company, a contact's account
    owner: str
    lead_status: str = ""  # leads only
    deals: tuple[Deal, ...] = field(default_factory=tuple)
    url: str = ""

    @property
    def kind(self) -> str:
        return "contact" if self.module == "Contacts" else "lead"

    @property
    def open_deals(self) -> tuple[Deal, ...]:
        return tuple(d for d in self.deals if d.is_open)

    @property
    def is_customer(self) -> bool:
        """A contact with a won deal is an existing customer."""
        return any(d.is_won for d in self.deals)

    @property
    def biggest_open_amount(self) -> Decimal | None:
        amounts = [d.amount for d in self.open_deals if d.amount is not None]
        return max(amounts) if amounts else None


@dataclass(frozen=True)
class CreatedLead:
    record_id: str
    url: str


def record_url(api_domain: str, module: str, record_id: str) -> str:
    """Where a person opens the record in CRM's own screens.

    Zoho's API host ``www.zohoapis.<dc>`` has its web app at ``crm.zoho.<dc>``; any other
    host (a proxy, the simulator) serves both, so the page is under the same host.
    *(unconfirmed: the org-less tab URL redirects to the signed-in user's org)*"""
    parts = urlsplit(api_domain)
    host = parts.hostname or ""
    if host.startswith("www.zohoapis."):
        return f"https://crm.zoho.{host[len('www.zohoapis.') :]}/crm/tab/{module}/{record_id}"
    return f"{api_domain.rstrip('/')}/crm/tab/{module}/{record_id}"


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("name") or "")
    return "" if value is None else str(value)


def _amount(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


# --- the budget ----------------------------------------------------------------------------


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def spend_credit(portal: Portal) -> None:
    """Take one CRM credit from ``portal``'s daily share, or raise.

    Raises CrmCreditsExhausted while CRM has asked the dashboard to stop (a 429), and
    CrmBudgetExhausted when the share for today is spent. One conditional UPDATE: safe
    across processes."""
    now = timezone.now()
    paused = Portal.objects.filter(pk=portal.pk).values_list("crm_paused_until", flat=True).first()
    if paused and paused > now:
        raise exc.CrmCreditsExhausted(
            "Zoho CRM asked the dashboard to stop for a while; "
            f"CRM lookups resume at {paused:%H:%M} UTC.",
            retry_at=paused,
        )
    starts_at = _day_start(now)
    if not CallWindow.objects.filter(
        portal_id=portal.pk, span=CallWindow.Span.CRM_DAY, starts_at=starts_at
    ).exists():
        try:
            with transaction.atomic():
                CallWindow.objects.create(
                    portal_id=portal.pk, span=CallWindow.Span.CRM_DAY, starts_at=starts_at
                )
        except IntegrityError:
            pass  # another process made it first
    spent = CallWindow.objects.filter(
        portal_id=portal.pk,
        span=CallWindow.Span.CRM_DAY,
        starts_at=starts_at,
        used__lt=portal.crm_credits_per_day,
    ).update(used=F("used") + 1)
    if not spent:
        retry_at = starts_at + timedelta(days=1)
        raise exc.CrmBudgetExhausted(
            "This portal has used today's Zoho CRM budget "
            f"({portal.crm_credits_per_day} credits); CRM lookups resume at "
            f"{retry_at:%H:%M} UTC.",
            retry_at=retry_at,
        )


def credits_used_today(portal: Portal) -> int:
    return (
        CallWindow.objects.filter(
            portal_id=portal.pk,
            span=CallWindow.Span.CRM_DAY,
            starts_at=_day_start(timezone.now()),
        )
        .values_list("used", flat=True)
        .first()
        or 0
    )


# --- errors ------------------------------------------------------------------------------


def _error_for(status: int, body: Any) -> exc.CrmError:
    """The exception for a CRM error answer (Zoho's ``{"code","details","message"}``)."""
    code = str(body.get("code") or "") if isinstance(body, dict) else ""
    message = str(body.get("message") or "") if isinstance(body, dict) else ""
    details = body.get("details") if isinstance(body, dict) else None
    details = details if isinstance(details, dict) else {}
    kw = {"code": code or None, "http_status": status, "detail": message[:200]}
    if status == 401 and code == "OAUTH_SCOPE_MISMATCH":
        return exc.CrmScopeMissing(**kw)
    if status == 401:
        return exc.CrmTokenInvalid(**kw)
    if status == 403:
        return exc.CrmPermissionDenied(**kw)
    if status == 404:
        return exc.CrmNotFound(**kw)
    if status in (405, 415):
        return exc.CrmRequestRefused(**kw)
    if status == 413:
        return exc.CrmTooLarge(**kw)
    if status == 429:
        if "concurrency" in message.lower():
            retry_at = timezone.now() + CONCURRENCY_PAUSE
            return exc.CrmConcurrencyLimited(
                "Zoho CRM is busy with other requests from this Zoho account; the dashboard "
                f"tries again after {retry_at:%H:%M:%S} UTC.",
                retry_at=retry_at,
                **kw,
            )
        retry_at = timezone.now() + CREDITS_PAUSE
        return exc.CrmCreditsExhausted(
            "Zoho CRM's API credits for the last 24 hours are used up; the dashboard asks "
            f"CRM again after {retry_at:%H:%M} UTC.",
            retry_at=retry_at,
            **kw,
        )
    if status == 207:
        return exc.CrmPartlyDone(**kw)
    if status >= 500:
        return exc.CrmUnavailable(**kw)
    if code == "DUPLICATE_DATA":
        return _duplicate(details, kw)
    field_name = str(details.get("api_name") or details.get("param") or "")
    return exc.CrmInvalidData(field=field_name.replace("_", " "), **kw)


def _duplicate(details: dict, kw: dict, *, api_domain: str = "") -> exc.CrmDuplicate:
    record = details.get("duplicate_record") if isinstance(details, dict) else None
    record = record if isinstance(record, dict) else {}
    module = record.get("module")
    module_name = str(module.get("api_name") or "Leads") if isinstance(module, dict) else "Leads"
    record_id = str(record.get("id") or "")
    return exc.CrmDuplicate(
        record_id=record_id,
        module=module_name,
        owner=_text(record.get("Owner")),
        url=record_url(api_domain, module_name, record_id) if api_domain and record_id else "",
        **kw,
    )


# --- the client ----------------------------------------------------------------------------


@dataclass
class _Answer:
    status: int
    body: Any


class CrmClient:
    """Talks to the Zoho CRM of one portal. Cheap to create; make one per unit of work."""

    def __init__(self, portal: Portal, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if not portal.has_crm:
            raise exc.CrmNotConnected()
        self.portal = portal
        self._sleep = sleep
        self._http: requests.Session | None = None
        self.calls = 0

    @property
    def base_url(self) -> str:
        return f"{self.portal.crm_api_domain.rstrip('/')}/crm/{API_VERSION}"

    def url_of(self, module: str, record_id: str) -> str:
        return record_url(self.portal.crm_api_domain, module, record_id)

    # --- what the dashboard asks ---------------------------------------------------------

    def find_person(self, email: str) -> Person | None:
        """The visitor with ``email``: a contact first, then a lead; None: not in CRM."""
        email = email.strip()
        if not email or "@" not in email:
            raise exc.CrmInvalidData("The visitor's e-mail address is not one CRM can search.")
        for module in ("Contacts", "Leads"):
            # Reference: https://www.zoho.com/crm/developer/docs/api/v8/search-records.html
            answer = self._request("GET", f"/{module}/search", params={"email": email})
            rows = answer.body.get("data") if isinstance(answer.body, dict) else None
            if answer.status == 204 or not rows:
                continue  # 204 No Content: no match in this module
            record = rows[0]
            deals: tuple[Deal, ...] = ()
            if module == "Contacts":
                deals = self._deals(str(record.get("id")))
            return self._person(module, record, deals)
        return None

    def create_lead(
        self,
        *,
        last_name: str,
        email: str,
        first_name: str = "",
        company: str = "",
        description: str = "",
        lead_source: str = "Chat",
    ) -> CreatedLead:
        """Make a lead; CrmDuplicate (naming the record) when CRM has the e-mail already."""
        row = {
            "Last_Name": last_name.strip()[:80] or email,
            "First_Name": first_name.strip()[:40],
            "Email": email.strip(),
            "Company": company.strip()[:200],
            "Description": description[:32_000],
            "Lead_Source": lead_source,
        }
        row = {k: v for k, v in row.items() if v}
        # Reference: https://www.zoho.com/crm/developer/docs/api/v8/insert-records.html
        # "trigger": [] would skip CRM's workflows; leave them on, as a person's entry would.
        answer = self._request("POST", "/Leads", json={"data": [row]}, idempotent=False)
        rows = answer.body.get("data") if isinstance(answer.body, dict) else None
        first = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], dict) else {}
        details = first.get("details") if isinstance(first.get("details"), dict) else {}
        if first.get("status") == "success" and details.get("id"):
            record_id = str(details["id"])
            return CreatedLead(record_id=record_id, url=self.url_of("Leads", record_id))
        raise self._row_error(answer.status, first)

    def check(self) -> str:
        """One cheap call that proves the CRM grant works; the connected CRM user's name."""
        # Reference: https://www.zoho.com/crm/developer/docs/api/v8/get-users.html
        answer = self._request("GET", "/users", params={"type": "CurrentUser"})
        users = answer.body.get("users") if isinstance(answer.body, dict) else None
        if isinstance(users, list) and users and isinstance(users[0], dict):
            return str(users[0].get("full_name") or users[0].get("email") or "")
        return ""

    # --- reading answers -----------------------------------------------------------------

    def _deals(self, contact_id: str) -> tuple[Deal, ...]:
        # Reference: https://www.zoho.com/crm/developer/docs/api/v8/get-related-records.html
        answer = self._request(
            "GET", f"/Contacts/{quote(contact_id)}/Deals", params={"fields": DEAL_FIELDS}
        )
        rows = answer.body.get("data") if isinstance(answer.body, dict) else None
        deals = []
        for row in rows or []:
            if not isinstance(row, dict):
                continue
            deals.append(
                Deal(
                    record_id=str(row.get("id") or ""),
                    name=_text(row.get("Deal_Name")),
                    stage=_text(row.get("Stage")),
                    amount=_amount(row.get("Amount")),
                    closing_date=_text(row.get("Closing_Date")),
                )
            )
        return tuple(deals)

    def _person(self, module: str, record: dict, deals: tuple[Deal, ...]) -> Person:
        record_id = str(record.get("id") or "")
        name = _text(record.get("Full_Name")) or " ".join(
            p for p in (_text(record.get("First_Name")), _text(record.get("Last_Name"))) if p
        )
        company = (
            _text(record.get("Account_Name"))
            if module == "Contacts"
            else _text(record.get("Company"))
        )
        return Person(
            module=module,
            record_id=record_id,
            name=name,
            email=_text(record.get("Email")),
            company=company,
            owner=_text(record.get("Owner")),
            lead_status=_text(record.get("Lead_Status")) if module == "Leads" else "",
            deals=deals,
            url=self.url_of(module, record_id),
        )

    def _row_error(self, status: int, row: dict) -> exc.CrmError:
        """The error of one record of an insert answer (201/207/400 carry one per record)."""
        if not row:
            return _error_for(status, {})
        code = str(row.get("code") or "")
        details = row.get("details") if isinstance(row.get("details"), dict) else {}
        kw = {"code": code or None, "http_status": status, "detail": str(row.get("message"))}
        if code == "DUPLICATE_DATA":
            return _duplicate(details, kw, api_domain=self.portal.crm_api_domain)
        if status == 207 and not code:
            return exc.CrmPartlyDone(**kw)
        return _error_for(400 if status in (201, 207) else status, row)

    # --- the choke point -----------------------------------------------------------------

    def _session(self, token: str) -> requests.Session:
        client_id, _ = self.portal.oauth_client_credentials()
        if self._http is None:
            self._http = oauth.session_for(client_id or "salesiq-supervisor")
        self._http.token = {"access_token": token, "token_type": "Bearer"}
        return self._http

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        idempotent: bool = True,
    ) -> _Answer:
        refreshed = False
        while True:
            try:
                token = oauth.access_token(self.portal)
            except exc.SalesIQError as failure:
                raise self._fail(
                    exc.CrmTokenInvalid(detail=failure.technical())
                    if isinstance(failure, exc.TokenInvalid)
                    else failure
                ) from None
            spend_credit(self.portal)
            self.calls += 1
            try:
                response = self._session(token).request(
                    method,
                    self.base_url + path,
                    params=params,
                    json=json,
                    timeout=(settings.SIQ_HTTP_CONNECT_TIMEOUT, settings.SIQ_HTTP_READ_TIMEOUT),
                    headers={"Accept": "application/json"},
                )
            except requests.RequestException as error:
                failure = exc.CrmUnavailable(
                    "Zoho CRM took too long to answer."
                    if isinstance(error, requests.Timeout)
                    else "Zoho CRM did not answer.",
                    detail=f"{type(error).__name__} on {method} {path}",
                )
                raise self._fail(failure) from None
            status = response.status_code
            body: Any = None
            if response.content:
                try:
                    body = response.json()
                except ValueError:
                    body = None
            if status in (200, 201, 202, 204, 304) or (status in (207, 400) and _has_rows(body)):
                self._succeeded()
                return _Answer(status=status, body=body)
            failure = _error_for(status, body)
            if isinstance(failure, exc.CrmTokenInvalid) and not refreshed:
                refreshed = True  # refused at the door: nothing happened; once more
                try:
                    oauth.access_token(self.portal, rejected=token)
                except exc.SalesIQError as refresh_failure:
                    raise self._fail(
                        exc.CrmTokenInvalid(detail=refresh_failure.technical())
                    ) from None
                continue
            if isinstance(failure, exc.CrmRequestRefused):
                logger.error("Zoho CRM refused our request: %s", failure.technical())
            raise self._fail(failure)

    def _fail(self, failure: exc.SalesIQError) -> exc.SalesIQError:
        """Record a failure on the portal's CRM health (and the 429 pause); return it."""
        now = timezone.now()
        changes: dict[str, Any] = {}
        said_429 = isinstance(failure, exc.CrmCreditsExhausted | exc.CrmConcurrencyLimited)
        if said_429 and failure.retry_at and failure.code is not None:  # CRM's, not our pause
            changes["crm_paused_until"] = failure.retry_at
        if not isinstance(failure, exc.CrmDuplicate | exc.CrmInvalidData | exc.CrmBudgetExhausted):
            # Refusals about the data say nothing about CRM's health.
            changes.update(crm_last_error_at=now, crm_last_error=failure.user_message[:500])
        if changes:
            Portal.objects.filter(pk=self.portal.pk).update(**changes)
            for name, value in changes.items():
                setattr(self.portal, name, value)
        return failure

    def _succeeded(self) -> None:
        now = timezone.now()
        last = self.portal.crm_last_success_at
        if last is None or self.portal.crm_current_error or now - last > timedelta(seconds=5):
            Portal.objects.filter(pk=self.portal.pk).update(crm_last_success_at=now)
            self.portal.crm_last_success_at = now


def _has_rows(body: Any) -> bool:
    """An insert's answer carries one result per record (201, 207 and 400 alike)."""
    return isinstance(body, dict) and isinstance(body.get("data"), list) and bool(body["data"])
