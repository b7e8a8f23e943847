"""The alert history: every alert raised on the portals one may see, what became of it,
and how quickly somebody took it.

Admins see every portal's alerts, Supervisors and Viewers those of their portals; a portal
filter naming a portal the user may not see is a 404, as everywhere. The filters, the time
range and the CSV export work as on the audit page: both come from dashboard/history.py.
The summary (per rule, per day) comes from a few aggregate queries over the filtered set,
never one per row.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from siq_integration.models import Portal

from .. import access, times
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
from ..models import Alert, AlertKind, Department, Escalation, Severity

DAYS_SHOWN = 31  # the per-day table covers at most the last 31 days of the range

# What became of an alert, as the state filter offers it.
STATES = {
    "open": "Still open",
    "unacknowledged": "Not acknowledged",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
    "escalated": "Escalated",
    "escalation_failed": "Escalation failed",
}


def _in_state(state: str) -> Q | Exists:
    return {
        "open": Q(resolved_at__isnull=True),
        "unacknowledged": Q(acknowledged_at__isnull=True),
        "acknowledged": Q(acknowledged_at__isnull=False),
        "resolved": Q(resolved_at__isnull=False),
        "escalated": Q(escalated_at__isnull=False),
        "escalation_failed": Exists(Escalation.objects.filter(alert=OuterRef("pk"), ok=False)),
    }[state]


SEVERITY_TONES = {Severity.CRITICAL: "bad", Severity.WARNING: "warn", Severity.INFO: "off"}

# Column heads of the per-day table (the rule's full name is in the head's title).
SHORT_RULE_NAMES = {
    AlertKind.LONG_CHAT: "Long chat",
    AlertKind.LONG_WAIT: "Long wait",
    AlertKind.UNANSWERED: "Unanswered",
    AlertKind.OPERATOR_AWAY_WITH_CHATS: "Operator away",
    AlertKind.OPERATOR_OVER_CAPACITY: "Over capacity",
    AlertKind.MISSED_CHAT: "Missed",
    AlertKind.LOW_RATING: "Low rating",
    AlertKind.WEBHOOK_SILENCE: "No webhooks",
    AlertKind.SALESIQ_UNREACHABLE: "Unreachable",
    AlertKind.RECONNECT_NEEDED: "Reconnect",
    AlertKind.SERVICE_LEVEL_LOW: "Service level",
    AlertKind.MISSED_SHARE_HIGH: "Missed share",
}
_RULE_ORDER = {kind: n for n, kind in enumerate(AlertKind.values)}


def _rule_name(kind: str) -> str:
    return str(AlertKind(kind).label) if kind in AlertKind.values else kind


# "45s", "2m 10s", "1h 05m", "2d 3h": as every duration on every page (dashboard/times.py).
duration_in_words = times.duration


# --- filters -------------------------------------------------------------------------------


@dataclass
class AlertFilters(RangeFilters):
    """The alert history's filters: which rule, how severe, what became of it."""

    kind: str = ""
    severity: str = ""
    state: str = ""

    def _own_pairs(self) -> dict[str, str]:
        return {"rule": self.kind, "severity": self.severity, "state": self.state}

    def _own_words(self) -> list[str]:
        said = []
        if self.kind:
            said.append(_rule_name(self.kind))
        if self.severity:
            said.append(str(Severity(self.severity).label).lower())
        if self.state:
            said.append(STATES[self.state].lower())
        return said


def parse_alert_filters(request: HttpRequest, portals: QuerySet[Portal]) -> AlertFilters:
    filters = AlertFilters(portal=read_portal(request, portals))
    for name, attribute, known, error in (
        ("rule", "kind", AlertKind.values, "There is no such rule."),
        ("severity", "severity", Severity.values, "There is no such severity."),
        ("state", "state", list(STATES), "There is no such state."),
    ):
        value = request.GET.get(name, "").strip()
        if value in known:
            setattr(filters, attribute, value)
        elif value:
            filters.errors[name] = error
    read_range(request, filters)
    return filters


