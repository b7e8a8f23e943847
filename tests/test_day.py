"""The "Through the day" series (dashboard/figures/day.py) and its page and JSON
(dashboard/views/day.py): quarters of a business day in the portal's zone, summer time
included; last week aligned by the local clock; who may see it; a bad day refused in words.

Every tally here is made the way production makes it: chats applied through
dashboard.state.apply, which counts them (dashboard/figures/counting.py).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard.figures import day as day_series
from dashboard.figures import definitions
from dashboard.figures.definitions import Tally, Target, contribution, figures, tally_of
from dashboard.models import Chat, DepartmentService, ServiceSettings, ServiceTally
from dashboard.state import apply
from dashboard.views.day import embedded_json
from siq_integration.models import Portal
from siq_integration.normalised import ChatStatus, Conversation, EventKind, Visitor, WebhookEvent
from tests.factories import make_admin, make_portal, make_supervisor, make_viewer, outsider

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
WORDS_OUT_OF_RANGE = "Out of range: pick a date from the year 2000 to 2100."
AFTERWARDS = datetime(2030, 1, 1, tzinfo=UTC)  # "now" after every day here: all quarters begun


@pytest.fixture
def portal():
    found = make_portal()
    ServiceSettings.objects.create(
        portal=found, time_zone="Europe/Berlin", target_seconds=60, target_share=80
    )
    return found


_keys = iter(range(1, 1_000_000))


def arrive(
    portal: Portal,
    local: datetime,
    *,
    answered_after: float | None = None,
    gave_up_after: float | None = None,
    department: str = "d1",
    zone: ZoneInfo = BERLIN,
) -> None:
    """A chat arriving at ``local`` (naive, on ``zone``'s clock; ``fold`` picks the second
    time round in the hour the clocks go back), picked up or given up after so many seconds
    (neither: still waiting), applied as SalesIQ's webhooks would tell it."""
    arrived = local.replace(tzinfo=zone).astimezone(UTC)
    key = next(_keys)
    fields = dict(
        id=f"c{key}",
        visitor=Visitor(id=f"v{key}", name="Zoë"),
        started_at=arrived,
        department_id=department,
        department_name=department.upper(),
    )
    if answered_after is not None:
        kind = EventKind.CHAT_ENDED
        conversation = Conversation(
            status=ChatStatus.ENDED,
            operator_id="op1",
            operator_name="Asha",
            attended_at=arrived + timedelta(seconds=answered_after),
            ended_at=arrived + timedelta(seconds=answered_after + 300),
            **fields,
        )
    elif gave_up_after is not None:
        kind = EventKind.CHAT_MISSED
        conversation = Conversation(
            status=ChatStatus.MISSED, ended_at=arrived + timedelta(seconds=gave_up_after), **fields
        )
    else:
        kind = EventKind.CHAT_CREATED
        conversation = Conversation(status=ChatStatus.WAITING, **fields)
    at = conversation.ended_at or arrived
    event = WebhookEvent(
        kind=kind,
        name=str(kind),
        dedupe_key=f"k{key}",
        occurred_at=at,
        conversation=conversation,
        chat_id=conversation.id,
    )
    apply.apply_event(portal, event, received_at=at)
    apply.count_pending(portal.pk)  # as the worker's queues job does within a second


def entry(data: dict, label: str, occurrence: int = 0) -> dict:
    return [q for q in data["quarters"] if q["label"] == label][occurrence]


# --- the quarters ----------------------------------------------------------------------------


