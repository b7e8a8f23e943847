"""One business day of a portal (or of one of its departments) quarter hour by quarter hour,
beside the same weekday a week earlier: what the "Through the day" page charts.

Every number is read from the quarter and day tallies (``ServiceTally``) through the one
definition, ``definitions.figures``; nothing here counts chats another way. The day is the
portal's business day in its zone, from local midnight to the next (92, 96 or 100 quarters
when the clocks change that day). Last week's quarters are matched to this day's by the local
clock ("09:15" to "09:15"): on a day whose clocks change, a label one day lacks has no
figures there, and a label the day repeats (the hour the clocks go back) is matched to its
first, then its second time.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from ..models import DepartmentService, ServiceTally, TallySpan
from . import counting, definitions
from .definitions import Figures, Tally, Target, day_start, next_day_start

QUARTER = timedelta(seconds=definitions.QUARTER_SECONDS)
WEEK = timedelta(days=7)

# What each quarter of the charts carries.
CHARTED = ("offered", "answered", "missed", "abandoned", "service_level", "answer_average")


# --- the figures' definitions, in words ---------------------------------------------------


def _definition_sentences() -> list[str]:
    """definitions.py's docstring cut into sentences, without its Markdown marks."""
    text = " ".join((definitions.__doc__ or "").split())
    text = text.replace("**", "").replace("``", "")
    return [part.lstrip("- ").strip() for part in re.split(r"(?<=[.])\s+", text)]


def _sentence_with(opening: str) -> str:
    """The docstring's sentence that starts with (or, failing that, holds) ``opening``."""
    sentences = _definition_sentences()
    for sentence in sentences:
        if sentence.startswith(opening):
            return sentence
    for sentence in sentences:
        if opening in sentence:
            return sentence
    raise LookupError(f"definitions.py no longer defines {opening!r}")


def definitions_in_words() -> dict[str, str]:
    """A hover title for each figure on the page: its definition, as definitions.py says it."""
    unanswered = _sentence_with("Unanswered:")
    apart = _sentence_with("Against a target of T seconds")
    return {
        "offered": _sentence_with("Offered:"),
        "answered": _sentence_with("Answered:"),
        "missed": f"{unanswered} {apart}",
        "abandoned": f"{unanswered} {apart}",
        "service_level": _sentence_with("Service level against T:"),
        "answer_average": "Average of the answer times. " + _sentence_with("Its answer time is"),
        "answer_p90": "The answer time 9 chats in 10 stayed within. "
        + _sentence_with("Its answer time is"),
    }


# --- the day and its quarters -------------------------------------------------------------


def local_midnight(day: date, zone: Any) -> datetime:
    """The instant (UTC) the business day ``day`` starts in ``zone``. Read from its noon: a
    zone whose clocks jump at midnight has no 00:00 that day, but always has a noon."""
    return day_start(datetime.combine(day, time(12), tzinfo=zone), zone)


def quarters_of(start: datetime, end: datetime) -> list[datetime]:
    """The quarter hours from ``start`` up to ``end`` (UTC)."""
    found = []
    moment = start
    while moment < end:
        found.append(moment)
        moment += QUARTER
    return found


def _labels(quarters: list[datetime], zone: Any) -> list[tuple[str, int]]:
    """Each quarter's local clock label and which time that label comes round that day
    (0, or 1 for the second time in the hour the clocks go back)."""
    seen: dict[str, int] = {}
    labels = []
    for quarter in quarters:
        label = quarter.astimezone(zone).strftime("%H:%M")
        labels.append((label, seen.get(label, 0)))
        seen[label] = seen.get(label, 0) + 1
    return labels


# --- reading the tallies ------------------------------------------------------------------


def target_of(portal_id: Any, department_id: str | None, service: Any) -> Target:
    """The target the figures are read against: the department's own where it has one, else
    the portal's (the whole portal: the portal's)."""
    seconds, share = service.target_seconds, service.target_share
    if department_id is not None:
        own = DepartmentService.objects.filter(
            portal_id=portal_id, department_id=department_id
        ).first()
        if own is not None:
            seconds = own.target_seconds if own.target_seconds is not None else seconds
            share = own.target_share if own.target_share is not None else share
    return Target(seconds=seconds, share=share)