def matching_alerts(portals: QuerySet[Portal], filters: AlertFilters) -> QuerySet[Alert]:
    """The alerts the filters select among ``portals`` (no ordering, no related rows)."""
    found = Alert.objects.filter(portal__in=portals)
    if filters.portal:
        found = found.filter(portal=filters.portal)
    if filters.kind:
        found = found.filter(kind=filters.kind)
    if filters.severity:
        found = found.filter(severity=filters.severity)
    if filters.state:
        found = found.filter(_in_state(filters.state))
    return found.filter(filters.within("raised_at"))


def history(found: QuerySet[Alert]) -> QuerySet[Alert]:
    """Newest first, each with what its row shows (portal, target, escalations)."""
    return (
        found.select_related("portal", "chat", "operator")
        .prefetch_related(
            Prefetch("escalations", queryset=Escalation.objects.order_by("sent_at", "pk"))
        )
        .order_by("-raised_at", "-pk")
    )


# --- a row in words ----------------------------------------------------------------------------


def target_in_words(alert: Alert) -> tuple[str, str]:
    """(what, who): ("Chat", the visitor), ("Operator", the name), ("Department", its name)
    or ("Portal", its name)."""
    kind, _, remote_id = alert.target.partition(":")
    if kind == "chat":
        name = alert.chat.visitor_name if alert.chat else ""
        return "Chat", name or (f"a visitor (chat {remote_id})" if remote_id else "a visitor")
    if kind == "operator":
        name = alert.operator.shown_name if alert.operator else ""
        return "Operator", name or f"operator {remote_id}"
    if kind == "department":
        name = (
            Department.objects.filter(portal_id=alert.portal_id, remote_id=remote_id)
            .values_list("name", flat=True)
            .first()
        )
        return "Department", name or (f"department {remote_id}" if remote_id else "no department")
    return "Portal", alert.portal.name


def seconds_to_acknowledge(alert: Alert) -> float | None:
    if alert.acknowledged_at is None:
        return None
    return max(0.0, (alert.acknowledged_at - alert.raised_at).total_seconds())


@dataclass
class Row:
    alert: Alert
    tone: str
    what: str
    who: str
    time_to_acknowledge: str  # "" when nobody acknowledged it
    open_for: str  # how long until it resolved; "" while open
    escalations: list[Escalation]


def _row(alert: Alert) -> Row:
    what, who = target_in_words(alert)
    waited = seconds_to_acknowledge(alert)
    return Row(
        alert=alert,
        tone=SEVERITY_TONES.get(alert.severity, "off"),
        what=what,
        who=who,
        time_to_acknowledge="" if waited is None else duration_in_words(waited),
        open_for=duration_in_words((alert.resolved_at - alert.raised_at).total_seconds())
        if alert.resolved_at
        else "",
        escalations=list(alert.escalations.all()),
    )


# --- the summary ---------------------------------------------------------------------------------


@dataclass
class RuleLine:
    """One rule's alerts in the filtered set (or, with ``kind`` empty, all of them)."""

    kind: str
    label: str
    count: int = 0
    acknowledged: int = 0
    still_open: int = 0
    escalated: int = 0
    waits: list[float] = field(default_factory=list)  # seconds to acknowledge

    @property
    def median(self) -> str:
        return duration_in_words(statistics.median(self.waits)) if self.waits else ""

    @property
    def longest(self) -> str:
        return duration_in_words(max(self.waits)) if self.waits else ""