def test_a_quarter_holds_the_figures_of_the_chats_that_arrived_in_it(portal):
    day = date(2026, 11, 19)
    arrive(portal, datetime(2026, 11, 19, 9, 5), answered_after=20)
    arrive(portal, datetime(2026, 11, 19, 9, 10), gave_up_after=120)  # missed
    arrive(portal, datetime(2026, 11, 19, 9, 14, 59), answered_after=75)
    arrive(portal, datetime(2026, 11, 19, 9, 40), gave_up_after=30)  # abandoned
    arrive(portal, datetime(2026, 11, 19, 9, 15), answered_after=0)

    data = day_series.series(portal, None, day, AFTERWARDS)

    nine = entry(data, "09:00")["figures"]
    assert (nine["offered"], nine["answered"], nine["missed"], nine["abandoned"]) == (3, 2, 1, 0)
    # One of the two timed answers within 60 s, and the missed chat against: 1 of 3.
    assert nine["service_level"] == pytest.approx(100 / 3)
    assert nine["answer_average"] == pytest.approx((20 + 75) / 2)
    quarter_past = entry(data, "09:15")["figures"]
    assert (quarter_past["offered"], quarter_past["service_level"]) == (1, 100.0)
    half_past = entry(data, "09:30")["figures"]
    assert (half_past["offered"], half_past["abandoned"], half_past["missed"]) == (1, 1, 0)
    # Abandoned chats are judged on neither side: no service level, not 0 % nor 100 %.
    assert half_past["service_level"] is None and half_past["answer_average"] is None
    quiet = entry(data, "13:00")["figures"]
    assert quiet == {
        "offered": 0,
        "answered": 0,
        "missed": 0,
        "abandoned": 0,
        "service_level": None,
        "answer_average": None,
    }


def test_the_quarters_add_up_to_the_days_own_row_and_agree_with_the_chats(portal):
    day = date(2026, 11, 19)
    for minute, wait in ((0, 10), (20, 61), (50, 5)):
        arrive(portal, datetime(2026, 11, 19, 10, minute), answered_after=wait)
    arrive(portal, datetime(2026, 11, 19, 16, 0), gave_up_after=600)
    arrive(portal, datetime(2026, 11, 19, 16, 1), gave_up_after=3)

    data = day_series.series(portal, None, day, AFTERWARDS)

    totals = data["totals"]["figures"]
    for name in ("offered", "answered", "missed", "abandoned"):
        assert totals[name] == sum(q["figures"][name] for q in data["quarters"]), name
    # The same figures as the one definition gives for every chat of the day.
    expected = figures(
        tally_of(contribution(chat) for chat in Chat.objects.filter(portal=portal)),
        Target(60, 80),
    )
    assert (totals["offered"], totals["missed"], totals["abandoned"]) == (5, 1, 1)
    assert totals["service_level"] == expected.service_level == 50.0
    assert totals["answer_p90"] == expected.answer_p90 == 61
    assert (totals["within_target"], totals["judged"]) == (2, 4)


def test_quarters_that_have_not_begun_have_no_figures_not_zero(portal):
    day = date(2026, 11, 19)
    arrive(portal, datetime(2026, 11, 19, 9, 5), answered_after=20)
    now = datetime(2026, 11, 19, 9, 20, tzinfo=BERLIN)

    data = day_series.series(portal, None, day, now)

    assert entry(data, "09:15")["figures"]["offered"] == 0  # begun, nothing arrived yet
    assert entry(data, "09:30")["figures"] is None
    assert entry(data, "23:45")["figures"] is None
    assert entry(data, "09:30")["last_week"] is not None  # last week is over
    begun = [q for q in data["quarters"] if q["figures"] is not None]
    assert len(begun) == 9 * 4 + 2


def test_a_day_not_begun_has_no_totals_and_an_empty_one_has_zeros(portal):
    today = date(2026, 11, 19)
    now = datetime(2026, 11, 19, 12, 0, tzinfo=BERLIN)
    future = day_series.series(portal, None, date(2026, 11, 26), now)
    assert future["totals"]["figures"] is None
    assert all(q["figures"] is None for q in future["quarters"])
    # Its last week is today: begun up to noon.
    assert future["totals"]["last_week"]["offered"] == 0
    assert sum(q["last_week"] is not None for q in future["quarters"]) == 12 * 4 + 1
    quiet = day_series.series(portal, None, today, now)
    assert quiet["totals"]["figures"]["offered"] == 0
    assert quiet["totals"]["figures"]["service_level"] is None


