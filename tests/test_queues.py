"""The queues (dashboard/figures/queues.py): one row per department, worst first, with the
service level falling as waits pass the target, published when they do (figures/clock.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from dashboard import jobs
from dashboard.figures import clock, counting, queues
from dashboard.figures.definitions import Tally, contribution, tally_of
from dashboard.models import (
    Chat,
    Department,
    DepartmentService,
    Operator,
    ServiceSettings,
    ServiceTally,
)
from dashboard.realtime import render
from dashboard.state import apply
from dashboard.state.changes import Changes
from tests.factories import make_portal
from tests.support.figures import arrive

pytestmark = pytest.mark.django_db


@pytest.fixture
def portal():
    portal = make_portal("Zylker")
    now = timezone.now()
    for remote_id, name in (("d1", "Sales"), ("d2", "Billing")):
        Department.objects.create(portal=portal, remote_id=remote_id, name=name, seen_at=now)
    return portal


def rows_by_department(portal, **kwargs):
    apply.count_pending(portal.pk)  # as the worker's queues job does within a second
    return {row.department_id: row for row in queues.queue_rows([portal], **kwargs)}


def test_a_department_whose_chat_waits_past_the_target_falls_below_it_and_comes_first(portal):
    arrive(portal, "a1", "d1", 600, picked_after=10, ended_after=100)
    arrive(portal, "b1", "d2", 600, picked_after=10, ended_after=100)
    before = rows_by_department(portal)
    assert before["d2"].today.service_level == 100.0
    arrive(portal, "b2", "d2", 90)  # waiting 90 s against the 60 s default
    rows = queues.queue_rows([portal])
    assert [row.department_id for row in rows] == ["d2", "d1"]
    billing = rows[0]
    assert (billing.waiting, billing.waiting_past_target) == (1, 1)
    assert billing.today.service_level == 50.0 and billing.tone == "bad"
    assert billing.last_hour.service_level == 50.0
    assert rows[0].rank < rows[1].rank


def test_missed_and_abandoned_chats_are_counted_apart(portal):
    arrive(portal, "c1", "d1", 900, ended_after=20)  # left after 20 s: abandoned
    arrive(portal, "c2", "d1", 900, ended_after=200)  # left after 200 s: missed
    arrive(portal, "c3", "d1", 900, picked_after=30, ended_after=300)
    sales = rows_by_department(portal)["d1"]
    assert (sales.today.answered, sales.today.missed, sales.today.abandoned) == (1, 1, 1)
    assert sales.today.service_level == 50.0  # 1 within 60 s of 2 judged


def test_a_department_target_overrides_the_portals(portal):
    ServiceSettings.objects.create(portal=portal, target_seconds=60, target_share=80)
    DepartmentService.objects.create(portal=portal, department_id="d1", target_seconds=20)
    arrive(portal, "c1", "d1", 900, picked_after=30, ended_after=300)
    arrive(portal, "c2", "d2", 900, picked_after=30, ended_after=300)
    rows = rows_by_department(portal)
    assert rows["d1"].today.service_level == 0.0 and rows["d1"].target.seconds == 20
    assert rows["d2"].today.service_level == 100.0


def test_outside_business_hours_a_department_says_closed(portal):
    ServiceSettings.objects.create(portal=portal, time_zone="Europe/Berlin")
    local = timezone.now().astimezone(ZoneInfo("Europe/Berlin"))
    other_day = str((local.weekday() + 1) % 7)
    DepartmentService.objects.create(
        portal=portal, department_id="d1", hours={other_day: ["09:00", "17:00"]}
    )
    rows = rows_by_department(portal)
    assert rows["d1"].open_now is False and rows["d1"].hours == "closed today"
    assert rows["d2"].open_now is True


def test_available_operators_and_free_seats_are_the_departments(portal):
    now = timezone.now()
    Operator.objects.create(
        portal=portal,
        remote_id="op1",
        name="Asha",
        status="available",
        department_ids=["d1"],
        max_chats=3,
        fact_at=now,
        source="poll",
    )
    Operator.objects.create(
        portal=portal,
        remote_id="op2",
        name="Ben",
        status="busy",
        department_ids=["d1", "d2"],
        max_chats=3,
        fact_at=now,
        source="poll",
    )
    arrive(portal, "c1", "d1", 100, picked_after=5)  # with op1
    rows = rows_by_department(portal)
    assert (rows["d1"].available, rows["d1"].free_seats, rows["d1"].serving) == (1, 2, 2)
    assert (rows["d2"].available, rows["d2"].free_seats) == (0, 0)


def test_a_publication_carries_the_changed_departments_row(portal):
    arrive(portal, "c1", "d1", 5)
    html = render.render_changes(Changes(portal.pk, queues={"d1"}))
    assert f'id="queue-{portal.pk}-d1"' in html
    assert f'id="queue-{portal.pk}-d2"' not in html


def test_the_queues_job_publishes_a_wait_crossing_its_target(portal, monkeypatch):
    published: list[Changes] = []
    monkeypatch.setattr(jobs.publish, "changed", published.append)
    job = jobs.Queues()
    arrive(portal, "c1", "d1", 50)  # crosses 60 s ten seconds from now
    now = timezone.now()
    job([portal], now)  # the first look only notes the time
    job([portal], now + timedelta(seconds=5))
    assert published == []
    job([portal], now + timedelta(seconds=12))
    assert [(c.portal_id, c.queues) for c in published] == [(portal.pk, {"d1"})]


def test_a_new_business_day_republishes_every_department(portal):
    crossings = clock.Crossings()
    evening = datetime(2026, 11, 22, 23, 59, 0, tzinfo=UTC)
    assert crossings.due([portal], evening) == {}
    due = crossings.due([portal], evening + timedelta(minutes=2))
    assert due == {portal.pk: {"*"}}


def test_figures_that_may_miss_chats_after_a_gap_say_so_on_the_queues_panel(portal):
    from dashboard.models import PortalSync

    now = timezone.now()
    assert [note.text for note in queues.notes([portal], now)] == [""]
    PortalSync.objects.update_or_create(
        portal=portal,
        defaults={"figures_gap_from": now - timedelta(minutes=20), "figures_gap_until": None},
    )
    (note,) = queues.notes([portal], now)
    assert note.text.startswith("Today's figures may be missing chats since")
    # An event's freshness alone does not render the note again; the reconcile job's word does.
    html = render.render_changes(Changes(portal.pk, meta=True))
    assert f'id="queues-note-{portal.pk}"' not in html
    html = render.render_changes(Changes(portal.pk, meta=True, figures_note=True))
    assert f'id="queues-note-{portal.pk}"' in html and "may be missing chats" in html


def test_the_queues_job_publishes_the_departments_whose_chats_changed_once(portal, monkeypatch):
    published: list[Changes] = []
    monkeypatch.setattr(jobs.publish, "changed", published.append)
    job = jobs.Queues()
    job([portal], timezone.now())  # the first look only notes the time
    # Many events in a second: one publication of the department's row, not one each.
    for n in range(5):
        arrive(portal, f"c{n}", "d2", 5)
    job([portal], timezone.now())
    assert [(c.portal_id, c.queues) for c in published] == [(portal.pk, {"d2"})]
    job([portal], timezone.now())  # nothing changed since
    assert len(published) == 1


def test_the_queues_job_counts_the_chats_applied_since_and_publishes_what_moved(
    portal, monkeypatch
):
    """Counting is off the webhook's path: applying only marks the chat; the worker's job
    counts every marked chat once, however many facts arrived, and publishes the queue rows
    and the operators' rows whose figures moved."""
    published: list[Changes] = []
    monkeypatch.setattr(jobs.publish, "changed", published.append)
    now = timezone.now()
    asha = Operator.objects.create(
        portal=portal, remote_id="op1", name="Asha", status="available",
        department_ids=["d1"], max_chats=3, fact_at=now, source="poll",
    )  # fmt: skip
    job = jobs.Queues()
    job([portal], now)  # the first look only notes the time
    for n in range(3):
        arrive(portal, f"c{n}", "d1", 600, picked_after=10, ended_after=100, counted=False)
    assert not ServiceTally.objects.filter(portal=portal).exists()
    assert Chat.objects.filter(portal=portal, needs_counting=True).count() == 3

    job([portal], now + timedelta(seconds=1))
    day = Tally.of(ServiceTally.objects.get(portal=portal, department_id="d1", span="day"))
    assert (day.offered, day.answered, day.handled) == (3, 3, 3)
    assert not Chat.objects.filter(portal=portal, needs_counting=True).exists()
    # Her figures moved, not her status or load: her row is pushed, nothing else about her.
    assert [(c.queues, c.operators, c.figures) for c in published] == [({"d1"}, set(), {asha.pk})]

    # The same facts again (a poll after the webhooks): marked, counted, nothing added.
    arrive(portal, "c0", "d1", 600, picked_after=10, ended_after=100, counted=False)
    # A worker started afresh (after a restart) counts what the last one left marked.
    arrive(portal, "c3", "d1", 30, counted=False)
    jobs.Queues()([portal], now + timedelta(seconds=2))
    day = Tally.of(ServiceTally.objects.get(portal=portal, department_id="d1", span="day"))
    assert (day.offered, day.answered, day.handled) == (4, 3, 3)


