"""The visitor in Zoho CRM, on the dashboard's side: the lookup cache, the worker's job that
fills it, the chat rows' marker, and the action "Create lead from this chat".

CRM is asked from the worker only (``CrmLookups``, off the tick's thread), never while
applying a webhook: a chat row is applied and published first, and gains its marker when
the job has an answer. Each visitor e-mail of a portal is looked up once and the answer
kept for ``settings.CRM_LOOKUP_TTL`` seconds (a failure for ``CRM_RETRY_AFTER``), shared by
all of that visitor's chats.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from siq_integration import exceptions as exc
from siq_integration.crm import CrmClient, Person
from siq_integration.models import Portal

from .actions.locks import begin, first_attempt
from .actions.outcomes import finish
from .actions.refusals import check_access
from .models import OPEN_CHAT_STATUSES, Action, ActionKind, ActionOutcome, Chat, CrmPerson
from .state.changes import Changes, record

logger = logging.getLogger(__name__)

CRM_EVERY = 2.0  # seconds between rounds of the CRM job
LOOKUPS_PER_ROUND = 10  # per portal: a burst of new visitors is spread over a few rounds


def _ttl() -> timedelta:
    return timedelta(seconds=settings.CRM_LOOKUP_TTL)


def _retry_after() -> timedelta:
    return timedelta(seconds=settings.CRM_RETRY_AFTER)


def normal_email(email: str) -> str:
    return (email or "").strip().lower()


# --- the cache ----------------------------------------------------------------------------


def person_for(chat: Chat) -> CrmPerson | None:
    """The cached CRM answer for ``chat``'s visitor (one query), or None."""
    email = normal_email(chat.visitor_email)
    if not email or not chat.portal.has_crm:
        return None
    return CrmPerson.objects.filter(portal_id=chat.portal_id, email=email).first()


def ask(chat: Chat) -> CrmPerson | None:
    """The cached answer for ``chat``'s visitor, asking the worker for one when there is none
    (a drawer opened on an ended chat: the job looks up open chats by itself)."""
    email = normal_email(chat.visitor_email)
    if not email or "@" not in email or not chat.portal.has_crm:
        return None
    person, _ = CrmPerson.objects.get_or_create(portal_id=chat.portal_id, email=email)
    return person


def _store(person: CrmPerson, found: Person | None, now: datetime) -> None:
    person.looked_up_at = now
    person.expires_at = now + _ttl()
    person.error = ""
    if found is None:
        person.state = CrmPerson.State.NOT_FOUND
        person.module = person.record_id = person.name = person.company = ""
        person.owner = person.lead_status = person.url = ""
        person.open_deals = []
        person.biggest_open_amount = None
        person.is_customer = False
    else:
        person.state = CrmPerson.State.FOUND
        person.module = found.module
        person.record_id = found.record_id[:32]
        person.name = found.name[:200]
        person.company = found.company[:200]
        person.owner = found.owner[:200]
        person.lead_status = found.lead_status[:100]
        person.url = found.url[:500]
        deals = sorted(found.open_deals, key=lambda d: d.amount or 0, reverse=True)
        person.open_deals = [
            {
                "id": d.record_id,
                "name": d.name,
                "stage": d.stage,
                "amount": None if d.amount is None else str(d.amount),
                "closing_date": d.closing_date,
            }
            for d in deals
        ]
        person.biggest_open_amount = found.biggest_open_amount
        person.is_customer = found.is_customer
    person.save()


def look_up(portal: Portal, person: CrmPerson, client: CrmClient) -> bool:
    """Ask CRM about ``person`` and store the answer; False when CRM is paused or the
    budget is spent (the round stops: the next ones would be held back too)."""
    now = timezone.now()
    try:
        found = client.find_person(person.email)
    except (exc.CrmBudgetExhausted, exc.CrmCreditsExhausted, exc.CrmConcurrencyLimited) as held:
        logger.info("CRM lookups of portal %s held back: %s", portal.pk, held.technical())
        return False
    except exc.SalesIQError as failure:
        person.state = CrmPerson.State.FAILED
        person.error = failure.user_message[:500]
        person.looked_up_at = now
        person.expires_at = now + _retry_after()
        person.save()
        return not isinstance(failure, exc.CrmUnavailable | exc.CrmTokenInvalid)
    _store(person, found, now)
    return True


