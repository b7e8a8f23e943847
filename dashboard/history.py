"""What the history pages share (the audit trail, the alert history): a portal and a time
range read from the query string, in the viewer's zone, and the CSV export of what matches.

Each page subclasses ``RangeFilters`` with its own filters and streams its rows through
``csv_download``; neither view imports the other.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from urllib.parse import urlencode

from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone

from siq_integration.models import Portal

from . import times

PAGE_SIZE = 100  # rows a history page shows

PERIODS = {
    "today": "Today",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
}
_PERIOD_LENGTH = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}

# --- a portal and a time range ---------------------------------------------------------------


@dataclass
class RangeFilters:
    """A portal and a time range, as the history pages (the audit trail, the alert
    history) read them from the query string; ``errors`` holds what could not be used, in words.

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


# --- CSV ---------------------------------------------------------------------------------------


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
