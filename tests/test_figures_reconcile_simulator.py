"""Today's figures after a gap, against the simulator on a real port: chats end in SalesIQ
while the dashboard hears nothing, the worker reads them back, and the tallies then say what
SalesIQ says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from dashboard import jobs
from dashboard.figures import reconcile
from dashboard.figures.definitions import Tally, contribution, day_start
from dashboard.models import (
    Chat,
    OperatorTally,
    PortalSync,
    ServiceSettings,
    ServiceTally,
    TallySpan,
)
from dashboard.polling.runner import Worker
from dashboard.state import apply
from siq_integration import budget
from siq_integration.models import CallWindow
from tests.support.simulator import last_seq, oauth_connect, synced
from tests.support.waits import wait_for
from tests.support.zones import far_from_midnight

pytestmark = pytest.mark.django_db(transaction=True)

# What a chat adds that SalesIQ's listing can tell (first responses come from transcripts).
COMPARED = (
    "offered",
    "answered",
    "answered_untimed",
    "answer_waits",
    "unanswered_waits",
    "handled",
    "rated",
    "rating_sum",
    "rated_good",
)


def from_ms(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC) if value else None


def what_salesiq_says(simulator, portal, zone: ZoneInfo) -> dict[str, Tally]:
    """Today's tallies per department, computed from the simulator's own conversations."""
    today = day_start(timezone.now(), zone)
    tallies: dict[str, Tally] = {}
    for conv in simulator.state(portal.screen_name)["portals"][0]["conversations"]:
        started = from_ms(conv["start_time"])
        if started < today:
            continue
        picked = from_ms(conv["attended_time"])
        chat = SimpleNamespace(
            status={"closed": "ended"}.get(conv["status"], conv["status"]),
            started_at=started,
            attended_at=picked,
            ended_at=from_ms(conv["end_time"]),
            first_response_at=None,
            rating=conv["rating"],
            operator_id=conv["attender_id"] or "",
            department_id=conv["department_id"],
            served_department_id=conv["department_id"] if picked else "",
        )
        tallies.setdefault(conv["department_id"], Tally()).add(contribution(chat))
    return tallies


def stored(portal, zone: ZoneInfo) -> dict[str, ServiceTally]:
    apply.count_pending(portal.pk)  # as the worker's queues job does within a second
    today = day_start(timezone.now(), zone)
    return {
        row.department_id: row
        for row in ServiceTally.objects.filter(portal=portal, span=TallySpan.DAY, start=today)
        if row.offered
    }


def assert_same(truth: dict[str, Tally], rows: dict[str, ServiceTally]) -> None:
    assert set(rows) == set(truth)
    for department, expected in truth.items():
        row = rows[department]
        for name in COMPARED:
            assert getattr(row, name) == getattr(expected, name), (department, name)
        assert row.handle_seconds == pytest.approx(expected.handle_seconds, abs=0.01)


def every_tally(portal) -> list[dict]:
    apply.count_pending(portal.pk)
    rows = [model_to_dict(row) for row in ServiceTally.objects.filter(portal=portal)]
    rows += [model_to_dict(row) for row in OperatorTally.objects.filter(portal=portal)]
    return sorted(rows, key=repr)


def listings(simulator, portal, since: int) -> list[dict]:
    return [
        call["query"]
        for call in simulator.calls(since)
        if call.get("portal") == portal.screen_name
        and call["method"] == "GET"
        and call["path"].endswith(("/conversations", "/chats"))
    ]


def in_a_zone_far_from_midnight(portal) -> ZoneInfo:
    """Also makes the portal's sync row, as a worker holding the portal has."""
    PortalSync.objects.get_or_create(portal=portal)
    name = far_from_midnight(timezone.now())
    ServiceSettings.objects.update_or_create(portal=portal, defaults={"time_zone": name})
    return ZoneInfo(name)


def nothing_heard_since(portal, minutes: int) -> None:
    """The dashboard went down ``minutes`` ago: its last poll was then."""
    then = timezone.now() - timedelta(minutes=minutes)
    PortalSync.objects.filter(portal=portal).update(
        operators_polled_at=then, chats_polled_at=then, departments_polled_at=then
    )


