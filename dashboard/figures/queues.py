"""The queues: one row per department of the portals shown, with how its service is doing
now, in the last hour and today (every figure as dashboard/figures/definitions.py defines
it), and the staffing advice (staffing.py). Read by the live page, the publisher, the
wallboard, the alert rules and the JSON snapshot; nothing here writes but the portal's
service settings the first time they are read.

Cost: today's figures are one tally row per department; the last hour reads the chats that
arrived in it (an index on arrival), and the waits and seats come from the open chats and
the operators, as the live page already reads them. Nothing reads the whole day's chats.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from siq_integration.models import Portal

from ..actions.assign import Assignee, best_of
from ..models import (
    OPEN_CHAT_STATUSES,
    Chat,
    ChatStatus,
    Department,
    DepartmentService,
    Operator,
    ServiceSettings,
    ServiceTally,
    TallySpan,
)
from ..selectors import OperatorView, live_only, operator_figure
from . import reconcile, staffing
from .counting import settings_of, zone_of
from .definitions import (
    CHAT_FIELDS,
    Contribution,
    Figures,
    Tally,
    Target,
    contribution,
    day_start,
    figures,
    tally_of,
)

LAST_MINUTES = 60  # the queues' "last hour"
LAST_HOUR = timedelta(minutes=LAST_MINUTES)
# The staffing advice reads the arrivals of this window (staffing.py, docs/staffing.md).
ADVICE_WINDOW = timedelta(minutes=30)
NO_DEPARTMENT = "No department"
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def target_of(service: ServiceSettings, own: DepartmentService | None) -> Target:
    """The department's own target where its admin set one, else the portal's."""
    seconds = own.target_seconds if own and own.target_seconds else service.target_seconds
    share = own.target_share if own and own.target_share else service.target_share
    return Target(seconds=seconds, share=share)


def is_open(hours: dict[str, Any], local: datetime) -> bool:
    """Whether business ``hours`` ({"0": ["09:00", "17:30"], …}, Monday "0"; none: always
    open) include the local time ``local``."""
    if not hours:
        return True
    span = hours.get(str(local.weekday()))
    if not span:
        return False
    start, end = span
    return start <= local.strftime("%H:%M") < end


def hours_today(hours: dict[str, Any], local: datetime) -> str:
    if not hours:
        return ""
    span = hours.get(str(local.weekday()))
    return f"{_DAYS[local.weekday()]} {span[0]} to {span[1]}" if span else "closed today"


@dataclass(frozen=True)
class QueueRow:
    """One department as the queues panel shows it."""

    portal: Portal
    department_id: str
    name: str
    waiting: int
    longest_since: datetime | None  # the longest waiting chat's wait began then
    waiting_past_target: int
    available: int  # operators available who serve the department
    free_seats: int  # their seats not taken by open chats
    serving: int  # operators of the department, any status
    today: Figures
    last_hour: Figures
    target: Target
    open_now: bool  # inside its business hours (always, when none are set)
    hours: str  # today's business hours in words ("" when none are set)
    advice: staffing.Advice | None
    now: datetime
    # Who a waiting chat of this department goes to on one click ("Assign to Ana"), by
    # dashboard/actions/assign.py's rule; None when nobody is free (the button opens the
    # picker). The page labels the waiting rows' buttons from it (static/js/live/assign.js).
    assignee: Assignee | None = None

    @property
    def key(self) -> str:
        """Its element id on the page (SalesIQ ids are digits; any other character is
        replaced)."""
        safe = "".join(c if c.isalnum() else "_" for c in self.department_id) or "none"
        return f"queue-{self.portal.pk}-{safe}"

    @property
    def advice_sentence(self) -> str:
        return self.advice.sentence(self.name) if self.advice else ""

    @property
    def longest_wait(self) -> float | None:
        if self.longest_since is None:
            return None
        return max(0.0, (self.now - self.longest_since).total_seconds())

    @property
    def tone(self) -> str:
        """ "bad": someone waits past the target, or the last hour or today is below it;
        "warn": close to it; "" otherwise. A closed department with nobody waiting: ""."""
        if not self.open_now and not self.waiting:
            return ""
        if self.waiting_past_target:
            return "bad"
        tones = {self.last_hour.level_tone, self.today.level_tone}
        if self.waiting and not self.available:
            tones.add("warn")
        return "bad" if "bad" in tones else "warn" if "warn" in tones else ""

    @property
    def rank(self) -> str:
        """Worst first, as a key that sorts as text (the page orders rows by it without
        knowing why): by tone, then the longest wait (the earliest start of a wait; none
        last), then the last hour's and today's service level (lowest first; none last),
        open before closed, then the name. Nothing in it changes while time passes but the
        tone, and a wait crossing its target is published (figures/clock.py)."""
        tone = {"bad": 0, "warn": 1, "": 2}[self.tone]
        since = int(self.longest_since.timestamp()) if self.longest_since else 99_999_999_999
        hour, today = self.last_hour.service_level, self.today.service_level
        return "|".join(
            (
                str(tone),
                f"{since:011d}",
                f"{round(hour * 10) if hour is not None else 9999:04d}",
                f"{round(today * 10) if today is not None else 9999:04d}",
                "0" if self.open_now else "1",
                self.name.casefold(),
            )
        )


@dataclass(frozen=True)
class Note:
    """What the queues panel says about a portal's figures (empty: nothing to say)."""

    portal: Portal
    text: str
    several: bool  # the page shows several portals: the note names its portal


