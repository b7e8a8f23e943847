"""Rebuilding a portal's business days after its time zone changed.

"Today" is the portal's business day in its zone (definitions.day_start), so the day rows
counted so far start at the old zone's midnights. When an admin picks another zone, the last
``DAYS_REBUILT`` days (today included, counted in the new zone) are rebuilt so that today's
figures, and the week behind them, follow the new midnight at once:

- **Department days** (``ServiceTally`` span "day") are the sums of their quarters, and the
  quarters do not depend on the zone (they line up in UTC with every zone's quarters): each
  new local day is the sum of the quarters between its midnight and the next.
- **Operator days** (``OperatorTally``) keep no quarters: they are recounted from what each
  chat of those days added (``Chat.counted``, the contribution the tallies hold, see
  definitions.contribution), and each chat's ``counted["day"]`` is set to its new day, so a
  later change of the chat is taken away from the right row.
- **The day before the window**, counted in the old zone, may reach past the new first
  midnight: it gives back what the chats that arrived after that midnight added to it (they
  are counted in the window now). Older days stay as they were counted, in the old zone.
- **Time in each status** (``status_seconds``) cannot be rebuilt exactly: it was counted up
  to each change of status and split at the old midnights, and nothing finer is kept. The
  seconds of each old day row are moved to the new row of the same date (the old Tuesday's
  seconds become the new Tuesday's), not split again at the new midnight.

Everything happens in the caller's transaction (one of its own when there is none), so a
page never reads half a rebuild. The window's chats are locked while it runs (PostgreSQL;
SQLite has one writer anyway). Not covered: a chat another process is applying at that very
moment was read, with the old zone, before the lock; it is then counted on its old day
(counting.py reads the zone without a lock) until the next change of that chat moves it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from ..models import Chat, OperatorTally, ServiceTally, TallySpan
from .definitions import Contribution, Tally, day_start

# The days rebuilt, today included.
DAYS_REBUILT = 8
# Chats are found by their arrival; what they count under was stored when they were counted.
# A day's margin either side finds one whose arrival moved since (a later fact) as well.
_MARGIN = timedelta(days=1)


@dataclass
class Rebuilt:
    """What a rebuild did: the window's first midnight (new zone), the rows written."""

    first_day: datetime
    department_days: int = 0
    operator_days: int = 0
    chats_moved: int = 0  # chats whose business day changed
    departments: set[str] = field(default_factory=set)


def first_day_rebuilt(now: datetime, zone: ZoneInfo) -> datetime:
    """The midnight (in ``zone``, as UTC) that starts the oldest day rebuilt."""
    local = now.astimezone(zone).replace(tzinfo=None)
    earlier = (local - timedelta(days=DAYS_REBUILT - 1)).replace(tzinfo=zone)
    return day_start(earlier, zone)


def _midnight_of(day: date, zone: ZoneInfo) -> datetime:
    # Noon is on the right date in every zone, whatever happens to the clock at midnight.
    return day_start(datetime(day.year, day.month, day.day, 12, tzinfo=zone), zone)


def _is_empty(row: Any) -> bool:
    # Every chat adds one offered: none left means the row counts nothing.
    return row.offered == 0 and not getattr(row, "status_seconds", None)


def _give_back(model: type, keys: dict[str, Any], parts: list[Contribution]) -> None:
    """Take ``parts`` away from the row ``keys`` name (a day before the window)."""
    row = model.objects.filter(**keys).first()
    if row is None:
        return
    tally = Tally.of(row)
    for part in parts:
        tally.add(part, -1)
    tally.copy_to(row)
    if _is_empty(row):
        row.delete()
    else:
        row.save()


def _window_chats(portal_id: Any, first: datetime) -> list[tuple[int, dict, Contribution]]:
    """The portal's counted chats that arrived in the window (locked on PostgreSQL)."""
    found = []
    chats = (
        Chat.objects.select_for_update()
        .filter(portal_id=portal_id, started_at__gte=first - _MARGIN)
        .only("pk", "counted")
        .order_by("pk")
    )
    for chat in chats:
        part = Contribution.from_json(chat.counted)
        if part is not None and "day" in chat.counted and part.arrived >= first:
            found.append((chat.pk, chat.counted, part))
    return found