def per_rule(found: QuerySet[Alert]) -> tuple[list[RuleLine], RuleLine]:
    """Each rule's counts and times to acknowledge, most alerts first; and the totals.
    Two queries: the counts grouped by rule, and the acknowledged alerts' two times."""
    lines: dict[str, RuleLine] = {}
    counts = (
        found.order_by()
        .values("kind")
        .annotate(
            count=Count("pk"),
            acknowledged=Count("acknowledged_at"),
            still_open=Count("pk", filter=Q(resolved_at__isnull=True)),
            escalated=Count("escalated_at"),
        )
    )
    for counted in counts:
        kind = counted["kind"]
        lines[kind] = RuleLine(
            kind=kind,
            label=_rule_name(kind),
            count=counted["count"],
            acknowledged=counted["acknowledged"],
            still_open=counted["still_open"],
            escalated=counted["escalated"],
        )
    total = RuleLine(kind="", label="All rules")
    acknowledged = found.filter(acknowledged_at__isnull=False).order_by()
    for kind, raised_at, acknowledged_at in acknowledged.values_list(
        "kind", "raised_at", "acknowledged_at"
    ):
        wait = max(0.0, (acknowledged_at - raised_at).total_seconds())
        lines[kind].waits.append(wait)
        total.waits.append(wait)
    for line in lines.values():
        total.count += line.count
        total.acknowledged += line.acknowledged
        total.still_open += line.still_open
        total.escalated += line.escalated
    ordered = sorted(lines.values(), key=lambda line: (-line.count, _RULE_ORDER.get(line.kind, 99)))
    return ordered, total


@dataclass
class DayLine:
    """A day's counts; or, with ``since`` set, a run of quiet days from ``since`` to ``day``
    told in one line rather than a column of zeros."""

    day: date
    counts: list[int]  # one per column of PerDay.kinds
    total: int
    since: date | None = None

    @property
    def label(self) -> str:
        """ "Sun 29 Nov"; a quiet run "10-25 Nov" or "28 Oct - 3 Nov" (with en dashes)."""
        if not self.since:
            return f"{self.day:%a} {self.day.day} {self.day:%b}"
        if (self.since.year, self.since.month) == (self.day.year, self.day.month):
            return f"{self.since.day}\N{EN DASH}{self.day.day} {self.day:%b}"
        return f"{self.since.day} {self.since:%b} \N{EN DASH} {self.day.day} {self.day:%b}"

    @property
    def quiet_days(self) -> int:
        return (self.day - self.since).days + 1 if self.since else int(not self.total)


@dataclass
class PerDay:
    kinds: list[tuple[str, str, str]]  # (kind, short name, full name), in rule order
    days: list[DayLine]  # newest first, quiet days included (a run of them in one line)
    totals: list[int]
    total: int
    first: date
    last: date
    left_out: int  # alerts of the filtered set older than the days shown

    @property
    def day_count(self) -> int:
        return (self.last - self.first).days + 1


def per_day(found: QuerySet[Alert], filters: AlertFilters, *, total: int) -> PerDay | None:
    """Alerts per day and rule over at most the last 31 days of the range, days in the
    viewer's zone (UTC when it is not known): local days, each alert by its own offset, so a
    day across a change to or from summer time is 23 or 25 hours long and counted right.
    One query, grouped by the database. ``total`` is the size of the filtered set, to say
    how many older alerts are left out."""
    zone = filters.zone
    now = timezone.now()
    end = min(filters.until, now) if filters.until and "to" not in filters.errors else now
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    start = datetime.combine(last - timedelta(days=DAYS_SHOWN - 1), time.min, tzinfo=zone)
    counted = (
        found.filter(raised_at__gte=start.astimezone(UTC))
        .order_by()
        .annotate(day=TruncDate("raised_at", tzinfo=zone))
        .values("day", "kind")
        .annotate(count=Count("pk"))
    )
    cells: dict[date, dict[str, int]] = defaultdict(dict)
    for row in counted:
        cells[row["day"]][row["kind"]] = row["count"]
    if not cells:
        return None
    kinds = sorted({kind for day in cells.values() for kind in day}, key=_RULE_ORDER.get)
    first = min(cells)
    last = max(last, max(cells))
    days: list[DayLine] = []
    for offset in range((last - first).days + 1):
        day = last - timedelta(days=offset)
        counts = [cells.get(day, {}).get(kind, 0) for kind in kinds]
        if days and not days[-1].total and not sum(counts):
            days[-1].since = day  # one more quiet day in the run
            continue
        days.append(DayLine(day=day, counts=counts, total=sum(counts)))
    totals = [sum(line.counts[n] for line in days) for n in range(len(kinds))]
    return PerDay(
        kinds=[(kind, SHORT_RULE_NAMES.get(kind, kind), _rule_name(kind)) for kind in kinds],
        days=days,
        totals=totals,
        total=sum(totals),
        first=first,
        last=last,
        left_out=total - sum(totals),
    )


