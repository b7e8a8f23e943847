"""What every service figure means: the one definition, used for today's tallies, the last
hour, the charts, the operators, the alert rules and the JSON snapshot alike.

A chat counts **once**, in the quarter hour and the business day it **arrived** in (its
``started_at``), in one department and for one operator:

- **Department**: the one it was in when it was picked up (a transfer after the pickup does
  not move it); unanswered, the last one it waited in.
- **Operator**: the one who held it last (a chat transferred to someone else is theirs).
- **Offered**: every chat that arrived.
- **Answered**: picked up by an operator. Its **answer time** is pickup minus arrival, in
  whole seconds (a chat picked up in the millisecond it arrived took 0 s). A chat with an
  operator but no pickup time known (first seen already connected; the reference dialect
  sends none) counts as answered but is not timed (it is in neither the answer times nor the
  service level), running or over.
- **Unanswered**: over before anyone picked it up (SalesIQ's "missed", or ended while
  waiting); the visitor waited from arrival to the end. Against a target of T seconds it is
  **abandoned** if it ended before T (the visitor left before we owed an answer) and
  **missed** otherwise.
- **Service level** against T: chats answered within T (answer time <= T) divided by the
  chats answered with a known time, the missed ones, and the ones waiting right now for
  longer than T (already certain to miss it). Abandoned chats are shown apart and count on
  neither side. No chat to judge: no figure (shown as a dash, never 100 %).
- **Handle time**: pickup to end, for answered chats that ended.
- **First response time**: pickup to the operator's first line after it.
- **Ratings**: the visitor's rating (1 to 5); "good" is 4 or 5.

``Tally`` adds contributions up; the database keeps the same fields per department and
quarter or day (``ServiceTally``) and per operator and day (``OperatorTally``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

QUARTER_SECONDS = 900
GOOD_RATING = 4  # and above

# The fields of a ``Chat`` that ``contribution`` reads (load only these: ``.only(*...)``).
CHAT_FIELDS = (
    "portal_id",
    "status",
    "started_at",
    "attended_at",
    "ended_at",
    "first_response_at",
    "rating",
    "operator_id",
    "department_id",
    "served_department_id",
)


class Outcome(StrEnum):
    WAITING = "waiting"  # still waiting for a pickup: offered, nothing else yet
    ANSWERED = "answered"
    UNANSWERED = "unanswered"  # over without a pickup: abandoned or missed, by the target


@dataclass(frozen=True)
class Contribution:
    """What one chat adds to the figures (see the module's docstring)."""

    department: str
    operator: str
    arrived: datetime
    outcome: Outcome
    wait: int | None = None  # whole seconds: to the pickup, or until an unanswered chat ended
    handle: float | None = None
    response: float | None = None
    rating: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "department": self.department,
            "operator": self.operator,
            "arrived": self.arrived.astimezone(UTC).isoformat(),
            "outcome": str(self.outcome),
            "wait": self.wait,
            "handle": self.handle,
            "response": self.response,
            "rating": self.rating,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Contribution | None:
        if not data:
            return None
        return cls(
            department=data["department"],
            operator=data["operator"],
            arrived=datetime.fromisoformat(data["arrived"]),
            outcome=Outcome(data["outcome"]),
            wait=data.get("wait"),
            handle=data.get("handle"),
            response=data.get("response"),
            rating=data.get("rating"),
        )


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def contribution(chat: Any) -> Contribution | None:
    """What ``chat`` (a ``Chat`` or anything with its fields) adds; None when it cannot
    count (no arrival time known)."""
    arrived = chat.started_at
    if arrived is None:
        return None
    picked_up = chat.attended_at
    over = chat.status in ("ended", "missed")
    if picked_up is not None:
        wait = _seconds(arrived, picked_up)
        handle = _seconds(picked_up, chat.ended_at) if over else None
        response = _seconds(picked_up, chat.first_response_at)
        return Contribution(
            department=chat.served_department_id or chat.department_id,
            operator=chat.operator_id,
            arrived=arrived,
            outcome=Outcome.ANSWERED,
            wait=math.floor(wait),
            handle=handle,
            response=response,
            rating=chat.rating,
        )
    if chat.status == "connected" or (over and chat.operator_id):
        # Picked up with no pickup time known (first seen connected; the reference dialect
        # sends none): answered, not timed, whether it is still running or over.
        return Contribution(
            department=chat.served_department_id or chat.department_id,
            operator=chat.operator_id,
            arrived=arrived,
            outcome=Outcome.ANSWERED,
            rating=chat.rating,
        )
    if over:
        waited = _seconds(arrived, chat.ended_at)
        return Contribution(
            department=chat.department_id,
            operator="",
            arrived=arrived,
            outcome=Outcome.UNANSWERED,
            wait=math.floor(waited) if waited is not None else 0,
            rating=chat.rating,
        )
    return Contribution(
        department=chat.department_id, operator="", arrived=arrived, outcome=Outcome.WAITING
    )


def quarter_start(when: datetime) -> datetime:
    """The start of the quarter hour ``when`` falls in. Quarters line up in UTC with every
    zone's local quarters (all offsets in use are whole quarter hours)."""
    epoch = int(when.timestamp())
    return datetime.fromtimestamp(epoch - epoch % QUARTER_SECONDS, tz=UTC)


# --- adding up -------------------------------------------------------------------------------


def _add_to(counts: dict[str, int], seconds: int, sign: int) -> None:
    key = str(seconds)
    value = counts.get(key, 0) + sign
    if value:
        counts[key] = value
    else:
        counts.pop(key, None)


@dataclass
class Tally:
    """The sums the figures are read from: the fields of ``ServiceTally`` and
    ``OperatorTally`` (same names), in memory."""

    offered: int = 0
    answered: int = 0
    answered_untimed: int = 0
    answer_waits: dict[str, int] = field(default_factory=dict)
    unanswered_waits: dict[str, int] = field(default_factory=dict)
    handled: int = 0
    handle_seconds: float = 0.0
    responded: int = 0
    response_seconds: float = 0.0
    rated: int = 0
    rating_sum: int = 0
    rated_good: int = 0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def of(cls, row: Any) -> Tally:
        """The tally a database row (or anything with the same fields) holds."""
        tally = cls(**{name: getattr(row, name) for name in cls.names()})
        tally.answer_waits = dict(tally.answer_waits)
        tally.unanswered_waits = dict(tally.unanswered_waits)
        return tally

    def add(self, part: Contribution, sign: int = 1) -> None:
        """Add what ``part`` contributes (``sign`` -1: take it away again)."""
        self.offered += sign
        if part.outcome == Outcome.ANSWERED:
            self.answered += sign
            if part.wait is None:
                self.answered_untimed += sign
            else:
                _add_to(self.answer_waits, part.wait, sign)
            if part.handle is not None:
                self.handled += sign
                self.handle_seconds += sign * part.handle
            if part.response is not None:
                self.responded += sign
                self.response_seconds += sign * part.response
        elif part.outcome == Outcome.UNANSWERED:
            _add_to(self.unanswered_waits, part.wait or 0, sign)
        if part.rating is not None:
            self.rated += sign
            self.rating_sum += sign * part.rating
            if part.rating >= GOOD_RATING:
                self.rated_good += sign

    def merge(self, other: Tally) -> None:
        for name in self.names():
            mine, theirs = getattr(self, name), getattr(other, name)
            if isinstance(mine, dict):
                for seconds, count in theirs.items():
                    _add_to(mine, int(seconds), count)
            else:
                setattr(self, name, mine + theirs)

    def copy_to(self, row: Any) -> None:
        for name in self.names():
            setattr(row, name, getattr(self, name))


def tally_of(parts: Iterable[Contribution]) -> Tally:
    tally = Tally()
    for part in parts:
        tally.add(part)
    return tally


# --- reading figures ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    seconds: int = 60
    share: int = 80  # percent

    def __str__(self) -> str:
        return f"{self.share} % within {self.seconds} s"


def _sorted_waits(counts: Mapping[str, int]) -> list[tuple[int, int]]:
    return sorted((int(seconds), count) for seconds, count in counts.items() if count > 0)


def _count(counts: Mapping[str, int], keep) -> int:
    return sum(count for seconds, count in counts.items() if keep(int(seconds)))


def percentile(counts: Mapping[str, int], share: float) -> int | None:
    """The smallest whole-second wait at or below which ``share`` (0 to 1) of the waits fall
    (nearest rank)."""
    waits = _sorted_waits(counts)
    total = sum(count for _, count in waits)
    if not total:
        return None
    rank = max(1, math.ceil(share * total))
    seen = 0
    for seconds, count in waits:
        seen += count
        if seen >= rank:
            return seconds
    return waits[-1][0]


@dataclass(frozen=True)
class Figures:
    """The figures of one tally against one target (and the chats waiting now past it)."""

    offered: int
    answered: int
    abandoned: int
    missed: int
    within_target: int
    judged: int  # the service level's denominator
    service_level: float | None  # 0 to 100
    answer_average: float | None  # seconds
    answer_p90: int | None
    handle_average: float | None
    response_average: float | None
    rating_average: float | None
    rated_good_share: float | None  # 0 to 100
    rated: int
    target: Target

    @property
    def level_tone(self) -> str:
        """ "bad" below the target, "warn" within 5 points above it, "" comfortably above."""
        if self.service_level is None:
            return ""
        if self.service_level < self.target.share:
            return "bad"
        return "warn" if self.service_level < self.target.share + 5 else ""


def figures(tally: Tally, target: Target, *, waiting_past_target: int = 0) -> Figures:
    """The figures ``tally`` gives against ``target``; ``waiting_past_target``: chats waiting
    right now for longer than the target (they count as missing it already)."""
    t = target.seconds
    within = _count(tally.answer_waits, lambda s: s <= t)
    timed = sum(tally.answer_waits.values())
    abandoned = _count(tally.unanswered_waits, lambda s: s < t)
    missed = sum(tally.unanswered_waits.values()) - abandoned
    judged = timed + missed + waiting_past_target
    answer_total = sum(int(s) * n for s, n in tally.answer_waits.items())
    return Figures(
        offered=tally.offered,
        answered=tally.answered,
        abandoned=abandoned,
        missed=missed,
        within_target=within,
        judged=judged,
        service_level=100.0 * within / judged if judged else None,
        answer_average=answer_total / timed if timed else None,
        answer_p90=percentile(tally.answer_waits, 0.9),
        handle_average=tally.handle_seconds / tally.handled if tally.handled else None,
        response_average=tally.response_seconds / tally.responded if tally.responded else None,
        rating_average=tally.rating_sum / tally.rated if tally.rated else None,
        rated_good_share=100.0 * tally.rated_good / tally.rated if tally.rated else None,
        rated=tally.rated,
        target=target,
    )


# --- the business day ------------------------------------------------------------------------


def day_start(when: datetime, zone: Any) -> datetime:
    """The local midnight that starts the business day ``when`` falls in, in ``zone`` (a
    ``zoneinfo.ZoneInfo``), as an aware UTC time. A day with a daylight-saving change is 23 or
    25 hours long; its quarters are the ones between its midnight and the next."""
    local = when.astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    return midnight.astimezone(UTC)


def next_day_start(start: datetime, zone: Any) -> datetime:
    """The midnight after the business day that starts at ``start``."""
    local = start.astimezone(zone)
    following = (local.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=zone)
    return datetime(following.year, following.month, following.day, tzinfo=zone).astimezone(UTC)