def lookups_round(portal: Portal) -> set[int]:
    """One round for one portal: look up the visitors of open chats (and those a drawer
    asked about) not known or expired, then bring the chat rows' markers in line. Returns
    the chats whose marker changed (published)."""
    if not portal.has_crm:
        return set()
    now = timezone.now()
    open_chats = list(
        Chat.objects.filter(portal=portal, status__in=OPEN_CHAT_STATUSES)
        .exclude(visitor_email="")
        .values_list("pk", "visitor_email", "crm_marker")
    )
    emails = {normal_email(email) for _pk, email, _m in open_chats if "@" in email}
    known = {p.email: p for p in CrmPerson.objects.filter(portal=portal, email__in=emails)}
    due = [
        email
        for email in sorted(emails)
        if email not in known
        or (known[email].expires_at is not None and known[email].expires_at <= now)
    ]
    asked = list(
        CrmPerson.objects.filter(portal=portal, state=CrmPerson.State.PENDING)
        .exclude(email__in=due)
        .order_by("asked_at")
        .values_list("email", flat=True)[:LOOKUPS_PER_ROUND]
    )
    wanted = (due + asked)[:LOOKUPS_PER_ROUND]
    if wanted:
        try:
            client = CrmClient(portal)
        except exc.CrmNotConnected:
            return set()
        for email in wanted:
            person = known.get(email)
            if person is None:
                person, _ = CrmPerson.objects.get_or_create(portal=portal, email=email)
                known[email] = person
            if not look_up(portal, person, client):
                break
    return mark_rows(portal, open_chats, known)


def mark_rows(portal: Portal, open_chats: list[tuple[int, str, str]], known: dict) -> set[int]:
    """Set each open chat's marker from the cache and the portal's amount; publish those
    that changed."""
    changed: dict[str, list[int]] = {}
    for pk, email, marker in open_chats:
        person = known.get(normal_email(email))
        wanted = person.marker(portal.crm_big_deal_amount) if person else ""
        if wanted != marker:
            changed.setdefault(wanted, []).append(pk)
    if not changed:
        return set()
    with transaction.atomic():
        for marker, pks in changed.items():
            Chat.objects.filter(pk__in=pks).update(crm_marker=marker)
        ids = {pk for pks in changed.values() for pk in pks}
        record(Changes(portal.pk, chats=ids))
    return ids


# --- the action --------------------------------------------------------------------------


def lead_fields(chat: Chat, *, link_back: str) -> dict[str, str]:
    """What "Create lead from this chat" sends: the visitor's name, e-mail and company, and
    a description with the chat's question and a link back to the chat."""
    name = (chat.visitor_name or "").strip()
    first, _, last = name.rpartition(" ")
    if not last:
        first, last = "", name
    company = ""
    for key, value in (chat.visitor_details or {}).items():
        if str(key).lower() in ("company", "company_name", "organisation", "organization"):
            company = str(value)
            break
    started = chat.started_at or chat.fact_at
    lines = [f"From a SalesIQ chat started {started:%Y-%m-%d %H:%M} UTC."]
    if chat.question:
        lines.append(f"Question: {chat.question}")
    lines.append(f"Chat in the supervisor dashboard: {link_back}")
    return {
        "first_name": first,
        "last_name": last or normal_email(chat.visitor_email).split("@")[0],
        "email": chat.visitor_email.strip(),
        "company": company,
        "description": "\n".join(lines),
    }


def chat_link(chat: Chat) -> str:
    base = getattr(settings, "PUBLIC_BASE_URL", "") or ""
    return f"{base}{reverse('home')}?chat={chat.pk}"