def test_chats_that_ended_while_the_dashboard_was_down_are_counted_once_it_is_back(
    simulator, connected_portal
):
    portal = connected_portal(open_chats=0, operators=4)
    assert not portal.webhook_id  # SalesIQ delivers nothing here: only polls are heard
    zone = in_a_zone_far_from_midnight(portal)
    screen = portal.screen_name
    before = [simulator.create_conversation(screen, waiting_seconds=s)["id"] for s in (30, 5)]
    simulator.pickup(before[0])
    synced(portal)  # the dashboard saw one chat connected and one waiting, then went down
    nothing_heard_since(portal, 10)

    # While it was down: both end, others come and go, and two are still open.
    simulator.end(before[0])
    simulator.miss(before[1])
    answered = simulator.create_conversation(screen, waiting_seconds=90)["id"]
    simulator.pickup(answered)
    simulator.end(answered)
    simulator.rate(answered, 5)
    missed = simulator.create_conversation(screen, waiting_seconds=200)["id"]
    simulator.miss(missed)
    simulator.pickup(simulator.create_conversation(screen, waiting_seconds=20)["id"])
    simulator.create_conversation(screen)
    start = last_seq(simulator)

    worker = Worker(holder="reconcile-test:1")
    worker.run_once()  # takes the lease: the gap is noted, the job and the polls run
    job = worker.jobs["reconcile"].run
    job.running.result(timeout=30)

    truth = what_salesiq_says(simulator, portal, zone)
    assert sum(t.offered for t in truth.values()) == 6
    assert sum(t.answered for t in truth.values()) == 3
    assert sum(sum(t.unanswered_waits.values()) for t in truth.values()) == 2
    assert_same(truth, stored(portal, zone))
    statuses = {"status": "closed"}, {"status": "missed"}
    read_back = [q for q in listings(simulator, portal, start) if q.get("status") != "open"]
    assert [{"status": q["status"]} for q in read_back] == list(statuses)
    sync = PortalSync.objects.get(portal=portal)
    assert (sync.figures_gap_from, sync.figures_gap_until) == (None, None)
    assert sync.figures_reconciled_at is not None
    assert reconcile.incomplete(portal, timezone.now()) is None
    # Nothing the dashboard saw open is left open by a guess: SalesIQ said how each ended.
    assert set(
        Chat.objects.filter(portal=portal, remote_id__in=before).values_list("status", flat=True)
    ) == {"ended", "missed"}

    # Read back again: the same chats, counted once still.
    tallies = every_tally(portal)
    reconcile.record_gap(
        portal.pk, since=timezone.now() - timedelta(minutes=10), until=timezone.now()
    )
    again = last_seq(simulator)
    job.round([portal.pk])
    assert len(listings(simulator, portal, again)) == 2
    assert PortalSync.objects.get(portal=portal).figures_gap_from is None
    assert every_tally(portal) == tallies


def test_with_the_budget_spent_it_waits_says_so_and_reads_back_when_it_returns(
    simulator, connected_portal
):
    # 20 calls a minute: 14 for the background, of which reading back may take 2.
    portal = connected_portal(open_chats=0, operators=3, calls_per_minute=20)
    zone = in_a_zone_far_from_midnight(portal)
    ended = simulator.create_conversation(portal.screen_name, waiting_seconds=40)["id"]
    simulator.pickup(ended)
    simulator.end(ended)
    now = timezone.now()
    reconcile.record_gap(portal.pk, since=now - timedelta(minutes=10), until=now)
    used = budget.usage(portal).minute_used
    budget.charge(portal, calls=14 - used, priority=budget.Priority.BACKGROUND)

    job = jobs.ReconcileFigures()
    start = last_seq(simulator)
    job.round([portal.pk])
    assert listings(simulator, portal, start) == []  # refused here, before SalesIQ
    said = reconcile.incomplete(portal, timezone.now())
    assert said.startswith("Today's figures may be missing chats from ")
    assert ": reading them back from SalesIQ once the call budget allows, at " in said
    assert stored(portal, zone) == {}

    # A minute later the budget is back.
    CallWindow.objects.filter(portal=portal, span=CallWindow.Span.MINUTE).delete()
    PortalSync.objects.filter(portal=portal).update(figures_retry_at=timezone.now())
    job.round([portal.pk])
    assert len(listings(simulator, portal, start)) == 2
    assert reconcile.incomplete(portal, timezone.now()) is None
    assert_same(what_salesiq_says(simulator, portal, zone), stored(portal, zone))


def test_a_reference_portal_reads_todays_ended_and_missed_chats_back(simulator, connected_portal):
    portal = connected_portal(dialect="reference", open_chats=0, operators=3)
    zone = in_a_zone_far_from_midnight(portal)
    screen = portal.screen_name
    gone = [simulator.create_conversation(screen, waiting_seconds=s)["id"] for s in (50, 70, 10)]
    simulator.pickup(gone[0])
    simulator.end(gone[0])
    simulator.miss(gone[1])
    simulator.end(gone[2])
    now = timezone.now()
    reconcile.record_gap(portal.pk, since=now - timedelta(minutes=10), until=now)

    start = last_seq(simulator)
    jobs.ReconcileFigures().round([portal.pk])
    queries = listings(simulator, portal, start)
    today = day_start(now, zone).isoformat().replace("+00:00", "Z")
    assert [(q["status"], q["from_date"]) for q in queries] == [
        ("ended", today),
        ("missed", today),
    ]
    chats = dict(Chat.objects.filter(portal=portal).values_list("remote_id", "status"))
    assert chats == {gone[0]: "ended", gone[1]: "missed", gone[2]: "ended"}
    assert sum(row.offered for row in stored(portal, zone).values()) == 3
    assert PortalSync.objects.get(portal=portal).figures_gap_from is None


def test_a_served_dashboard_back_after_a_while_reads_the_day_back_by_itself(
    simulator, sim_portal, server
):
    # A portal the dashboard last heard of ten minutes ago, before it went down.
    portal = sim_portal(open_chats=0, operators=3)
    zone = in_a_zone_far_from_midnight(portal)
    nothing_heard_since(portal, 10)
    screen = portal.screen_name
    for waited in (15, 45):
        chat = simulator.create_conversation(screen, waiting_seconds=waited)["id"]
        simulator.pickup(chat)
        simulator.end(chat)
    simulator.miss(simulator.create_conversation(screen, waiting_seconds=120)["id"])

    oauth_connect(simulator, portal)  # `serve`'s worker takes it on its next tick
    wait_for(
        lambda: PortalSync.objects.get(portal=portal).figures_reconciled_at,
        timeout=30,
        what="reading today's ended chats back",
    )
    assert PortalSync.objects.get(portal=portal).figures_gap_from is None
    assert_same(what_salesiq_says(simulator, portal, zone), stored(portal, zone))