def test_a_portal_whose_counting_fails_leaves_its_chats_marked_and_the_others_counted(
    portal, monkeypatch
):
    other = make_portal("Acme")
    arrive(portal, "c1", "d1", 600, picked_after=10, counted=False)
    arrive(other, "c1", "d1", 600, picked_after=10, counted=False)
    real = apply.count_pending

    def failing_for_zylker(portal_id):
        if portal_id == portal.pk:
            raise RuntimeError("database hiccup")
        return real(portal_id)

    monkeypatch.setattr(jobs.apply, "count_pending", failing_for_zylker)
    jobs.Queues()([portal, other], timezone.now())
    assert Chat.objects.filter(portal=portal, needs_counting=True).count() == 1
    assert not Chat.objects.filter(portal=other, needs_counting=True).exists()
    monkeypatch.setattr(jobs.apply, "count_pending", real)
    jobs.Queues()([portal, other], timezone.now())
    assert not Chat.objects.filter(needs_counting=True).exists()


def test_a_backlog_is_counted_a_few_chats_at_a_time_and_adds_up(portal, monkeypatch):
    """After a gap read back, thousands of chats may be marked: they are counted in several
    transactions, each reading and writing its rows at once, and add up to the same."""
    monkeypatch.setattr(counting, "COUNT_AT_ONCE", 2)
    for n in range(7):
        department = "d1" if n % 2 else "d2"
        # Spread over several quarters of today, some missed.
        if n % 3 == 2:
            arrive(portal, f"c{n}", department, 300 + 600 * n, missed_after=90, counted=False)
        else:
            arrive(portal, f"c{n}", department, 300 + 600 * n, picked_after=5 * n,
                   ended_after=200, counted=False)  # fmt: skip
    departments, _ = apply.count_pending(portal.pk)
    assert departments == {"d1", "d2"}
    assert not Chat.objects.filter(portal=portal, needs_counting=True).exists()
    for department in ("d1", "d2"):
        truth = tally_of(
            filter(
                None,
                (contribution(c) for c in Chat.objects.filter(department_id=department)),
            )
        )
        for span in ("day", "quarter"):
            stored = Tally()
            for row in ServiceTally.objects.filter(department_id=department, span=span):
                stored.merge(Tally.of(row))
            assert stored == truth, (department, span)