def notes(portals: Iterable[Portal], now: datetime | None = None) -> list[Note]:
    """Each live portal's note: today's figures that may be missing chats after a gap."""
    now = now or timezone.now()
    shown = live_only(list(portals))
    return [
        Note(portal, reconcile.incomplete(portal, now) or "", len(shown) > 1) for portal in shown
    ]


def window_parts(
    portals: list[Portal],
    now: datetime,
    minutes: float,
    departments: set[str] | None = None,
) -> dict[tuple[Any, str], list[Contribution]]:
    """The contributions of the chats that arrived in the last ``minutes``, by (portal,
    department): the queues' last hour and the service alert rules' window.
    ``departments``: only the chats that may count in these (None: all)."""
    found: dict[tuple[Any, str], list[Contribution]] = defaultdict(list)
    since = now - timedelta(minutes=minutes)
    query = Chat.objects.filter(portal__in=portals, started_at__gte=since)
    if departments is not None:
        query = query.filter(
            Q(department_id__in=departments) | Q(served_department_id__in=departments)
        )
    # Plain rows, not model instances: contribution() reads only these fields, and a
    # window of 1,300 chats reads in a fraction of the time (measured in the commit).
    chats = query.values_list(*CHAT_FIELDS, named=True)
    for chat in chats:
        part = contribution(chat)
        if part is not None:
            found[(chat.portal_id, part.department)].append(part)
    return found


def window_tallies(
    portals: list[Portal], now: datetime, minutes: float
) -> dict[tuple[Any, str], Tally]:
    """``window_parts`` added up: the tally of each (portal, department) over the window."""
    return {key: tally_of(parts) for key, parts in window_parts(portals, now, minutes).items()}


def past_target_in_window(
    waits: Iterable[datetime], now: datetime, minutes: float, target_seconds: int
) -> int:
    """How many of the waits now (each the moment a waiting chat's wait began) began within
    the last ``minutes`` and have passed ``target_seconds``: they count against a window's
    service level already (definitions.figures' ``waiting_past_target``)."""
    since = now - timedelta(minutes=minutes)
    return sum(
        1 for began in waits if began >= since and (now - began).total_seconds() > target_seconds
    )