# --- the page ----------------------------------------------------------------------------------


@login_required
@require_GET
def alert_history(request: HttpRequest) -> HttpResponse:
    portals = access.visible_portals(request.user)
    filters = parse_alert_filters(request, portals)
    found = matching_alerts(portals, filters)
    page = Paginator(history(found), PAGE_SIZE).get_page(request.GET.get("page"))
    rules, overall = per_rule(found) if page.paginator.count else ([], None)
    context = {
        "filters": filters,
        "rows": [_row(alert) for alert in page.object_list],
        "show_reasons": access.is_admin(request.user),  # what webhooks answered: Admins
        "page": page,
        "portals": list(portals.order_by("name")),
        "rules": rules,
        "overall": overall,
        "days": per_day(found, filters, total=overall.count) if overall else None,
        "day_zone": filters.zone_label,
        "viewer_clock": filters.clock,  # rows in the zone the days are counted in
        "days_shown": DAYS_SHOWN,
        "kinds": AlertKind.choices,
        "severities": Severity.choices,
        "states": list(STATES.items()),
        "periods": list(PERIODS.items()),
        "query": filters.query(),
        "newer_query": filters.query(page=page.previous_page_number())
        if page.has_previous()
        else "",
        "older_query": filters.query(page=page.next_page_number()) if page.has_next() else "",
    }
    return render(request, "alerts/history.html", context)


# --- CSV ---------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "id",
    "raised_at",
    "portal",
    "rule",
    "severity",
    "title",
    "detail",
    "target",
    "acknowledged_by",
    "acknowledged_at",
    "seconds_to_acknowledge",
    "resolved_at",
    "resolved_reason",
    "escalated_at",
    "escalations",
]


def _escalations_in_words(alert: Alert, *, show_reasons: bool) -> str:
    """Each escalation: where (a webhook's address masked), delivered or failed, and why it
    failed for Admins only."""
    said = []
    for escalation in alert.escalations.all():
        outcome = escalation.outcome
        if show_reasons and not escalation.ok and escalation.error:
            outcome += f" ({escalation.error})"
        said.append(
            f"{escalation.get_channel_display()} to {escalation.shown_destination}: {outcome}"
        )
    return "; ".join(said)


def _csv_row(alert: Alert, filters: AlertFilters, *, show_reasons: bool = False) -> list[str]:
    what, who = target_in_words(alert)
    waited = seconds_to_acknowledge(alert)
    return [
        str(alert.pk),
        csv_time(alert.raised_at, filters),
        csv_cell(alert.portal.name),
        alert.kind,
        alert.severity,
        csv_cell(alert.title),
        csv_cell(alert.detail),
        csv_cell(f"{what.lower()}: {who}"),
        csv_cell(alert.acknowledged_by_name),
        csv_time(alert.acknowledged_at, filters),
        "" if waited is None else str(round(waited)),
        csv_time(alert.resolved_at, filters),
        csv_cell(alert.resolved_reason),
        csv_time(alert.escalated_at, filters),
        csv_cell(_escalations_in_words(alert, show_reasons=show_reasons)),
    ]


def _csv_rows(
    alerts: QuerySet[Alert], filters: AlertFilters, *, show_reasons: bool
) -> Iterator[list[str]]:
    for alert in alerts.iterator(chunk_size=500):
        yield _csv_row(alert, filters, show_reasons=show_reasons)


@login_required
@require_GET
def alert_history_csv(request: HttpRequest) -> HttpResponse:
    portals = access.visible_portals(request.user)
    filters = parse_alert_filters(request, portals)
    if refusal := unusable(filters):
        return refusal
    alerts = history(matching_alerts(portals, filters))
    rows = _csv_rows(alerts, filters, show_reasons=access.is_admin(request.user))
    return csv_download(CSV_COLUMNS, rows, name="salesiq-alerts")