def test_a_department_alone_or_every_department_added_up(portal):
    day = date(2026, 11, 19)
    arrive(portal, datetime(2026, 11, 19, 11, 0), answered_after=10, department="d1")
    arrive(portal, datetime(2026, 11, 19, 11, 5), answered_after=100, department="d2")
    arrive(portal, datetime(2026, 11, 19, 11, 6), answered_after=100, department="d2")

    whole = day_series.series(portal, None, day, AFTERWARDS)
    one = day_series.series(portal, "d2", day, AFTERWARDS)
    other = day_series.series(portal, "d1", day, AFTERWARDS)

    assert entry(whole, "11:00")["figures"]["offered"] == 3
    assert entry(one, "11:00")["figures"]["offered"] == 2
    assert entry(other, "11:00")["figures"]["offered"] == 1
    assert entry(whole, "11:00")["figures"]["service_level"] == pytest.approx(100 / 3)
    assert whole["totals"]["figures"]["offered"] == 3 and one["totals"]["figures"]["offered"] == 2
    assert whole["department"] is None and one["department"] == "d2"


def test_a_departments_own_target_is_the_one_its_figures_are_read_against(portal):
    day = date(2026, 11, 19)
    arrive(portal, datetime(2026, 11, 19, 11, 0), answered_after=100, department="d2")
    DepartmentService.objects.create(portal=portal, department_id="d2", target_seconds=120)

    own = day_series.series(portal, "d2", day, AFTERWARDS)
    whole = day_series.series(portal, None, day, AFTERWARDS)

    assert own["target"] == {"seconds": 120, "share": 80, "words": "80 % within 120 s"}
    assert entry(own, "11:00")["figures"]["service_level"] == 100.0
    assert whole["target"]["seconds"] == 60
    assert entry(whole, "11:00")["figures"]["service_level"] == 0.0


# --- midnight and summer time ----------------------------------------------------------------


def test_a_chat_a_second_before_local_midnight_counts_in_that_day_not_the_next(portal):
    arrive(portal, datetime(2026, 11, 19, 23, 59, 59), answered_after=5)
    arrive(portal, datetime(2026, 11, 20, 0, 0, 0), answered_after=5)

    thursday = day_series.series(portal, None, date(2026, 11, 19), AFTERWARDS)
    friday = day_series.series(portal, None, date(2026, 11, 20), AFTERWARDS)

    assert thursday["quarters"][-1]["label"] == "23:45"
    assert thursday["quarters"][-1]["figures"]["offered"] == 1
    assert thursday["totals"]["figures"]["offered"] == 1
    assert friday["quarters"][0]["label"] == "00:00"
    assert friday["quarters"][0]["figures"]["offered"] == 1
    # Midnight in Berlin, not in UTC (23:00 UTC in winter).
    assert thursday["quarters"][0]["start"] == "2026-11-18T23:00:00Z"


@pytest.mark.parametrize(
    ("zone", "day", "quarters", "first", "last"),
    [
        ("Europe/Berlin", date(2026, 11, 19), 96, "00:00", "23:45"),
        ("Europe/Berlin", date(2026, 3, 29), 92, "00:00", "23:45"),  # 02:00 -> 03:00
        ("Europe/Berlin", date(2026, 10, 25), 100, "00:00", "23:45"),  # 03:00 -> 02:00
        ("America/Santiago", date(2026, 9, 6), 92, "01:00", "23:45"),  # no midnight that day
        ("Asia/Kolkata", date(2026, 11, 19), 96, "00:00", "23:45"),  # a half-hour zone
    ],
)
def test_a_business_day_has_its_own_number_of_quarters(portal, zone, day, quarters, first, last):
    ServiceSettings.objects.filter(portal=portal).update(time_zone=zone)
    data = day_series.series(portal, None, day, AFTERWARDS)
    assert len(data["quarters"]) == quarters
    assert (data["labels"][0], data["labels"][-1]) == (first, last)
    assert data["zone"] == zone
    assert all(re.fullmatch(r"\d\d:(00|15|30|45)", label) for label in data["labels"])