def _quarter_tallies(
    portal_id: Any, department_id: str | None, start: datetime, end: datetime
) -> dict[datetime, Tally]:
    """The tallies of the quarters from ``start`` to ``end``, departments added up: one
    query on the (portal, span, start) index."""
    rows = ServiceTally.objects.filter(
        portal_id=portal_id, span=TallySpan.QUARTER, start__gte=start, start__lt=end
    )
    if department_id is not None:
        rows = rows.filter(department_id=department_id)
    tallies: dict[datetime, Tally] = {}
    for row in rows:
        key = row.start.astimezone(UTC)
        if key in tallies:
            tallies[key].merge(Tally.of(row))
        else:
            tallies[key] = Tally.of(row)
    return tallies


def _day_tally(portal_id: Any, department_id: str | None, start: datetime) -> Tally:
    """The business day's own row(s) (span "day"), departments added up."""
    rows = ServiceTally.objects.filter(portal_id=portal_id, span=TallySpan.DAY, start=start)
    if department_id is not None:
        rows = rows.filter(department_id=department_id)
    total = Tally()
    for row in rows:
        total.merge(Tally.of(row))
    return total


def _charted(result: Figures) -> dict[str, Any]:
    return {name: getattr(result, name) for name in CHARTED}


def _totals(result: Figures) -> dict[str, Any]:
    return {
        **_charted(result),
        "answer_p90": result.answer_p90,
        "within_target": result.within_target,
        "judged": result.judged,
    }


def series(portal: Any, department_id: str | None, day: date, now: datetime) -> dict[str, Any]:
    """The charts' data for ``portal``'s business day ``day`` (``department_id`` None: every
    department added up), as of ``now``: one entry per quarter with this day's figures and
    last week's, None for a quarter that has not begun."""
    service = counting.settings_of(portal.pk)
    zone = counting.zone_of(service)
    target = target_of(portal.pk, department_id, service)
    start = local_midnight(day, zone)
    end = next_day_start(start, zone)
    week_before = day - WEEK
    before_start = local_midnight(week_before, zone)
    before_end = next_day_start(before_start, zone)

    quarters = quarters_of(start, end)
    before_quarters = quarters_of(before_start, before_end)
    tallies = _quarter_tallies(portal.pk, department_id, start, end)
    before_tallies = _quarter_tallies(portal.pk, department_id, before_start, before_end)
    before_by_label = dict(zip(_labels(before_quarters, zone), before_quarters, strict=True))

    def shown(tallied: dict[datetime, Tally], quarter: datetime | None) -> dict | None:
        if quarter is None or quarter > now:
            return None  # not on that day's clock, or not begun: no figures, not zero
        return _charted(definitions.figures(tallied.get(quarter, Tally()), target))

    entries = []
    for quarter, label in zip(quarters, _labels(quarters, zone), strict=True):
        entries.append(
            {
                "label": label[0],
                "start": quarter.isoformat().replace("+00:00", "Z"),
                "figures": shown(tallies, quarter),
                "last_week": shown(before_tallies, before_by_label.get(label)),
            }
        )

    def total(day_begins: datetime) -> dict | None:
        if day_begins > now:
            return None
        tally = _day_tally(portal.pk, department_id, day_begins)
        return _totals(definitions.figures(tally, target))

    return {
        "portal": str(portal.pk),
        "department": department_id,
        "day": day.isoformat(),
        "last_week_day": week_before.isoformat(),
        "zone": str(zone),
        "target": {"seconds": target.seconds, "share": target.share, "words": str(target)},
        "labels": [entry["label"] for entry in entries],
        "quarters": entries,
        "totals": {"figures": total(start), "last_week": total(before_start)},
        "now": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