def crm_create_lead(*, key: str, user: Any, chat: Chat, page: str | None = None) -> Action:
    """Create a lead in Zoho CRM from ``chat``: audited like every action, idempotent by
    ``key`` (a double click sends once), refused as a duplicate (naming the record) when
    CRM has the visitor's e-mail already."""
    portal = chat.portal
    check_access(user, portal, ActionKind.CRM_LEAD)
    fields = lead_fields(chat, link_back=chat_link(chat))
    action, created = begin(
        key=key,
        user=user,
        portal=portal,
        kind=ActionKind.CRM_LEAD,
        chat=chat,
        params={"email": fields["email"], "name": f"{fields['first_name']} {fields['last_name']}"},
        page=page,
    )
    if not created:
        return first_attempt(action)
    if not portal.has_crm:
        return finish(
            action,
            ActionOutcome.REFUSED,
            exc.CrmNotConnected.default_message,
            code="CrmNotConnected",
            page=page,
        )
    if "@" not in fields["email"]:
        return finish(
            action,
            ActionOutcome.REFUSED,
            "This visitor gave no e-mail address, so no lead was made.",
            code="no_email",
            page=page,
        )
    known = person_for(chat)
    if known is not None and known.state == CrmPerson.State.FOUND:
        # CRM has them already (as looked up): no credit spent on a certain refusal.
        duplicate = exc.CrmDuplicate(
            record_id=known.record_id, module=known.module, owner=known.owner, url=known.url
        )
        return finish(
            action, ActionOutcome.REFUSED, duplicate.user_message, failure=duplicate, page=page
        )
    try:
        created_lead = CrmClient(portal).create_lead(lead_source="Chat", **fields)
    except exc.SalesIQError as failure:
        logger.info("Creating a CRM lead refused: %s", failure.technical())
        failed = failure.never_sent or failure.unanswered
        outcome = ActionOutcome.FAILED if failed else ActionOutcome.REFUSED
        return finish(action, outcome, failure.user_message, failure=failure, page=page)
    now = timezone.now()
    person, _ = CrmPerson.objects.get_or_create(portal=portal, email=normal_email(fields["email"]))
    _store(
        person,
        Person(
            module="Leads",
            record_id=created_lead.record_id,
            name=f"{fields['first_name']} {fields['last_name']}".strip(),
            email=fields["email"],
            company=fields["company"],
            owner="",
            lead_status="",
            url=created_lead.url,
        ),
        now,
    )
    Action.objects.filter(pk=action.pk).update(
        params={**action.params, "record_id": created_lead.record_id, "url": created_lead.url}
    )
    return finish(
        action,
        ActionOutcome.DONE,
        f"Lead {created_lead.record_id} created in Zoho CRM for {action.chat_label}.",
        page=page,
    )


# --- the portal page ------------------------------------------------------------------


def health(portal: Portal, now: datetime | None = None) -> dict[str, str]:
    """CRM's health beside SalesIQ's on the portal page: a tone, a word, a sentence."""
    now = now or timezone.now()
    if not portal.crm_connected_at:
        return {
            "tone": "off",
            "label": "Not added",
            "sentence": "Zoho CRM is not added to this portal; it works without it.",
        }
    if not portal.has_crm:
        return {
            "tone": "bad",
            "label": "Sign-in needed",
            "sentence": "The portal's Zoho sign-in is gone: connect it again, then add CRM.",
        }
    if portal.crm_paused_until and portal.crm_paused_until > now:
        return {
            "tone": "warn",
            "label": "Paused",
            "sentence": (
                "Zoho CRM asked the dashboard to stop (too many requests); lookups resume at "
                f"{portal.crm_paused_until:%H:%M} UTC."
            ),
        }
    if portal.crm_current_error:
        return {"tone": "bad", "label": "Failing", "sentence": portal.crm_current_error}
    if portal.crm_last_success_at:
        return {"tone": "ok", "label": "Working", "sentence": "Zoho CRM answers."}
    return {"tone": "ok", "label": "Added", "sentence": "Zoho CRM is added; no lookup yet."}


def portal_context(portal: Portal) -> dict[str, Any]:
    """What the portal page shows of CRM, beside SalesIQ's health."""
    from siq_integration.crm import credits_used_today

    from .forms.crm import CrmSettingsForm

    return {
        "crm_health": health(portal),
        "crm_credits_used": credits_used_today(portal) if portal.crm_connected_at else 0,
        "crm_form": CrmSettingsForm(
            initial={
                "big_deal_amount": portal.crm_big_deal_amount,
                "credits_per_day": portal.crm_credits_per_day,
            }
        ),
    }


def check_after_adding(request: Any, portal: Portal) -> None:
    """Right after the consent that added CRM: one call proves it works, in words."""
    from django.contrib import messages

    portal.refresh_from_db()
    try:
        who = CrmClient(portal).check()
    except exc.SalesIQError as failure:
        messages.warning(
            request, f"Zoho CRM was added to {portal.name}, but it failed: {failure.user_message}"
        )
        return
    messages.info(
        request, f"Zoho CRM is added to {portal.name}" + (f", signed in as {who}." if who else ".")
    )