def test_the_spring_day_has_no_two_oclock_and_the_autumn_day_has_it_twice(portal):
    spring = day_series.series(portal, None, date(2026, 3, 29), AFTERWARDS)["labels"]
    autumn = day_series.series(portal, None, date(2026, 10, 25), AFTERWARDS)["labels"]
    assert "02:00" not in spring and spring[7:9] == ["01:45", "03:00"]
    assert autumn.count("02:15") == 2 and autumn.count("03:15") == 1


# --- last week, aligned by the local clock ---------------------------------------------------


def test_last_week_is_the_same_weekday_quarter_by_quarter(portal):
    arrive(portal, datetime(2026, 11, 12, 9, 15), answered_after=30)
    arrive(portal, datetime(2026, 11, 12, 9, 20), gave_up_after=90)
    arrive(portal, datetime(2026, 11, 19, 9, 15), answered_after=10)

    data = day_series.series(portal, None, date(2026, 11, 19), AFTERWARDS)

    assert data["last_week_day"] == "2026-11-12"
    quarter = entry(data, "09:15")
    assert quarter["figures"]["offered"] == 1
    assert (quarter["last_week"]["offered"], quarter["last_week"]["missed"]) == (2, 1)
    assert quarter["last_week"]["service_level"] == 50.0
    assert entry(data, "09:00")["last_week"]["offered"] == 0
    assert data["totals"]["last_week"]["offered"] == 2


def test_after_the_clocks_went_forward_last_weeks_two_oclock_is_there_and_todays_is_none(portal):
    # The Sunday after the spring change: last week had no 02:xx quarters.
    arrive(portal, datetime(2026, 3, 29, 3, 0), answered_after=10)  # right after the jump
    arrive(portal, datetime(2026, 4, 5, 2, 30), answered_after=10)

    data = day_series.series(portal, None, date(2026, 4, 5), AFTERWARDS)

    assert len(data["quarters"]) == 96
    for label in ("02:00", "02:15", "02:30", "02:45"):
        assert entry(data, label)["last_week"] is None, label  # no such time last week
    assert entry(data, "02:30")["figures"]["offered"] == 1
    assert entry(data, "03:00")["last_week"]["offered"] == 1
    assert entry(data, "01:45")["last_week"]["offered"] == 0


def test_on_the_day_the_clocks_go_back_each_two_oclock_meets_its_own_last_week(portal):
    # 25 October 2026: 02:00-02:59 comes round twice; 18 October had it once.
    arrive(portal, datetime(2026, 10, 18, 2, 15), answered_after=10)
    arrive(portal, datetime(2026, 10, 25, 2, 15), answered_after=10)  # the first 02:15
    arrive(portal, datetime(2026, 10, 25, 2, 15, fold=1), answered_after=10)  # the second
    arrive(portal, datetime(2026, 10, 25, 2, 20, fold=1), answered_after=10)

    data = day_series.series(portal, None, date(2026, 10, 25), AFTERWARDS)

    first, second = entry(data, "02:15", 0), entry(data, "02:15", 1)
    assert first["figures"]["offered"] == 1 and second["figures"]["offered"] == 2
    assert first["start"] == "2026-10-25T00:15:00Z" and second["start"] == "2026-10-25T01:15:00Z"
    assert first["last_week"]["offered"] == 1
    assert second["last_week"] is None  # last week's clock showed 02:15 once


def test_the_week_after_the_clocks_went_back_meets_the_first_of_the_two_hours(portal):
    arrive(portal, datetime(2026, 10, 25, 2, 15), answered_after=10)
    arrive(portal, datetime(2026, 10, 25, 2, 15, fold=1), gave_up_after=600)

    data = day_series.series(portal, None, date(2026, 11, 1), AFTERWARDS)

    assert len(data["quarters"]) == 96
    assert entry(data, "02:15")["last_week"]["offered"] == 1
    assert entry(data, "02:15")["last_week"]["missed"] == 0
    # The day's own row still has both chats.
    assert data["totals"]["last_week"]["offered"] == 2


