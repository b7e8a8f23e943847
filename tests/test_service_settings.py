"""A portal's service levels (dashboard/views/service.py): the form (time zone, target,
department targets and business hours), who may use it, and what saving does: a new time
zone rebuilds the last days (dashboard/figures/rebuild.py), a department's target reaches
its queue row on the live pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dashboard.figures import counting, queues, rebuild
from dashboard.figures.definitions import Tally, day_start
from dashboard.models import (
    Chat,
    Department,
    DepartmentService,
    OperatorTally,
    ServiceSettings,
    ServiceTally,
    TallySpan,
)
from tests.factories import make_admin, make_portal, make_supervisor, make_viewer, outsider
from tests.support.figures import arrive

pytestmark = pytest.mark.django_db


@pytest.fixture
def portal():
    portal = make_portal("Zylker")
    now = timezone.now()
    for remote_id, name in (("d1", "Sales"), ("d2", "Billing")):
        Department.objects.create(portal=portal, remote_id=remote_id, name=name, seen_at=now)
    return portal


@pytest.fixture
def admin():
    return make_admin("ada")


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(portal) -> str:
    return reverse("portal_service", args=[portal.pk])


def department_prefix(portal, remote_id: str) -> str:
    return f"department-{Department.objects.get(portal=portal, remote_id=remote_id).pk}"


def form_data(portal, **changes) -> dict[str, str]:
    """What the page posts when nothing is changed, with ``changes`` (department fields as
    ``d1__opening="hours"``)."""
    service = counting.settings_of(portal.pk)
    data = {
        "time_zone": service.time_zone,
        "target_seconds": str(service.target_seconds),
        "target_share": str(service.target_share),
    }
    for department in Department.objects.filter(portal=portal):
        data[f"department-{department.pk}-opening"] = "always"
    for name, value in changes.items():
        if "__" in name:
            remote_id, field = name.split("__")
            name = f"{department_prefix(portal, remote_id)}-{field}"
        data[name] = value
    return data


def today_of(portal, department: str):
    rows = {row.department_id: row for row in queues.queue_rows([portal])}
    return rows[department].today


# --- the form ---------------------------------------------------------------------------


def test_it_saves_the_zone_the_target_and_a_departments_own_target_and_hours(portal, admin):
    client = signed_in(admin)
    answer = client.post(
        url(portal),
        form_data(
            portal,
            time_zone="Europe/Berlin",
            target_seconds="45",
            target_share="90",
            d1__target_seconds="20",
            d1__opening="hours",
            d1__opens_0="09:00",
            d1__closes_0="17:30",
            d1__opens_5="10:00",
            d1__closes_5="14:00",
        ),
    )
    assert answer.status_code == 302 and answer["Location"] == url(portal)
    service = ServiceSettings.objects.get(portal=portal)
    assert (service.time_zone, service.target_seconds, service.target_share) == (
        "Europe/Berlin",
        45,
        90,
    )
    sales = DepartmentService.objects.get(portal=portal, department_id="d1")
    assert (sales.target_seconds, sales.target_share) == (20, None)
    assert sales.hours == {"0": ["09:00", "17:30"], "5": ["10:00", "14:00"]}
    # Billing keeps the portal's target and is always open: nothing stored for it.
    assert not DepartmentService.objects.filter(portal=portal, department_id="d2").exists()

    page = client.get(url(portal)).content.decode()
    assert "Saved the service levels of Zylker." in page
    assert 'value="Europe/Berlin"' in page and 'value="17:30"' in page
    assert "own target: 90 % within 20 s; business hours" in page


def test_it_takes_a_zone_typed_in_other_case_as_the_database_spells_it(portal, admin):
    answer = signed_in(admin).post(url(portal), form_data(portal, time_zone="america/new york"))
    assert answer.status_code == 302
    assert ServiceSettings.objects.get(portal=portal).time_zone == "America/New_York"


def test_an_unknown_zone_is_refused_in_words_and_nothing_is_saved(portal, admin):
    answer = signed_in(admin).post(
        url(portal), form_data(portal, time_zone="Europe/Pariss", target_seconds="30")
    )
    assert answer.status_code == 200
    page = answer.content.decode()
    assert "“Europe/Pariss” is not a time zone this server knows. Did you mean Europe/Paris?" in (
        page
    )
    assert "Nothing was saved." in page
    service = ServiceSettings.objects.get(portal=portal)
    assert (service.time_zone, service.target_seconds) == ("UTC", 60)
    # The page says what is stored, not what was typed.
    assert '60 s, with "today" running from midnight to midnight in UTC' in page


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        (
            {"d1__opens_1": "17:00", "d1__closes_1": "09:00"},
            "Tuesday: it closes at 09:00, which is not after it opens (17:00).",
        ),
        (
            {"d1__opens_2": "09:00", "d1__closes_2": "09:00"},
            "Wednesday: it closes at 09:00, which is not after it opens (09:00).",
        ),
        (
            {"d1__opens_3": "09:00"},
            "Thursday: give both the opening and the closing time, or neither",
        ),
        ({"d1__closes_4": "9 o'clock"}, "Give a time of day such as 09:00."),
        ({}, "Give the hours of at least one day, or choose Always (no business hours)."),
    ],
)
def test_bad_business_hours_are_refused_in_words(portal, admin, changes, said):
    answer = signed_in(admin).post(url(portal), form_data(portal, d1__opening="hours", **changes))
    assert answer.status_code == 200
    page = answer.content.decode()
    assert said in page
    assert not DepartmentService.objects.filter(portal=portal).exists()
    # The department with the mistake is shown open, marked.
    marked = '<details class="service-department has-errors" id="department-d1" open>'
    assert marked in page


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("target_seconds", "0", "Give at least 1 second."),
        ("target_seconds", "3601", "Give at most 3600 seconds (an hour)."),
        ("target_share", "101", "Give a share from 1 to 100 %."),
        ("d2__target_share", "0", "Give a share from 1 to 100 %."),
        ("d2__target_seconds", "soon", "Give a whole number of seconds."),
    ],
)
def test_targets_out_of_range_are_refused_in_words(portal, admin, field, value, said):
    answer = signed_in(admin).post(url(portal), form_data(portal, **{field: value}))
    assert answer.status_code == 200 and said in answer.content.decode()
    assert ServiceSettings.objects.get(portal=portal).target_seconds == 60
    assert not DepartmentService.objects.filter(portal=portal).exists()


def test_clearing_a_departments_settings_forgets_them(portal, admin):
    DepartmentService.objects.create(
        portal=portal, department_id="d1", target_seconds=20, hours={"0": ["09:00", "17:00"]}
    )
    form = signed_in(admin).get(url(portal)).content.decode()
    assert 'value="hours"' in form and "checked" in form
    answer = signed_in(admin).post(url(portal), form_data(portal))
    assert answer.status_code == 302
    assert not DepartmentService.objects.filter(portal=portal).exists()


def test_a_department_that_arrived_after_the_page_loaded_is_left_as_it_is(portal, admin):
    posted = form_data(portal, target_seconds="50")
    Department.objects.create(portal=portal, remote_id="d3", name="Support", seen_at=timezone.now())
    DepartmentService.objects.create(
        portal=portal, department_id="d3", hours={"6": ["10:00", "12:00"]}
    )
    answer = signed_in(admin).post(url(portal), posted)
    assert answer.status_code == 302
    assert ServiceSettings.objects.get(portal=portal).target_seconds == 50
    kept = DepartmentService.objects.get(portal=portal, department_id="d3")
    assert kept.hours == {"6": ["10:00", "12:00"]}


# --- who may ----------------------------------------------------------------------------


def test_only_admins_see_and_save_the_service_levels(portal, admin):
    detail = reverse("portal_detail", args=[portal.pk])
    assert url(portal) in signed_in(admin).get(detail).content.decode()

    supervisor = make_supervisor("sam", portal)
    assert url(portal) not in signed_in(supervisor).get(detail).content.decode()
    for user in (supervisor, make_viewer("vic", portal), outsider(portal)):
        client = signed_in(user)
        assert client.get(url(portal)).status_code == 403
        refused = client.post(url(portal), form_data(portal, target_seconds="5"))
        assert refused.status_code == 403
    assert ServiceSettings.objects.get(portal=portal).target_seconds == 60

    anonymous = Client().get(url(portal))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")


def test_the_form_needs_its_csrf_token(portal, admin):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    assert client.post(url(portal), form_data(portal, target_seconds="5")).status_code == 403
    assert ServiceSettings.objects.get(portal=portal).target_seconds == 60


# --- what saving does -------------------------------------------------------------------


def test_a_new_zone_moves_todays_figures_to_the_new_midnight(portal, admin):
    """Chats between the old and the new midnight change day; today's figures follow."""
    now = timezone.now()
    new_zone = "Asia/Tokyo" if now.hour >= 12 else "America/Los_Angeles"
    old_start = day_start(now, ZoneInfo("UTC"))
    new_start = day_start(now, ZoneInfo(new_zone))
    early, late = sorted((old_start, new_start))
    between = early + (late - early) / 2  # today in one zone, yesterday in the other
    since_both = late + (now - late) / 2  # today in both
    arrive(portal, "between", "d1", between, picked_after=5)
    arrive(portal, "both", "d1", since_both - timedelta(seconds=5), picked_after=5)
    arrive(portal, "yesterday", "d1", early - timedelta(hours=2), missed_after=300)
    before = today_of(portal, "d1")
    assert before.offered == (2 if old_start < new_start else 1)

    client = signed_in(admin)
    answer = client.post(url(portal), form_data(portal, time_zone=new_zone))
    assert answer.status_code == 302
    after = today_of(portal, "d1")
    assert after.offered == (1 if old_start < new_start else 2)
    assert after.answered == after.offered and after.missed == 0
    chat = Chat.objects.get(remote_id="between")
    assert datetime.fromisoformat(chat.counted["day"]) == day_start(between, ZoneInfo(new_zone))
    said = client.get(url(portal)).content.decode()
    assert f"Its days now start at midnight in {new_zone}: the last 8 days were counted" in said


