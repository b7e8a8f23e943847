"""Each operator's figures for today, as the operators panel, the operator drawer and the JSON
snapshot show them. What each one means (the drawer's hover titles are these lines):

- **Chats handled**: chats the operator answered and held last that have ended (a chat
  transferred to a colleague counts for the colleague), on the day the chat arrived.
- **Answered**: chats the operator answered and held last, ended or not.
- **First response time**: from the pickup to the operator's first message after it,
  averaged over the chats that have one.
- **Handle time**: from the pickup to the end, averaged over the chats handled.
- **Rating**: the visitors' ratings (1 to 5) of those chats, averaged; 4 or 5 counts as good.
- **Time in the current status**: since the operator's status last changed, as far as the
  dashboard knows.
- **Time in each status today**: since midnight in the portal's time zone, the current
  status up to now.

How they are read: from the operator's ``OperatorTally`` row of the portal's business day
(``definitions.day_start`` in the portal's zone), through ``definitions.figures`` for the
averages, so each means what definitions.py says. Time in each status is the seconds
counted at each change of status (``counting.count_statuses``, split at midnight) plus the
running status from ``max(Operator.counted_since, the day's start)`` to now. That running
part is kept as the moment it runs from (``StatusTime.ticking_from``): the browser keeps it
ticking, and nothing here changes while only time passes, so an operator's row renders again
only when a fact changes a figure (the row cache keys on every field,
templatetags/supervisor.py).

Cost: one query for the portals' service settings (their zones) and one for today's tally
rows of the operators asked about, by the unique index (portal, operator, day). Nothing here
writes: a portal whose settings were never saved is read with the defaults counting.py
saves (UTC).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.db.models import Q

from siq_integration.models import Portal

from ..models import Operator, OperatorStatus, OperatorTally, ServiceSettings
from .counting import zone_of
from .definitions import Tally, Target, day_start, figures

# The statuses every drawer lists, in this order (one SalesIQ never sent is listed at 0s);
# any other status counted is listed after them.
STATUS_ORDER = tuple(OperatorStatus.values)
_LABELS = dict(OperatorStatus.choices)


@dataclass(frozen=True)
class StatusTime:
    """Time in one status today: ``seconds`` counted up to the last change, and for the
    running status the moment its total runs from (now minus that moment is the total)."""

    status: str
    label: str
    seconds: float
    ticking_from: datetime | None = None

    def at(self, now: datetime) -> float:
        if self.ticking_from is None:
            return self.seconds
        return max(0.0, (now - self.ticking_from).total_seconds())


@dataclass(frozen=True)
class OperatorFigures:
    """One operator's business day (see the module's docstring for each figure). Every
    field stays the same while only time passes."""

    day_start: datetime  # the business day's local midnight, UTC
    time_zone: str  # the portal's zone the day is counted in
    handled: int
    answered: int
    response_average: float | None  # seconds
    handle_average: float | None  # seconds
    rating_average: float | None
    rated: int
    rated_good_share: float | None  # 0 to 100
    # (status, seconds) counted at the changes of status so far today.
    closed: tuple[tuple[str, float], ...] = ()
    # The status counted now, and since when today (None: not counted yet).
    running_status: str = ""
    running_since: datetime | None = None

    @property
    def status_times(self) -> list[StatusTime]:
        """Time in each status today, in STATUS_ORDER, the running one ticking."""
        closed = dict(self.closed)
        names = list(STATUS_ORDER) + sorted(set(closed) - set(STATUS_ORDER))
        times = []
        for status in names:
            seconds = closed.get(status, 0.0)
            ticking_from = None
            if status == self.running_status and self.running_since is not None:
                ticking_from = self.running_since - timedelta(seconds=seconds)
            times.append(
                StatusTime(status, _LABELS.get(status, status.capitalize()), seconds, ticking_from)
            )
        return times

    @property
    def status_counted(self) -> bool:
        """Whether the dashboard counts this operator's status time yet (an operator stored
        before it did is counted from their next change of status)."""
        return self.running_since is not None or bool(self.closed)

    def seconds_in_status(self, now: datetime) -> dict[str, float]:
        """Seconds in each status today, up to ``now``."""
        return {time.status: round(time.at(now), 1) for time in self.status_times}

    @property
    def words(self) -> dict[str, str]:
        """A hover title for each figure: its definition."""
        return definitions_in_words()

    def as_json(self, now: datetime) -> dict[str, Any]:
        def rounded(value: float | None, digits: int = 1) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "day_start": self.day_start.isoformat(),
            "time_zone": self.time_zone,
            "chats_handled": self.handled,
            "chats_answered": self.answered,
            "first_response_average_seconds": rounded(self.response_average),
            "handle_average_seconds": rounded(self.handle_average),
            "rating_average": rounded(self.rating_average, 2),
            "ratings": self.rated,
            "ratings_good_percent": rounded(self.rated_good_share),
            "seconds_in_status": self.seconds_in_status(now),
        }


@cache
def definitions_in_words() -> dict[str, str]:
    """What each figure means, as the module's docstring lists them."""
    bullets = next(part for part in (__doc__ or "").split("\n\n") if part.startswith("- "))
    found = {}
    for item in bullets.split("\n- "):
        name, _, meaning = " ".join(item.removeprefix("- ").split()).partition(":")
        found[name.strip("*")] = f"{name.strip('*')}:{meaning}"
    return {
        "handled": found["Chats handled"],
        "answered": found["Answered"],
        "response": found["First response time"],
        "handle": found["Handle time"],
        "rating": found["Rating"],
        "current_status": found["Time in the current status"],
        "status_times": found["Time in each status today"],
    }