# --- one indexed query per day ------------------------------------------------------------


def test_it_reads_the_quarters_with_one_indexed_query_per_day(portal):
    arrive(portal, datetime(2026, 11, 19, 9, 5), answered_after=20, department="d1")
    arrive(portal, datetime(2026, 11, 19, 9, 6), answered_after=20, department="d2")
    with CaptureQueriesContext(connection) as queries:
        day_series.series(portal, None, date(2026, 11, 19), AFTERWARDS)
    quarter_reads = [
        q["sql"]
        for q in queries.captured_queries
        if "dashboard_servicetally" in q["sql"] and "'quarter'" in q["sql"]
    ]
    assert len(quarter_reads) == 2  # the day and the same weekday last week
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + quarter_reads[0])
            plan = " ".join(str(row) for row in cursor.fetchall())
        assert "tally_portal_span" in plan or "unique_service_tally" in plan, plan


# --- the definitions on hover ------------------------------------------------------------------


def test_each_figure_is_explained_in_the_words_of_the_one_definition():
    said = day_series.definitions_in_words()
    doc = " ".join(definitions.__doc__.replace("**", "").replace("``", "").split())
    for name in ("offered", "answered", "missed", "abandoned", "service_level"):
        assert said[name] in doc, name
    assert "abandoned if it ended before T" in said["abandoned"]
    assert said["service_level"].startswith("Service level against T: chats answered within T")


# --- the page and its JSON -------------------------------------------------------------------


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_someone_who_may_not_see_the_portal_gets_a_404_on_the_page_and_the_json(portal):
    stranger = signed_in(outsider(portal))
    for path in ("/day/", "/day/series.json"):
        assert stranger.get(path, {"portal": str(portal.pk)}).status_code == 404
        assert stranger.get(path, {"portal": "not-a-uuid"}).status_code == 404
    # Their own portal is what they get without asking.
    assert stranger.get("/day/series.json").json()["portal"] != str(portal.pk)


def test_nobody_signed_out_gets_the_page_or_the_json(portal):
    for path in ("/day/", "/day/series.json"):
        response = Client().get(path, {"portal": str(portal.pk)})
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_a_viewer_of_the_portal_sees_it(portal):
    arrive(portal, datetime(2026, 11, 19, 9, 5), answered_after=20)
    viewer = signed_in(make_viewer("vera", portal))
    response = viewer.get("/day/", {"portal": str(portal.pk), "day": "2026-11-19"})
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count('class="day-plot"') == 5
    assert 'data-total="offered"' in page
    data = viewer.get("/day/series.json", {"portal": str(portal.pk), "day": "2026-11-19"}).json()
    assert data["totals"]["figures"]["offered"] == 1 and data["has_figures"] is True


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("9999-12-31", WORDS_OUT_OF_RANGE),
        ("0001-01-01", WORDS_OUT_OF_RANGE),
        ("1999-12-31", WORDS_OUT_OF_RANGE),
        ("2101-01-01", WORDS_OUT_OF_RANGE),
        ("yesterday", "Not a day (like 2026-03-14)."),
        ("2026-02-30", "Not a day (like 2026-03-14)."),
    ],
)
def test_a_bad_day_is_refused_in_words_on_the_page_and_in_the_json(portal, typed, words):
    admin = signed_in(make_admin("ada"))
    page = admin.get("/day/", {"portal": str(portal.pk), "day": typed})
    assert page.status_code == 200
    assert f'<span class="error-text">{words}</span>' in page.content.decode()
    assert 'class="day-plot"' not in page.content.decode()
    answer = admin.get("/day/series.json", {"portal": str(portal.pk), "day": typed})
    assert answer.status_code == 400
    assert answer.json()["error"] == words


@pytest.mark.parametrize("typed", ["2000-01-01", "2100-12-31"])
def test_the_first_and_last_days_accepted_are_shown(portal, typed):
    admin = signed_in(make_admin("ada"))
    answer = admin.get("/day/series.json", {"portal": str(portal.pk), "day": typed})
    assert answer.status_code == 200 and answer.json()["day"] == typed


