"""Keeping the service tallies.

Chats are counted off the webhook's path: applying marks what it changed
(``Chat.needs_counting``, in the transaction that changed it) and the worker's ``queues``
job counts the marked chats once a second (dashboard/state/apply.py ``count_pending``, under
the same per-portal lock as applying). In a process that runs the worker too (the embedded
default), the webhook lane counts what it applied whenever it has nothing else to do, a chat
or two at a time, and hands what moved to that job (``handed``): the job's own count then
finds little left, and holds the write lock for as little (a writer waiting for SQLite's
lock sleeps 1, 2, 5, 10 ms… between tries). At 50 events a second, counting each event as
it was applied cost more than applying it; counted together, the chats of a moment share
their tally rows. Operators' statuses are still counted as they are applied
(``count_statuses``): a status left within the second must not lose its time to the next.

Each chat remembers what it added last (``Chat.counted``). When a fact changes what it adds
(picked up, ended, rated, transferred while waiting), what it added is taken away and what
it adds now is added: a handful of rows written per change of a chat's outcome, whatever
the size of the day, and the same chat applied twice (a webhook and a poll, a
reconciliation after a gap) still counts once.

Operators' time in each status is counted at each change of status, up to the change; the
running status is added when read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Q
from django.utils import timezone

from ..models import Chat, Operator, OperatorTally, ServiceSettings, ServiceTally, TallySpan
from .definitions import (
    CHAT_FIELDS,
    Contribution,
    Tally,
    contribution,
    day_start,
    next_day_start,
    quarter_start,
)

logger = logging.getLogger(__name__)

_CHAT_FIELDS = ("pk", *CHAT_FIELDS, "counted")
_OPERATOR_FIELDS = (
    "remote_id",
    "status",
    "status_since",
    "counted_status",
    "counted_since",
    "department_ids",
)


def settings_of(portal_id: Any) -> ServiceSettings:
    """The portal's service settings (made with the defaults the first time)."""
    found, _ = ServiceSettings.objects.get_or_create(portal_id=portal_id)
    return found


# Counting reads the portal's zone at every change of a chat's outcome: kept for a few
# seconds per process (an admin's new zone is followed within that; the day rows of the
# change itself are rebuilt by dashboard/figures/rebuild.py).
ZONE_KEPT_FOR = 5.0  # seconds
_zones: dict[Any, tuple[float, ZoneInfo]] = {}


def counting_zone(portal_id: Any) -> ZoneInfo:
    """The zone counting uses for the portal's business days."""
    now = time.monotonic()
    kept = _zones.get(portal_id)
    if kept is not None and now - kept[0] < ZONE_KEPT_FOR:
        return kept[1]
    zone = zone_of(settings_of(portal_id))
    _zones[portal_id] = (now, zone)
    return zone


def forget_zone(portal_id: Any) -> None:
    """The portal's zone changed (its service settings were saved): read it afresh."""
    _zones.pop(portal_id, None)