def _days(portals: list[Portal], now: datetime) -> dict[Any, tuple[datetime, str, Target]]:
    """Each portal's business day (its start), zone and target, from one query."""
    services = {s.portal_id: s for s in ServiceSettings.objects.filter(portal__in=portals)}
    days = {}
    for portal in portals:
        # Never saved: the defaults counting.py saves the first time it counts.
        service = services.get(portal.pk) or ServiceSettings(portal_id=portal.pk)
        zone = zone_of(service)
        target = Target(seconds=service.target_seconds, share=service.target_share)
        days[portal.pk] = (day_start(now, zone), zone.key, target)
    return days


# The tally fields the operator figures read (answer times are the queues' figures, not theirs:
# left out, their JSON is not parsed for a thousand operators).
_READ = ("answered", "handled", "handle_seconds", "responded", "response_seconds", "rated")
_READ += ("rating_sum", "rated_good")


def operator_figures(
    portals: Iterable[Portal], now: datetime, only: Iterable[Operator] | None = None
) -> dict[tuple[Any, str], OperatorFigures]:
    """Today's figures of the operators of ``portals`` (``only``: these ``Operator`` rows,
    as the caller has them already; None: every operator of the portals), by (portal id,
    operator SalesIQ id). An operator with nothing counted today has zeros and no averages."""
    portals = list(portals)
    if not portals:
        return {}
    if only is None:
        only = Operator.objects.filter(portal__in=portals).only(
            "pk", "portal_id", "remote_id", "status", "counted_status", "counted_since"
        )
    shown = {portal.pk for portal in portals}
    operators = [op for op in only if op.portal_id in shown]
    if not operators:
        return {}
    days = _days(portals, now)
    ids: dict[Any, set[str]] = {}
    for op in operators:
        ids.setdefault(op.portal_id, set()).add(op.remote_id)
    # By the unique index (portal, operator, day): one query, however many portals. With
    # one portal its id is not read back (turning it into a UUID per row costs more than the
    # rest of the reading).
    wanted = Q()
    for portal_id, remote_ids in ids.items():
        wanted |= Q(portal_id=portal_id, start=days[portal_id][0], operator_id__in=remote_ids)
    single = next(iter(ids)) if len(ids) == 1 else None
    columns = ("operator_id", "status_seconds", *_READ)
    rows = {}
    for read in OperatorTally.objects.filter(wanted).values_list(
        *(columns if single is not None else ("portal_id", *columns))
    ):
        portal_id, (operator_id, closed, *sums) = (
            (single, read) if single is not None else (read[0], read[1:])
        )
        rows[(portal_id, operator_id)] = (Tally(**dict(zip(_READ, sums, strict=True))), closed)
    # Operators with nothing counted today (most of a big portal's, early in the day) share
    # their portal's empty figures.
    empty = {portal_id: figures(Tally(), target) for portal_id, (_, _, target) in days.items()}
    found = {}
    for op in operators:
        start, zone, target = days[op.portal_id]
        row = rows.get((op.portal_id, op.remote_id))
        tally, closed = row if row is not None else (None, {})
        read = figures(tally, target) if tally is not None else empty[op.portal_id]
        running_since = max(op.counted_since, start) if op.counted_since is not None else None
        found[(op.portal_id, op.remote_id)] = OperatorFigures(
            day_start=start,
            time_zone=zone,
            handled=tally.handled if tally is not None else 0,
            answered=read.answered,
            response_average=read.response_average,
            handle_average=read.handle_average,
            rating_average=read.rating_average,
            rated=read.rated,
            rated_good_share=read.rated_good_share,
            closed=tuple(sorted((status, float(s)) for status, s in closed.items())),
            # What counting.py counts up to: the status it saw last, since when.
            running_status=op.counted_status or op.status,
            running_since=running_since,
        )
    return found
