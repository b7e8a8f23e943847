"""Durations and times of day, written one way: dashboard/times.py and its browser twin
static/js/time.js (run here with Node) write the same text for the same moment and clock."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dashboard import times

ROOT = Path(__file__).resolve().parent.parent
TIME_JS = ROOT / "static" / "js" / "time.js"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0s"),
        (0, "0s"),
        (45.9, "45s"),
        (59, "59s"),
        (60, "1m 00s"),
        (367, "6m 07s"),
        (3599, "59m 59s"),
        (3600, "1h 00m"),
        (3720, "1h 02m"),
        (86399, "23h 59m"),
        (86400, "1d 0h"),
        (2 * 86400 + 3 * 3600 + 59, "2d 3h"),
    ],
)
def test_it_writes_a_duration_with_its_units(seconds, text):
    assert times.duration(seconds) == text


def clock(zone: str, hour12: bool) -> times.Clock:
    return times.Clock(zone=ZoneInfo(zone), hour12=hour12)


def test_it_writes_a_time_of_day_by_the_viewers_clock_and_zone():
    moment = datetime(2025, 12, 2, 13, 51, 7, tzinfo=UTC)
    same_day = moment + timedelta(hours=2)
    assert times.when(moment, clock("UTC", False), same_day) == "13:51"
    assert times.when(moment, clock("UTC", True), same_day) == "1:51 PM"
    assert times.when(moment, clock("UTC", True), same_day, seconds=True) == "1:51:07 PM"
    assert times.when(moment, clock("Europe/Berlin", False), same_day) == "14:51"
    # Not today: the date first; another year: with the year.
    assert times.when(moment, clock("UTC", False), moment + timedelta(days=1)) == "2 Dec, 13:51"
    next_year = moment + timedelta(days=40)
    assert times.when(moment, clock("UTC", True), next_year) == "2 Dec 2025, 1:51 PM"
    # Midnight and noon on a 12-hour clock.
    assert times.time_of_day(datetime(2025, 1, 1, 0, 5, tzinfo=UTC), clock("UTC", True)) == (
        "12:05 AM"
    )
    assert times.time_of_day(datetime(2025, 1, 1, 12, 5, tzinfo=UTC), clock("UTC", True)) == (
        "12:05 PM"
    )
    # A zone not known here (the browser has not said): UTC, and it says so.
    assert times.when(moment, times.UTC_CLOCK, same_day) == "13:51 UTC"
    assert times.in_full(moment, clock("Asia/Kolkata", False)) == (
        "Tue 2 Dec 2025, 19:21:07 (Asia/Kolkata)"
    )


def test_it_takes_the_profiles_choice_then_the_browsers():
    cookies = {times.ZONE_COOKIE: "Asia/Tokyo", times.HOUR_CYCLE_COOKIE: "h12"}
    chosen = times.clock_for(time_format="24h", time_zone="Europe/Berlin", cookies=cookies)
    assert (chosen.zone_name, chosen.hour12) == ("Europe/Berlin", False)
    assert (chosen.format_choice, chosen.zone_choice) == ("24h", "Europe/Berlin")
    browser = times.clock_for(cookies=cookies)
    assert (browser.zone_name, browser.hour12) == ("Asia/Tokyo", True)
    assert (browser.format_choice, browser.zone_choice) == ("", "")
    # What a browser sends is only a name to look up: nothing else opens a file.
    for sent in ("../../etc/passwd", "Not/AZone", "", "UTC "):
        assert times.clock_for(cookies={times.ZONE_COOKIE: sent}).zone is None
    assert times.clock_for().zone_name == "UTC"


# --- the twins -------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
MOMENTS = [
    datetime(2025, 3, 30, 0, 59, 59, tzinfo=UTC),  # Berlin: 01:59:59 CET …
    datetime(2025, 3, 30, 1, 0, 0, tzinfo=UTC),  # … then 03:00 CEST
    datetime(2025, 10, 26, 0, 30, tzinfo=UTC),  # Berlin: 02:30 CEST, the first time …
    datetime(2025, 10, 26, 1, 30, tzinfo=UTC),  # … and 02:30 CET, the second
    datetime(2025, 12, 31, 23, 59, 30, tzinfo=UTC),
    datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
    datetime(2026, 7, 4, 4, 5, 6, tzinfo=UTC),
]
NOWS = [datetime(2026, 1, 1, 18, 0, tzinfo=UTC), datetime(2025, 10, 26, 12, 0, tzinfo=UTC)]
SECONDS = [0, 1, 59, 60, 61, 599, 3599, 3600, 3661, 86399, 86400, 90061, 1_000_000, 12.7]


def _node() -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("Node.js is not installed here: the browser twin runs in the browser tests")
    return node


def test_the_browser_twin_writes_what_the_server_writes():
    cases = [
        {"at": at.isoformat(), "now": now.isoformat(), "zone": zone, "hour12": hour12}
        for at in MOMENTS
        for now in NOWS
        for zone in ZONES
        for hour12 in (False, True)
    ]
    script = """
        const time = require(process.argv[1]);
        const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
        const out = {
            durations: input.seconds.map(time.duration),
            moments: input.cases.map((c) => {
                const clock = { zone: c.zone, hour12: c.hour12 };
                const at = new Date(c.at), now = new Date(c.now);
                return [time.when(at, clock, now, false), time.when(at, clock, now, true),
                        time.timeOfDay(at, clock, false), time.inFull(at, clock)];
            }),
        };
        process.stdout.write(JSON.stringify(out));
    """
    done = subprocess.run(
        [_node(), "-e", script, str(TIME_JS)],
        input=json.dumps({"seconds": SECONDS, "cases": cases}),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    browser = json.loads(done.stdout)
    assert browser["durations"] == [times.duration(s) for s in SECONDS]
    server = []
    for case in cases:
        at, now = datetime.fromisoformat(case["at"]), datetime.fromisoformat(case["now"])
        viewer = clock(case["zone"], case["hour12"])
        server.append(
            [
                times.when(at, viewer, now),
                times.when(at, viewer, now, seconds=True),
                times.time_of_day(at, viewer),
                times.in_full(at, viewer),
            ]
        )
    assert browser["moments"] == server