def zone_of(service: ServiceSettings) -> ZoneInfo:
    try:
        return ZoneInfo(service.time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning(
            "Portal %s has an unknown time zone %r: UTC used", service.portal_id, service.time_zone
        )
        return ZoneInfo("UTC")


Key = tuple[type, tuple[tuple[str, Any], ...]]


def _keys_of(portal_id: Any, part: Contribution, day: datetime) -> list[Key]:
    """The rows ``part`` counts in: its department's quarter and day, its operator's day."""
    keys: list[Key] = [
        (
            ServiceTally,
            (
                ("portal_id", portal_id),
                ("department_id", part.department),
                ("span", span),
                ("start", start),
            ),
        )
        for span, start in ((TallySpan.QUARTER, quarter_start(part.arrived)), (TallySpan.DAY, day))
    ]
    if part.operator:
        keys.append(
            (
                OperatorTally,
                (("portal_id", portal_id), ("operator_id", part.operator), ("start", day)),
            )
        )
    return keys


def _write(deltas: dict[Key, list[tuple[Contribution, int]]]) -> None:
    """The rows ``deltas`` add to and take from, read in one query per kind of row, the
    missing ones made in one, each written back with a plain UPDATE (a second's chats share
    a few rows; bulk_update's CASE per field cost more to build than the UPDATEs to run):
    the count holds the portal's write lock meanwhile, and webhooks wait for it."""
    by_model: dict[type, list[tuple[tuple[tuple[str, Any], ...], list]]] = {}
    for (model, keys), parts in deltas.items():
        by_model.setdefault(model, []).append((keys, parts))
    for model, entries in by_model.items():
        names = [name for name, _ in entries[0][0]]
        wanted = Q()
        for keys, _ in entries:
            wanted |= Q(**dict(keys))
        rows = {tuple(getattr(row, n) for n in names): row for row in model.objects.filter(wanted)}
        missing = [
            model(**dict(keys))
            for keys, _ in entries
            if tuple(value for _, value in keys) not in rows
        ]
        if missing:
            model.objects.bulk_create(missing)
            rows.update({tuple(getattr(row, n) for n in names): row for row in missing})
        for keys, parts in entries:
            row = rows[tuple(value for _, value in keys)]
            tally = Tally.of(row)
            for part, sign in parts:
                tally.add(part, sign)
            model.objects.filter(pk=row.pk).update(
                **{name: getattr(tally, name) for name in Tally.names()}
            )


def count_chats(
    portal_id: Any, chat_pks: Iterable[int], *, operators: set[str] | None = None
) -> set[str]:
    """Count what changed in these chats' contributions; the departments whose figures
    changed. The operators (SalesIQ ids) whose figures changed are added to ``operators``."""
    pks = list(chat_pks)
    if not pks:
        return set()
    zone = None
    touched: set[str] = set()
    deltas: dict[Key, list[tuple[Contribution, int]]] = {}
    recounted: list[Chat] = []
    for chat in Chat.objects.filter(pk__in=pks).only(*_CHAT_FIELDS):
        now = contribution(chat)
        before = Contribution.from_json(chat.counted)
        if (now.as_json() if now else None) == (before.as_json() if before else None):
            continue
        if zone is None:
            zone = counting_zone(portal_id)
        if before is not None:
            # Taken away from the day it was added to (the zone may have changed since).
            counted_day = datetime.fromisoformat(chat.counted["day"])
            for key in _keys_of(portal_id, before, counted_day):
                deltas.setdefault(key, []).append((before, -1))
            touched.add(before.department)
            if operators is not None and before.operator:
                operators.add(before.operator)
        stored: dict[str, Any] = {}
        if now is not None:
            day = day_start(now.arrived, zone)
            for key in _keys_of(portal_id, now, day):
                deltas.setdefault(key, []).append((now, 1))
            touched.add(now.department)
            if operators is not None and now.operator:
                operators.add(now.operator)
            stored = {**now.as_json(), "day": day.astimezone(UTC).isoformat()}
        chat.counted = stored
        recounted.append(chat)
    if recounted:
        Chat.objects.bulk_update(recounted, ["counted"])
    _write(deltas)
    return touched


def _add_status_time(
    portal_id: Any, operator_id: str, status: str, start: datetime, end: datetime, zone: ZoneInfo
) -> None:
    """``end - start`` seconds in ``status``, split at the business days' midnights."""
    while start < end:
        day = day_start(start, zone)
        piece_end = min(end, next_day_start(day, zone))
        row, _ = OperatorTally.objects.get_or_create(
            portal_id=portal_id, operator_id=operator_id, start=day
        )
        seconds = dict(row.status_seconds)
        seconds[status] = seconds.get(status, 0.0) + (piece_end - start).total_seconds()
        row.status_seconds = seconds
        row.save(update_fields=["status_seconds"])
        start = piece_end


def count_statuses(portal_id: Any, operator_pks: Iterable[int]) -> set[str]:
    """Count the time of the statuses these operators left; the departments they serve
    (their available operators and free seats may have changed)."""
    pks = list(operator_pks)
    if not pks:
        return set()
    now = timezone.now()
    zone = None
    departments: set[str] = set()
    operators = (
        Operator.objects.filter(pk__in=pks).only(*_OPERATOR_FIELDS).order_by()  # no sort needed
    )
    for op in operators:
        departments.update(str(d) for d in op.department_ids or ())
        if op.counted_status == op.status and op.counted_since is not None:
            continue
        since = min(op.status_since or now, now)
        if op.counted_status and op.counted_since is not None:
            if zone is None:
                zone = counting_zone(portal_id)
            # The previous status lasted until this one began.
            _add_status_time(
                portal_id,
                op.remote_id,
                op.counted_status,
                op.counted_since,
                max(since, op.counted_since),
                zone,
            )
            since = max(since, op.counted_since)
        Operator.objects.filter(pk=op.pk).update(counted_status=op.status, counted_since=since)
    return departments


def count(changes: Any) -> set[str]:
    """Count the statuses ``changes`` (a ``state.changes.Changes``) changed and mark its
    chats for the next count; the departments whose queue figures may have changed (their
    operators' seats)."""
    if changes.chats:
        Chat.objects.filter(pk__in=changes.chats, needs_counting=False).update(needs_counting=True)
    return count_statuses(changes.portal_id, changes.operators)


class Handed:
    """What a count outside the queues job (the webhook lane's, in its idle moments) moved,
    for the queues job of the same process to publish with its own, once a second."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.moved: dict[Any, tuple[set[str], set[int]]] = {}

    def add(self, portal_id: Any, departments: set[str], operators: set[int]) -> None:
        if not departments and not operators:
            return
        with self.lock:
            held = self.moved.setdefault(portal_id, (set(), set()))
            held[0].update(departments)
            held[1].update(operators)

    def take(self, portal_id: Any) -> tuple[set[str], set[int]]:
        with self.lock:
            return self.moved.pop(portal_id, (set(), set()))


handed = Handed()


# Chats counted per transaction: a backlog (a gap read back) is counted in several, so
# webhooks wait for none of them long, and no query outgrows the database's limits.
COUNT_AT_ONCE = 500


def count_marked(portal_id: Any) -> tuple[set[str], set[int], bool]:
    """Count the portal's chats applied since their last count, ``COUNT_AT_ONCE`` at most
    (the caller holds the portal's applying lock): the departments whose figures changed,
    the operators (database ids) whose figures a chat moved (picked up, ended, rated,
    transferred), and whether marked chats are left."""
    pks = list(
        Chat.objects.filter(portal_id=portal_id, needs_counting=True).values_list("pk", flat=True)[
            : COUNT_AT_ONCE + 1
        ]
    )
    more = len(pks) > COUNT_AT_ONCE
    pks = pks[:COUNT_AT_ONCE]
    if not pks:
        return set(), set(), False
    moved: set[str] = set()
    touched = count_chats(portal_id, pks, operators=moved)
    Chat.objects.filter(pk__in=pks).update(needs_counting=False)
    operators: set[int] = set()
    if moved:
        operators = set(
            Operator.objects.filter(portal_id=portal_id, remote_id__in=moved).values_list(
                "pk", flat=True
            )
        )
    return touched, operators, more
