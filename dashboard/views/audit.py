"""The audit trail: every action attempt, who made it, on what, and what became of it.

Admins see every portal's actions, Supervisors those of their portals, Viewers none
(403). A portal filter naming a portal the user may not see is a 404, as everywhere.
The page and the CSV export take the same filters from the query string.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.text import Truncator
from django.views.decorators.http import require_GET

from siq_integration import dialects
from siq_integration.models import Portal

from .. import access
from ..history import (
    PAGE_SIZE,
    PERIODS,
    RangeFilters,
    csv_cell,
    csv_download,
    csv_time,
    read_portal,
    read_range,
    unusable,
)
from ..models import Action, ActionKind, ActionState, OperatorStatus, RefusalTally, Role

PARAMETERS_SHOWN = 140  # characters; the whole text is in the cell's title

# SalesIQ's confirming webhook events, in words.
CONFIRMATIONS = {
    "conversation.transfer.accepted": "Transfer accepted",
    "conversation.transfer.rejected": "Transfer declined",
    "conversation.completed": "Chat ended",
    "chat.ended": "Chat ended",
    "poll.transfer.accepted": "Transfer seen in SalesIQ's chat list",
}


# --- filters -------------------------------------------------------------------------------


@dataclass
class Filters(RangeFilters):
    """The audit trail's filters: who acted, which action, what became of it (``outcome``
    is an ActionState: the words every other screen uses, "declined" included)."""

    username: str = ""
    kind: str = ""
    outcome: str = ""

    @property
    def step_level(self) -> bool:
        """Filters a drain's steps can match on their own (the portal is the drain's)."""
        return bool(self.username or self.kind or self.outcome or self.since or self.until)

    def _own_pairs(self) -> dict[str, str]:
        return {"user": self.username, "kind": self.kind, "outcome": self.outcome}

    def _own_words(self) -> list[str]:
        said = []
        if self.username:
            said.append(f"by {self.username}")
        if self.kind:
            said.append(str(ActionKind(self.kind).label))
        if self.outcome:
            said.append(str(ActionState(self.outcome).label).lower())
        return said


def parse_filters(request: HttpRequest, portals: QuerySet[Portal]) -> Filters:
    filters = Filters(portal=read_portal(request, portals))
    filters.username = request.GET.get("user", "").strip()[:150]
    kind = request.GET.get("kind", "").strip()
    if kind in ActionKind.values:
        filters.kind = kind
    elif kind:
        filters.errors["kind"] = "There is no such action."
    outcome = request.GET.get("outcome", "").strip()
    if outcome in ActionState.values:
        filters.outcome = outcome
    elif outcome:
        filters.errors["outcome"] = "There is no such outcome."
    read_range(request, filters)
    return filters


# --- what matches ----------------------------------------------------------------------------


def _matching(portals: QuerySet[Portal], filters: Filters) -> QuerySet[Action]:
    """Every action (drain steps included) the filters select, among ``portals``."""
    found = Action.objects.filter(portal__in=portals)
    if filters.portal:
        found = found.filter(portal=filters.portal)
    if filters.username:
        found = found.filter(username=filters.username)
    if filters.kind:
        found = found.filter(kind=filters.kind)
    if filters.outcome:
        found = found.filter(state=filters.outcome)
    return found.filter(filters.within("created_at"))


def audit_entries(portals: QuerySet[Portal], filters: Filters) -> QuerySet[Action]:
    """Top-level actions, newest first, that match or have a step that matches; each
    with its steps (a drain's transfers and status change) in the order they were made."""
    matching = _matching(portals, filters)
    return (
        Action.objects.filter(portal__in=portals, parent__isnull=True)
        .filter(
            Q(pk__in=matching.values("pk"))
            | Q(pk__in=matching.filter(parent__isnull=False).values("parent_id"))
        )
        .select_related("portal")
        .prefetch_related(
            Prefetch("steps", queryset=Action.objects.select_related("portal").order_by("pk"))
        )
        .order_by("-created_at", "-pk")
    )


# --- an entry in words -----------------------------------------------------------------------


def parameters_in_words(action: Action, dialect: str) -> list[str]:
    """The parameters as phrases ("to Support", "Asha", "note: …"); plain text."""
    params = action.params or {}
    if action.kind == ActionKind.TRANSFER:
        department = params.get("department_name") or (
            f"department {params['department_id']}" if params.get("department_id") else ""
        )
        operator = params.get("operator_name") or (
            f"operator {params['operator_id']}" if params.get("operator_id") else ""
        )
        places = [place for place in (department, operator) if place]
        said = [f"to {places[0]}", *places[1:]] if places else []
        if params.get("assign"):
            said.insert(0, "assigned from the waiting row")
        if params.get("note"):
            to_visitor = dialects.get(dialect).transfer_note_to_visitor
            lead = "message to the visitor" if to_visitor else "note"
            said.append(f"{lead}: {params['note']}")
        return said
    if action.kind == ActionKind.END:
        return [f"closing message: {params['message']}"] if params.get("message") else []
    if action.kind == ActionKind.MESSAGE:
        return [f"message: {params['text']}"] if params.get("text") else []
    if action.kind == ActionKind.OPERATOR_STATUS:
        status = str(params.get("status", ""))
        label = OperatorStatus(status).label if status in OperatorStatus.values else status
        return [f"to {label}"] if label else []
    if action.kind == ActionKind.DRAIN:
        count = len(params.get("moves") or [])
        chats = f"{count} chat{'s' if count != 1 else ''} to move"
        if params.get("set_busy", True):
            return [f"{chats}, then Busy"]
        return [f"{chats}; status left as it is"]
    if action.kind == ActionKind.CRM_LEAD:
        said = [f"e-mail {params['email']}"] if params.get("email") else []
        if params.get("record_id"):
            said.append(f"Zoho CRM lead {params['record_id']}")
        return said
    return []


def target_in_words(action: Action) -> tuple[str, str]:
    """(what, who): ("Chat", the visitor) or ("Operator", the operator)."""
    if action.kind in (
        ActionKind.TRANSFER,
        ActionKind.END,
        ActionKind.MESSAGE,
        ActionKind.PICKUP,
        ActionKind.CRM_LEAD,
    ):
        return "Chat", action.chat_label or action.chat_remote_id or "a visitor"
    return "Operator", action.operator_label or action.operator_remote_id or "an operator"


@dataclass
class Entry:
    action: Action
    what: str
    who: str
    parameters: str  # plain text, the template escapes it
    parameters_short: str
    outcome_words: str
    tone: str
    confirmation: str
    matched: bool = True
    steps: list[Entry] = field(default_factory=list)


def _entry(action: Action, dialect: str, *, matched: bool = True) -> Entry:
    what, who = target_in_words(action)
    parameters = " · ".join(parameters_in_words(action, dialect))
    return Entry(
        action=action,
        what=what,
        who=who,
        parameters=parameters,
        parameters_short=Truncator(parameters).chars(PARAMETERS_SHOWN),
        outcome_words=action.state_words,
        tone=action.tone,
        confirmation=CONFIRMATIONS.get(action.confirmation, action.confirmation),
        matched=matched,
    )


def _entries(actions: list[Action], portals: QuerySet[Portal], filters: Filters) -> list[Entry]:
    step_ids = [step.pk for action in actions for step in action.steps.all()]
    matched = set(step_ids)
    if step_ids and filters.step_level:
        found = _matching(portals, filters).filter(pk__in=step_ids)
        matched = set(found.values_list("pk", flat=True))
    entries = []
    for action in actions:
        entry = _entry(action, action.portal.dialect)
        entry.steps = [
            _entry(step, action.portal.dialect, matched=step.pk in matched)
            for step in action.steps.all()
        ]
        entries.append(entry)
    return entries


# Lines of refusals by role shown above the actions (newest first); older ones are counted.
REFUSAL_LINES = 20


def refusal_tallies(portals: QuerySet[Portal], filters: Filters) -> QuerySet[RefusalTally]:
    """Attempts a role was refused (counted, not stored one by one), under the same filters:
    "Viewer Ann was refused 37 transfers between 10:02 and 10:05"."""
    if filters.outcome and filters.outcome != ActionState.REFUSED:
        return RefusalTally.objects.none()
    found = RefusalTally.objects.filter(portal__in=portals).select_related("portal")
    if filters.portal:
        found = found.filter(portal=filters.portal)
    if filters.username:
        found = found.filter(username=filters.username)
    if filters.kind:
        found = found.filter(kind=filters.kind)
    return found.filter(filters.within("last_at"))


def _audit_portals(request: HttpRequest) -> QuerySet[Portal]:
    if access.role_of(request.user) not in (Role.ADMIN, Role.SUPERVISOR):
        raise PermissionDenied("The audit trail is for Admins and Supervisors.")
    return access.visible_portals(request.user)


# --- the page ----------------------------------------------------------------------------------


@login_required
@require_GET
def audit_list(request: HttpRequest) -> HttpResponse:
    portals = _audit_portals(request)
    filters = parse_filters(request, portals)
    page = Paginator(audit_entries(portals, filters), PAGE_SIZE).get_page(request.GET.get("page"))
    usernames = (
        Action.objects.filter(portal__in=portals)
        .order_by("username")
        .values_list("username", flat=True)
        .distinct()
    )
    tallies = refusal_tallies(portals, filters)
    usernames = sorted(
        {
            *usernames,
            *RefusalTally.objects.filter(portal__in=portals).values_list("username", flat=True),
        }
    )
    context = {
        "filters": filters,
        "refusals": list(tallies[:REFUSAL_LINES]),
        "refusals_more": max(0, tallies.count() - REFUSAL_LINES),
        "viewer_clock": filters.clock,  # rows in the zone the filters read
        "entries": _entries(list(page.object_list), portals, filters),
        "page": page,
        "portals": list(portals.order_by("name")),
        "usernames": list(usernames),
        "kinds": ActionKind.choices,
        "outcomes": ActionState.choices,
        "periods": list(PERIODS.items()),
        "query": filters.query(),
        "newer_query": filters.query(page=page.previous_page_number())
        if page.has_previous()
        else "",
        "older_query": filters.query(page=page.next_page_number()) if page.has_next() else "",
    }
    return render(request, "audit/list.html", context)


# --- CSV ---------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "id",
    "time",
    "user",
    "portal",
    "action",
    "target",
    "parameters",
    "outcome",
    "message",
    "error_code",
    "error_detail",
    "confirmation",
    "confirmed_at",
    "parent",
]