def queue_rows(
    portals: Iterable[Portal],
    now: datetime | None = None,
    *,
    only: set[tuple[Any, str]] | None = None,
) -> list[QueueRow]:
    """The queues of the live portals among ``portals``, worst first; ``only``: just these
    (portal id, department id) rows (a publication re-renders what changed: then every read
    is narrowed to those departments, so a row costs the same whatever the portal's size)."""
    now = now or timezone.now()
    portals = live_only(list(portals))
    if not portals:
        return []
    wanted = {department for _, department in only} if only is not None else None

    def narrowed(query, field: str = "department_id"):
        return query if wanted is None else query.filter(**{f"{field}__in": wanted})

    by_pk = {portal.pk: portal for portal in portals}
    services = {s.portal_id: s for s in ServiceSettings.objects.filter(portal__in=portals)}
    for portal in portals:
        if portal.pk not in services:
            services[portal.pk] = settings_of(portal.pk)
    zones = {pk: zone_of(service) for pk, service in services.items()}
    own = {
        (d.portal_id, d.department_id): d
        for d in narrowed(DepartmentService.objects.filter(portal__in=portals))
    }

    names: dict[tuple[Any, str], str] = {}
    for portal_id, remote_id, name, enabled in narrowed(
        Department.objects.filter(portal__in=portals), "remote_id"
    ).values_list("portal_id", "remote_id", "name", "enabled"):
        if enabled:
            names[(portal_id, remote_id)] = name

    # The operators (a JSON list of departments each: read them all, keep who serves those
    # shown), then the open chats: waiting ones and their waits, and the load of each of
    # those operators.
    # Model instances (of these fields only: nothing else is read), for the best operator to
    # assign to (assign.best_of reads them as the drawer's OperatorView does).
    people = [
        op
        for op in Operator.objects.filter(portal__in=portals, enabled=True).only(
            "portal",
            "remote_id",
            "status",
            "enabled",
            "department_ids",
            "max_chats",
            "name",
            "display_name",
            "status_since",
        )
        # A chat with no department may go to anyone (assign.py): its row reads everyone.
        if wanted is None
        or "" in wanted
        or wanted.intersection(str(d) for d in op.department_ids or ())
    ]
    staff = [
        (op.portal_id, op.remote_id, op.status, op.enabled, op.department_ids, op.max_chats)
        for op in people
    ]
    waits: dict[tuple[Any, str], list[datetime]] = defaultdict(list)
    loads: dict[tuple[Any, str], int] = defaultdict(int)
    held: dict[tuple[Any, str], int] = defaultdict(int)
    open_chats = Chat.objects.filter(portal__in=portals, status__in=OPEN_CHAT_STATUSES)
    if wanted is not None:
        open_chats = open_chats.filter(
            Q(status=ChatStatus.WAITING, department_id__in=wanted)
            | Q(operator_id__in={row[1] for row in staff})
        )
    for portal_id, status, department_id, operator_id, since, started in open_chats.values_list(
        "portal_id", "status", "department_id", "operator_id", "waiting_since", "started_at"
    ):
        if status == ChatStatus.WAITING:
            waited = since or started
            if waited is not None:
                waits[(portal_id, department_id)].append(waited)
            names.setdefault((portal_id, department_id), "")
        elif operator_id:
            loads[(portal_id, operator_id)] += 1
        if operator_id:
            # The load assign.py counts (selectors.operator_loads): every open chat held.
            held[(portal_id, operator_id)] += 1

    serving: dict[tuple[Any, str], int] = defaultdict(int)
    available: dict[tuple[Any, str], int] = defaultdict(int)
    free: dict[tuple[Any, str], int] = defaultdict(int)
    seats_of: dict[tuple[Any, str], list[int]] = defaultdict(list)
    for portal_id, remote_id, status, enabled, department_ids, max_chats in staff:
        for department_id in department_ids or ():
            key = (portal_id, str(department_id))
            serving[key] += 1
            seats_of[key].append(max_chats or 1)
            if operator_figure(status, enabled) == "available":
                available[key] += 1
                free[key] += max(0, (max_chats or 1) - loads.get((portal_id, remote_id), 0))

    views = [
        OperatorView(operator=op, load=held.get((op.portal_id, op.remote_id), 0), departments=[])
        for op in people
    ]

    days = {pk: day_start(now, zones[pk]) for pk in by_pk}
    today: dict[tuple[Any, str], Tally] = {}
    for row in narrowed(
        ServiceTally.objects.filter(
            portal__in=portals, span=TallySpan.DAY, start__in=set(days.values())
        )
    ):
        if row.start == days[row.portal_id]:
            today[(row.portal_id, row.department_id)] = Tally.of(row)
            names.setdefault((row.portal_id, row.department_id), "")
    hour = window_parts(portals, now, LAST_MINUTES, wanted)
    for key in hour:
        names.setdefault(key, "")

    rows = []
    for key in names:
        if only is not None and key not in only:
            continue
        portal_id, department_id = key
        if not department_id and key not in today and key not in hour and not waits.get(key):
            continue
        service = services[portal_id]
        target = target_of(service, own.get(key))
        local = now.astimezone(zones[portal_id])
        hours = own[key].hours if key in own else {}
        waiting = sorted(waits.get(key, ()))
        past = sum(1 for since in waiting if (now - since).total_seconds() > target.seconds)
        parts = hour.get(key, [])
        hour_tally = tally_of(parts)
        day_tally = today.get(key, Tally())
        today_figures = figures(day_tally, target, waiting_past_target=past)
        hour_past = past_target_in_window(waiting, now, LAST_MINUTES, target.seconds)
        advice = None
        if (seats := seats_of.get(key)) and department_id:
            arrivals = sum(1 for part in parts if part.arrived >= now - ADVICE_WINDOW)
            advice = staffing.advise(
                arrivals=arrivals,
                window_seconds=ADVICE_WINDOW.total_seconds(),
                handle_seconds=today_figures.handle_average,
                seats_per_operator=max(1, round(statistics.median(seats))),
                available=available.get(key, 0),
                target_seconds=target.seconds,
                target_share=min(target.share, 99) / 100,
            )
        rows.append(
            QueueRow(
                portal=by_pk[portal_id],
                department_id=department_id,
                name=names[key]
                or (department_id and f"Department {department_id}")
                or NO_DEPARTMENT,
                waiting=len(waiting),
                longest_since=waiting[0] if waiting else None,
                waiting_past_target=past,
                available=available.get(key, 0),
                free_seats=free.get(key, 0),
                serving=serving.get(key, 0),
                today=today_figures,
                last_hour=figures(hour_tally, target, waiting_past_target=hour_past),
                target=target,
                open_now=is_open(hours, local),
                hours=hours_today(hours, local),
                advice=advice,
                now=now,
                assignee=best_of(views, portal_id, department_id) if waiting else None,
            )
        )
    rows.sort(key=lambda row: row.rank)
    return rows