def rebuild_days(
    *, portal_id: Any, old_zone: ZoneInfo, new_zone: ZoneInfo, now: datetime | None = None
) -> Rebuilt:
    """Count the portal's last ``DAYS_REBUILT`` business days again in ``new_zone`` (they
    were counted in ``old_zone``); see the module's docstring."""
    now = now or timezone.now()
    first = first_day_rebuilt(now, new_zone)
    done = Rebuilt(first_day=first)
    with transaction.atomic():
        chats = _window_chats(portal_id, first)

        # Operator days from the chats; the day before the window gives back what it held.
        operator_days: dict[tuple[str, datetime], Tally] = defaultdict(Tally)
        given_back: dict[tuple[type, tuple], list[Contribution]] = defaultdict(list)
        for pk, counted, part in chats:
            old_day = datetime.fromisoformat(counted["day"])
            new_day = day_start(part.arrived, new_zone)
            if part.operator:
                operator_days[(part.operator, new_day)].add(part)
            if old_day < first:
                key = (("department_id", part.department), ("span", TallySpan.DAY))
                given_back[(ServiceTally, (*key, ("start", old_day)))].append(part)
                if part.operator:
                    key = (("operator_id", part.operator), ("start", old_day))
                    given_back[(OperatorTally, key)].append(part)
            if old_day != new_day:
                stored = {**counted, "day": new_day.astimezone(UTC).isoformat()}
                Chat.objects.filter(pk=pk).update(counted=stored)
                done.chats_moved += 1
        for (model, keys), parts in given_back.items():
            _give_back(model, {"portal_id": portal_id, **dict(keys)}, parts)

        # Department days: the sums of their quarters.
        ServiceTally.objects.filter(
            portal_id=portal_id, span=TallySpan.DAY, start__gte=first
        ).delete()
        department_days: dict[tuple[str, datetime], Tally] = defaultdict(Tally)
        for quarter in ServiceTally.objects.filter(
            portal_id=portal_id, span=TallySpan.QUARTER, start__gte=first
        ):
            day = day_start(quarter.start, new_zone)
            department_days[(quarter.department_id, day)].merge(Tally.of(quarter))
        rows = []
        for (department_id, day), tally in department_days.items():
            row = ServiceTally(
                portal_id=portal_id, department_id=department_id, span=TallySpan.DAY, start=day
            )
            tally.copy_to(row)
            if not _is_empty(row):
                rows.append(row)
                done.departments.add(department_id)
        ServiceTally.objects.bulk_create(rows)
        done.department_days = len(rows)

        # Time in each status: moved by date (not exact, see the docstring).
        status_by_day: dict[tuple[str, datetime], dict[str, float]] = defaultdict(dict)
        old_rows = OperatorTally.objects.filter(portal_id=portal_id, start__gte=first)
        for row in old_rows.only("operator_id", "start", "status_seconds"):
            if not row.status_seconds:
                continue
            local_date = row.start.astimezone(old_zone).date()
            seconds = status_by_day[(row.operator_id, _midnight_of(local_date, new_zone))]
            for status, spent in row.status_seconds.items():
                seconds[status] = seconds.get(status, 0.0) + spent
        old_rows.delete()
        for (operator_id, day), seconds in status_by_day.items():
            if day >= first:
                continue
            # An old date that falls before the window in the new zone (a zone far behind):
            # its seconds join that day's row rather than being lost.
            row, _ = OperatorTally.objects.get_or_create(
                portal_id=portal_id, operator_id=operator_id, start=day
            )
            merged = dict(row.status_seconds)
            for status, spent in seconds.items():
                merged[status] = merged.get(status, 0.0) + spent
            row.status_seconds = merged
            row.save(update_fields=["status_seconds"])
        rows = []
        for key in operator_days.keys() | {k for k in status_by_day if k[1] >= first}:
            operator_id, day = key
            row = OperatorTally(portal_id=portal_id, operator_id=operator_id, start=day)
            operator_days.get(key, Tally()).copy_to(row)
            row.status_seconds = status_by_day.get(key, {})
            rows.append(row)
        OperatorTally.objects.bulk_create(rows)
        done.operator_days = len(rows)
    return done