def test_a_department_the_portal_does_not_have_is_refused_in_words(portal):
    supervisor = signed_in(make_supervisor("sam", portal))
    arrive(portal, datetime(2026, 11, 19, 9, 5), answered_after=20, department="d1")
    ok = supervisor.get("/day/series.json", {"portal": str(portal.pk), "department": "d1"})
    assert ok.status_code == 200 and ok.json()["department"] == "d1"
    refused = supervisor.get("/day/series.json", {"portal": str(portal.pk), "department": "zz"})
    assert refused.status_code == 400
    assert refused.json()["error"] == "This portal has no such department."


def test_without_a_day_it_is_today_on_the_portals_clock(portal):
    ServiceSettings.objects.filter(portal=portal).update(time_zone="Pacific/Kiritimati")
    admin = signed_in(make_admin("ada"))
    before = timezone.now().astimezone(ZoneInfo("Pacific/Kiritimati")).date()
    data = admin.get("/day/series.json", {"portal": str(portal.pk)}).json()
    after = timezone.now().astimezone(ZoneInfo("Pacific/Kiritimati")).date()
    assert data["day"] in (before.isoformat(), after.isoformat())
    assert data["is_today"] is True and data["zone"] == "Pacific/Kiritimati"


def test_an_empty_day_says_so_in_words(portal):
    admin = signed_in(make_admin("ada"))
    page = admin.get("/day/", {"portal": str(portal.pk), "day": "2026-11-19"}).content.decode()
    assert "No chat arrived on Thursday 19 November, nor on the Thursday before." in page
    assert re.search(r'<div class="day-body" data-day-body hidden>', page)


def test_the_page_embeds_its_series_in_a_script_that_carries_the_nonce(portal):
    arrive(portal, datetime(2026, 11, 19, 9, 5), answered_after=20)
    response = signed_in(make_admin("ada")).get(
        "/day/", {"portal": str(portal.pk), "day": "2026-11-19"}
    )
    page = response.content.decode()
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", page)
    assert inline and all(f'nonce="{nonce}"' in attributes for attributes in inline)
    embedded = re.search(r'<script id="day-series"[^>]*>(.*?)</script>', page, re.S).group(1)
    assert json.loads(embedded)["totals"]["figures"]["offered"] == 1
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers


def test_embedded_json_cannot_end_its_script_element():
    text = embedded_json({"name": "</script><script>alert(1)</script>&"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"name": "</script><script>alert(1)</script>&"}


def test_the_navigation_links_to_the_page(portal):
    page = signed_in(make_admin("ada")).get("/audit/").content.decode()
    assert '<a href="/day/">Through the day</a>' in page


def test_tallies_made_by_counting_are_what_the_series_reads(portal):
    """A guard on the test's own helper: the quarter rows exist and hold the chats."""
    arrive(portal, datetime(2026, 11, 19, 9, 5), answered_after=20)
    rows = ServiceTally.objects.filter(portal=portal, span="quarter")
    assert rows.count() == 1 and Tally.of(rows.get()).offered == 1


def test_someone_with_no_portal_is_told_so_in_words(portal):
    lonely = signed_in(make_viewer("lone"))
    page = lonely.get("/day/")
    assert page.status_code == 200
    assert "You have no portal assigned yet." in page.content.decode()
    assert lonely.get("/day/series.json").status_code == 404


def test_a_department_of_another_portal_on_the_page_shows_the_whole_portal_and_says_why(portal):
    # The form keeps the department when the portal is changed.
    arrive(portal, datetime(2026, 11, 19, 9, 5), answered_after=20, department="d1")
    admin = signed_in(make_admin("ada"))
    page = admin.get(
        "/day/", {"portal": str(portal.pk), "department": "zz", "day": "2026-11-19"}
    ).content.decode()
    assert "This portal has no such department. Every department is shown." in page
    assert page.count('class="day-plot"') == 5
    assert "every department" in page
