"""Durations and times of day, each written one way.

A duration carries its units, so nobody reads one as a clock time: "45s", "6m 07s",
"1h 02m", "2d 3h". A time of day follows the viewer's clock (24-hour "13:51" or 12-hour
"1:51 PM") in the viewer's zone, with the date when it is not today there ("2 Dec, 13:51";
"2 Dec 2024, 13:51" in another year).

The viewer's clock is their profile's choice (``Profile.time_format``, ``Profile.time_zone``)
and, where they left it to the browser, what the browser said in two cookies that
static/js/time.js keeps current (its zone, and whether its language uses a 12-hour clock).

static/js/time.js is this module's twin in the browser: the two write the same text for the
same moment and clock (tests/test_times.py runs both over the same cases).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

# Cookies static/js/time.js sets from the browser: its IANA zone, and its hour cycle
# ("h12"/"h11" for a 12-hour clock, "h23"/"h24" for a 24-hour one).
ZONE_COOKIE = "siq_tz"
HOUR_CYCLE_COOKIE = "siq_hc"

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def duration(seconds: float) -> str:
    """ "45s", "6m 07s", "1h 02m", "2d 3h": whole units, rounded down, as a clock ticks."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes}m {rest:02d}s"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h {rest // 60:02d}m"
    days, rest = divmod(seconds, 86400)
    return f"{days}d {rest // 3600}h"


# --- zones ------------------------------------------------------------------------------------


@cache
def zone_names() -> frozenset[str]:
    """Every IANA zone this server knows (read once: it scans the zone database)."""
    return frozenset(available_timezones())


def zone_named(name: str) -> ZoneInfo | None:
    """The zone called ``name``, or None when this server knows no such zone. Only names
    from the database are opened, so nothing a browser sends reaches the file system."""
    if not name or name not in zone_names():
        return None
    return ZoneInfo(name)


def zone_choices() -> list[str]:
    """The zones a person may pick, by region then city ("Europe/Berlin")."""
    return sorted(zone_names(), key=lambda name: (name.count("/") == 0, name))


# --- the viewer's clock -----------------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    """How one viewer reads times of day.

    ``zone`` is None when the viewer's zone is not known here (no choice on the profile, and
    the browser has not said yet): times are then written in UTC and say so, and the page's
    script rewrites them in the browser's zone. ``format_choice`` and ``zone_choice`` are the
    profile's own settings ("" = as the browser has it), for the page's script.
    """

    zone: tzinfo | None = None
    hour12: bool = False
    format_choice: str = ""
    zone_choice: str = ""

    @property
    def zone_name(self) -> str:
        return str(self.zone) if self.zone is not None else "UTC"

    @property
    def shown_zone(self) -> tzinfo:
        return self.zone if self.zone is not None else UTC


UTC_CLOCK = Clock()


def clock_for(
    *, time_format: str = "", time_zone: str = "", cookies: dict[str, str] | None = None
) -> Clock:
    """The clock of a viewer whose profile says ``time_format`` and ``time_zone``, filling
    what they left to the browser from the browser's cookies."""
    cookies = cookies or {}
    zone = zone_named(time_zone) or zone_named(cookies.get(ZONE_COOKIE, ""))
    if time_format == "12h":
        hour12 = True
    elif time_format == "24h":
        hour12 = False
    else:
        hour12 = cookies.get(HOUR_CYCLE_COOKIE, "") in ("h11", "h12")
    return Clock(
        zone=zone,
        hour12=hour12,
        format_choice=time_format if time_format in ("12h", "24h") else "",
        zone_choice=time_zone if zone_named(time_zone) else "",
    )


def viewer_clock(request: Any) -> Clock:
    """The signed-in viewer's clock (their profile, then their browser's cookies)."""
    from .models import Profile  # models import nothing from here; keep this module light

    user = getattr(request, "user", None)
    time_format = time_zone = ""
    if user is not None and user.is_authenticated:
        chosen = Profile.objects.filter(user=user).values_list("time_format", "time_zone").first()
        if chosen:
            time_format, time_zone = chosen
    return clock_for(time_format=time_format, time_zone=time_zone, cookies=request.COOKIES)


# --- writing a moment -------------------------------------------------------------------------


def time_of_day(moment: datetime, clock: Clock, *, seconds: bool = False) -> str:
    """ "13:51" (or "13:51:07"), "1:51 PM" (or "1:51:07 PM") in the clock's zone."""
    local = moment.astimezone(clock.shown_zone)
    tail = f":{local.second:02d}" if seconds else ""
    if clock.hour12:
        half = "AM" if local.hour < 12 else "PM"
        return f"{local.hour % 12 or 12}:{local.minute:02d}{tail} {half}"
    return f"{local.hour:02d}:{local.minute:02d}{tail}"


def when(moment: datetime, clock: Clock, now: datetime, *, seconds: bool = False) -> str:
    """The time of day, after the date when that is not today in the clock's zone:
    "13:51", "2 Dec, 13:51", "2 Dec 2024, 13:51"; "… UTC" when the zone is not known."""
    zone = clock.shown_zone
    local, today = moment.astimezone(zone), now.astimezone(zone).date()
    text = time_of_day(moment, clock, seconds=seconds)
    if local.date() != today:
        year = f" {local.year}" if local.year != today.year else ""
        text = f"{local.day} {MONTHS[local.month - 1]}{year}, {text}"
    return text if clock.zone is not None else f"{text} UTC"


def in_full(moment: datetime, clock: Clock) -> str:
    """For a tooltip: "Tue 2 Dec 2025, 13:51:07 (Europe/Berlin)"."""
    local = moment.astimezone(clock.shown_zone)
    day = f"{WEEKDAYS[local.weekday()]} {local.day} {MONTHS[local.month - 1]} {local.year}"
    return f"{day}, {time_of_day(moment, clock, seconds=True)} ({clock.zone_name})"


def iso_in(moment: datetime | None, zone: tzinfo | None) -> str:
    """A time for a spreadsheet, in ``zone`` with its offset ("2025-03-30T03:30:00+02:00"),
    or in UTC ("…Z") when the zone is not known."""
    if moment is None:
        return ""
    text = moment.astimezone(zone or UTC).isoformat(timespec="seconds")
    return text.replace("+00:00", "Z") if zone is None else text