def test_saving_publishes_each_departments_queue_row_with_its_new_target(
    portal, admin, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[str] = []
    monkeypatch.setattr(
        "dashboard.realtime.publish.send", lambda portal_id, html: sent.append(html)
    )
    now = timezone.now()
    arrive(portal, "s1", "d1", now - timedelta(minutes=20), picked_after=30)
    arrive(portal, "b1", "d2", now - timedelta(minutes=20), picked_after=30)
    assert today_of(portal, "d1").service_level == 100.0  # 30 s within the portal's 60 s
    sent.clear()

    with django_capture_on_commit_callbacks(execute=True):
        answer = signed_in(admin).post(url(portal), form_data(portal, d1__target_seconds="20"))
    assert answer.status_code == 302
    assert today_of(portal, "d1").service_level == 0.0
    assert today_of(portal, "d2").service_level == 100.0
    assert len(sent) == 1
    rows = dict(re.findall(r'data-department="(d\d)"[^>]*?data-target="(\d+)"', sent[0], re.S))
    assert rows == {"d1": "20", "d2": "60"}
    sales = re.search(r'data-department="d1".*?data-level-today="([^"]*)"', sent[0], re.S)
    assert sales and float(sales.group(1)) == 0.0


# --- the rebuild itself -----------------------------------------------------------------

_FIELDS = Tally.names()


def _rows(model, portal, **filters) -> dict[tuple, tuple]:
    """Each row's counts (floats rounded: sums in another order differ in the last bit)."""
    key = "department_id" if model is ServiceTally else "operator_id"
    found = {}
    for row in model.objects.filter(portal=portal, **filters):
        values = tuple(
            round(getattr(row, name), 6)
            if isinstance(getattr(row, name), float)
            else getattr(row, name)
            for name in _FIELDS
        )
        found[(getattr(row, key), row.start)] = values
    return found


def _chats_over_ten_days(portal, end: datetime) -> int:
    """A chat every 5 hours 17 minutes for ten days before ``end``: two departments, two
    operators, answered at several speeds or missed."""
    made = 0
    moment = end - timedelta(days=10)
    while moment < end - timedelta(minutes=10):
        made += 1
        kind = made % 4
        arrive(
            portal,
            f"c{made}",
            "d1" if made % 3 else "d2",
            moment,
            picked_after=None if kind == 0 else 10 * kind,
            missed_after=200 if kind == 0 else None,
            operator="op1" if made % 2 else "op2",
        )
        moment += timedelta(hours=5, minutes=17)
    return made


def _count_again_from_nothing(portal, zone: str) -> None:
    ServiceSettings.objects.filter(portal=portal).update(time_zone=zone)
    counting.forget_zone(portal.pk)  # as saving the settings does
    ServiceTally.objects.filter(portal=portal).delete()
    OperatorTally.objects.filter(portal=portal).delete()
    Chat.objects.filter(portal=portal).update(counted={})
    counting.count_chats(portal.pk, Chat.objects.filter(portal=portal).values_list("pk", flat=True))


@pytest.mark.parametrize(
    ("old", "new", "now"),
    [
        # A week with Europe's change to summer time (29 March 2026) in it.
        ("UTC", "Europe/Berlin", datetime(2026, 3, 31, 10, 0, tzinfo=UTC)),
        # From the first to the last zone of the world, and half-hour offsets.
        ("Pacific/Kiritimati", "Pacific/Pago_Pago", datetime(2026, 11, 20, 3, 0, tzinfo=UTC)),
        ("America/New_York", "Asia/Kolkata", datetime(2026, 11, 4, 22, 30, tzinfo=UTC)),
    ],
)
def test_the_rebuilt_days_are_the_days_counted_from_nothing_in_the_new_zone(portal, old, new, now):
    ServiceSettings.objects.create(portal=portal, time_zone=old)
    made = _chats_over_ten_days(portal, now)
    quarters = _rows(ServiceTally, portal, span=TallySpan.QUARTER)

    done = rebuild.rebuild_days(
        portal_id=portal.pk, old_zone=ZoneInfo(old), new_zone=ZoneInfo(new), now=now
    )
    first = done.first_day
    local_first = first.astimezone(ZoneInfo(new))
    assert (local_first.hour, local_first.minute) == (0, 0)
    assert (now.astimezone(ZoneInfo(new)).date() - local_first.date()).days == 7
    days = _rows(ServiceTally, portal, span=TallySpan.DAY)
    operators = _rows(OperatorTally, portal)
    # Every chat is still counted once, on one day, for its department and its operator.
    assert sum(values[0] for values in days.values()) == made
    answered = Chat.objects.filter(portal=portal).exclude(operator_id="").count()
    assert sum(values[0] for values in operators.values()) == answered
    assert _rows(ServiceTally, portal, span=TallySpan.QUARTER) == quarters
    for chat in Chat.objects.filter(portal=portal, started_at__gte=first):
        counted_day = datetime.fromisoformat(chat.counted["day"])
        assert counted_day == day_start(chat.started_at, ZoneInfo(new))
    assert done.chats_moved > 0

    _count_again_from_nothing(portal, new)
    fresh_days = _rows(ServiceTally, portal, span=TallySpan.DAY)
    fresh_operators = _rows(OperatorTally, portal)
    assert {k: v for k, v in days.items() if k[1] >= first} == {
        k: v for k, v in fresh_days.items() if k[1] >= first
    }
    assert {k: v for k, v in operators.items() if k[1] >= first} == {
        k: v for k, v in fresh_operators.items() if k[1] >= first
    }
    # Before the window the days stay as counted in the old zone; the last of them keeps
    # only the chats that arrived before the window.
    kept = {k: v for k, v in days.items() if k[1] < first}
    boundary = max(k[1] for k in kept)
    before_window = [
        chat.started_at
        for chat in Chat.objects.filter(portal=portal, started_at__lt=first)
        if day_start(chat.started_at, ZoneInfo(old)) == boundary
    ]
    assert sum(v[0] for k, v in kept.items() if k[1] == boundary) == len(before_window)
    _count_again_from_nothing(portal, old)
    old_days = _rows(ServiceTally, portal, span=TallySpan.DAY)
    assert {k: v for k, v in kept.items() if k[1] < boundary} == {
        k: v for k, v in old_days.items() if k[1] < boundary
    }


def test_a_rebuild_in_the_same_zone_changes_nothing(portal):
    now = timezone.now()
    ServiceSettings.objects.create(portal=portal, time_zone="Europe/Berlin")
    _chats_over_ten_days(portal, now)
    days, operators = _rows(ServiceTally, portal), _rows(OperatorTally, portal)
    done = rebuild.rebuild_days(
        portal_id=portal.pk,
        old_zone=ZoneInfo("Europe/Berlin"),
        new_zone=ZoneInfo("Europe/Berlin"),
        now=now,
    )
    assert done.chats_moved == 0
    assert _rows(ServiceTally, portal) == days and _rows(OperatorTally, portal) == operators


def test_time_in_each_status_moves_to_the_new_row_of_the_same_date(portal):
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    old, new = ZoneInfo("UTC"), ZoneInfo("America/New_York")
    tuesday = datetime(2026, 11, 17, tzinfo=UTC)  # a UTC midnight in the window
    long_ago = datetime(2026, 11, 1, tzinfo=UTC)  # before it
    for start, seconds in ((tuesday, 3600.0), (long_ago, 60.0)):
        OperatorTally.objects.create(
            portal=portal, operator_id="op1", start=start, status_seconds={"available": seconds}
        )
    rebuild.rebuild_days(portal_id=portal.pk, old_zone=old, new_zone=new, now=now)
    rows = {row.start: row.status_seconds for row in OperatorTally.objects.filter(portal=portal)}
    new_tuesday = datetime(2026, 11, 17, tzinfo=new).astimezone(UTC)
    assert rows == {new_tuesday: {"available": 3600.0}, long_ago: {"available": 60.0}}
