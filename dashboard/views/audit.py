"""The audit trail: every action attempt, who made it, on what, and what became of it.

Admins see every portal's actions, Supervisors those of their portals, Viewers none
(403). A portal filter naming a portal the user may not see is a 404, as everywhere.
The page and the CSV export take the same filters from the query string.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.text import Truncator
from django.views.decorators.http import require_GET

from siq_integration import dialects
from siq_integration.models import Portal

from .. import access, times
from ..models import Action, ActionKind, ActionState, OperatorStatus, RefusalTally, Role

PAGE_SIZE = 100
PARAMETERS_SHOWN = 140  # characters; the whole text is in the cell's title

PERIODS = {
    "today": "Today",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
}
_PERIOD_LENGTH = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}

# SalesIQ's confirming webhook events, in words.
CONFIRMATIONS = {
    "conversation.transfer.accepted": "Transfer accepted",
    "conversation.transfer.rejected": "Transfer declined",
    "conversation.completed": "Chat ended",
    "chat.ended": "Chat ended",
    "poll.transfer.accepted": "Transfer seen in SalesIQ's chat list",
}


# --- filters shared with the alert history ------------------------------------------------


@dataclass
class RangeFilters:
    """A portal and a time range, as the history pages (this one, the alert history) read
    them from the query string; ``errors`` holds what could not be used, in words.

    A page adds its own filters in a subclass and says them in ``_own_pairs`` and
    ``_own_words``; the portal comes first and the time range last, in links and in words.
    """

    portal: Portal | None = None
    period: str = ""
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    since_text: str = ""
    until_text: str = ""
    # The viewer's IANA zone ("Europe/Berlin"): their profile's, else their browser's (sent
    # by the page's script as tz=, or known from its cookie); "" when unknown: UTC.
    zone_name: str = ""
    zone_problem: str = ""  # a tz= this server does not know, in words (times are then UTC)
    clock: times.Clock = times.UTC_CLOCK  # how this page writes times: the zone above
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def zone(self) -> tzinfo:
        """The viewer's zone when known, else UTC."""
        return times.zone_named(self.zone_name) or UTC

    @property
    def has_zone(self) -> bool:
        return bool(self.zone_name)

    @property
    def zone_label(self) -> str:
        return self.zone_name or "UTC"

    def within(self, name: str) -> Q:
        """The time range on the model field ``name`` (everything when there is none)."""
        found = Q()
        if self.since and "from" not in self.errors:
            found &= Q(**{f"{name}__gte": self.since})
        if self.until and "to" not in self.errors:
            found &= Q(**{f"{name}__lt": self.until})
        return found

    def query(self, **extra: object) -> str:
        """The filters as a query string (for the pages, the CSV link)."""
        pairs = {
            "portal": str(self.portal.pk) if self.portal else "",
            **self._own_pairs(),
            "period": self.period,
            "from": "" if self.period else self.since_text,
            "to": "" if self.period else self.until_text,
            "tz": self.zone_name,
            **{key: str(value) for key, value in extra.items()},
        }
        return urlencode({key: value for key, value in pairs.items() if value})

    def words(self) -> list[str]:
        """The filters as a supervisor would say them (plain text; the template escapes)."""
        said = [self.portal.name] if self.portal else []
        said += self._own_words()
        # Typed times are in the viewer's zone when it is known; else UTC, and that is said.
        zone = "" if self.has_zone else " UTC"
        if self.period:
            today_zone = " (UTC)" if self.period == "today" and not self.has_zone else ""
            said.append(PERIODS[self.period] + today_zone)
        elif self.since_text and self.until_text:
            said.append(
                f"from {self._show(self.since_text)} to {self._show(self.until_text)}{zone}"
            )
        elif self.since_text:
            said.append(f"since {self._show(self.since_text)}{zone}")
        elif self.until_text:
            said.append(f"up to {self._show(self.until_text)}{zone}")
        return said

    def _own_pairs(self) -> dict[str, str]:
        return {}

    def _own_words(self) -> list[str]:
        return []

    @staticmethod
    def _show(text: str) -> str:
        return text.replace("T", " ")


def read_zone(request: HttpRequest, filters: RangeFilters) -> None:
    """The viewer's zone into ``filters``: the one on their profile, else the browser's
    (``tz`` from the page's script, else the browser's cookie). A ``tz`` this server does
    not know is said in words, and the page falls back to UTC."""
    viewer = times.viewer_clock(request)
    asked = request.GET.get("tz", "").strip()
    if viewer.zone_choice:
        filters.zone_name = viewer.zone_choice
    elif asked and times.zone_named(asked):
        filters.zone_name = asked
    elif asked:
        filters.zone_problem = (
            f"“{asked[:64]}” is not a time zone this server knows (they read like "
            "Europe/Berlin), so times here are in UTC."
        )
    elif viewer.zone is not None:
        filters.zone_name = str(viewer.zone)
    # The page writes its times in the same zone as it counts them (UTC, said, when unknown).
    filters.clock = times.Clock(
        zone=times.zone_named(filters.zone_name),
        hour12=viewer.hour12,
        format_choice=viewer.format_choice,
        zone_choice=filters.zone_name or ("UTC" if filters.zone_problem else ""),
    )