def _csv_row(action: Action, portal_name: str, filters: Filters) -> list[str]:
    what, who = target_in_words(action)
    return [
        str(action.pk),
        csv_time(action.created_at, filters),
        csv_cell(action.username),
        csv_cell(portal_name),
        action.kind,
        csv_cell(f"{what.lower()}: {who}"),
        json.dumps(action.params, ensure_ascii=False, sort_keys=True),
        action.state,  # the same word as the page, the drawer and the toast
        csv_cell(action.message),
        csv_cell(action.error_code),
        csv_cell(action.error_detail),
        csv_cell(action.confirmation),
        csv_time(action.confirmed_at, filters),
        str(action.parent_id or ""),
    ]


def _csv_rows(actions: QuerySet[Action], filters: Filters) -> Iterator[list[str]]:
    for action in actions.iterator(chunk_size=500):
        yield _csv_row(action, action.portal.name, filters)
        for step in action.steps.all():
            yield _csv_row(step, action.portal.name, filters)


@login_required
@require_GET
def audit_csv(request: HttpRequest) -> HttpResponse:
    portals = _audit_portals(request)
    filters = parse_filters(request, portals)
    if refusal := unusable(filters):
        return refusal
    return csv_download(
        CSV_COLUMNS, _csv_rows(audit_entries(portals, filters), filters), name="salesiq-audit"
    )