# Typed dates outside these years are refused: nothing here is older than 2000, and dates
# near year 1 or 9999 cannot be moved between zones or to the end of their day (that was a 500).
FIRST_YEAR, LAST_YEAR = 2000, 2100
OUT_OF_RANGE = f"Out of range: pick a date from the year {FIRST_YEAR} to {LAST_YEAR}."


class OutOfRange(ValueError):
    pass


def _moment(text: str, zone: tzinfo, *, end: bool) -> datetime:
    """A typed date or date-time; naive ones are in the viewer's zone (its offset on that
    day, summer or winter). ``end`` makes it the exclusive end of the day, minute or second
    it names ("to 10:00" includes 10:00:59); a day ends at the next local midnight.
    Raises OutOfRange for a year outside FIRST_YEAR..LAST_YEAR, ValueError for no date."""
    value = datetime.fromisoformat(text)
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise OutOfRange(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    if end:
        if len(text) <= 10:
            value += timedelta(days=1)
        elif len(text) <= 16:
            value += timedelta(minutes=1)
        elif value.microsecond == 0:
            value += timedelta(seconds=1)
    return value.astimezone(UTC)


def read_portal(request: HttpRequest, portals: QuerySet[Portal]) -> Portal | None:
    """The ``portal`` asked for among ``portals``; any other is a 404."""
    raw = request.GET.get("portal", "").strip()
    if not raw:
        return None
    try:
        uuid.UUID(raw)
    except ValueError:
        raise Http404("No such portal") from None
    portal = portals.filter(pk=raw).first()
    if portal is None:
        raise Http404("No such portal")  # whether it exists or not: its name never leaks
    return portal


def read_range(request: HttpRequest, filters: RangeFilters) -> None:
    """The viewer's zone, then a preset period or typed from/to times, into ``filters``."""
    read_zone(request, filters)
    zone = filters.zone
    period = request.GET.get("period", "").strip()
    if period in PERIODS:
        filters.period = period
        now = timezone.now()
        if period == "today":
            today = now.astimezone(zone).date()
            filters.since = datetime.combine(today, time.min, tzinfo=zone).astimezone(UTC)
        else:
            filters.since = now - _PERIOD_LENGTH[period]
        return
    if period:
        filters.errors["period"] = "There is no such period."
    for name, attribute, end in (("from", "since", False), ("to", "until", True)):
        text = request.GET.get(name, "").strip()
        if not text:
            continue
        try:
            setattr(filters, attribute, _moment(text, zone, end=end))
        except OutOfRange:
            filters.errors[name] = OUT_OF_RANGE
            continue
        except ValueError:
            filters.errors[name] = "Not a date and time (like 2025-03-14 09:30)."
            continue
        setattr(filters, f"{attribute}_text", text[:32])
    if filters.since and filters.until and filters.until <= filters.since:
        filters.errors["to"] = "This is before the start."


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
        if params.get("note"):
            to_visitor = dialects.get(dialect).transfer_note_to_visitor
            lead = "message to the visitor" if to_visitor else "note"
            said.append(f"{lead}: {params['note']}")
        return said
    if action.kind == ActionKind.END:
        return [f"closing message: {params['message']}"] if params.get("message") else []
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
    return []


def target_in_words(action: Action) -> tuple[str, str]:
    """(what, who): ("Chat", the visitor) or ("Operator", the operator)."""
    if action.kind in (ActionKind.TRANSFER, ActionKind.END):
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


def csv_time(moment: datetime | None, filters: RangeFilters) -> str:
    """A time for a spreadsheet: ISO 8601 to the second in the viewer's zone, with its offset
    ("2025-03-30T03:30:00+02:00"), or in UTC ("…Z") when their zone is not known."""
    return times.iso_in(moment, filters.zone if filters.has_zone else None)


def csv_cell(value: str) -> str:
    """Text a spreadsheet will not run: a visitor may call themselves "=HYPERLINK(…)"."""
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value


class _Echo:
    """csv.writer writes to this and gets the line back, for streaming."""

    def write(self, value: str) -> str:
        return value


def csv_download(columns: list[str], rows: Iterable[list[str]], *, name: str) -> HttpResponse:
    """``rows`` streamed as a CSV attachment called ``name``-<now>.csv, Excel-friendly."""

    def lines() -> Iterator[str]:
        writer = csv.writer(_Echo())
        yield "\ufeff"  # Excel then reads the file as UTF-8
        yield writer.writerow(columns)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{name}-{timezone.now():%Y%m%d-%H%M}.csv"'
    )
    return response


def unusable(filters: RangeFilters) -> HttpResponse | None:
    """A 400 naming the filters an export cannot use (the page shows them beside each field)."""
    if not filters.errors:
        return None
    problems = "; ".join(f"{name}: {text}" for name, text in filters.errors.items())
    return HttpResponse(
        f"The filters cannot be used: {problems}",
        status=400,
        content_type="text/plain; charset=utf-8",
    )


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
