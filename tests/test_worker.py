"""The worker against the simulator on a real port: reconciliation, budget, leases."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard.models import Chat, ChatStatus, Operator, PortalSync, Source
from dashboard.polling.runner import Worker
from dashboard.state import apply
from siq_integration import budget, oauth
from siq_integration.models import Portal
from tests.support.live import make_due
from tests.support.simulator import last_seq, oauth_connect

pytestmark = pytest.mark.django_db


def sim_state(simulator, portal) -> dict:
    return simulator.state(portal.screen_name)["portals"][0]


def api_calls(simulator, portal, since: int = 0) -> list[dict]:
    return [
        call
        for call in simulator.calls(since)
        if call["portal"] == portal.screen_name and "/api/v2/" in call["path"]
    ]


def open_remote_ids(portal) -> set[str]:
    return set(
        Chat.objects.filter(
            portal=portal, status__in=[ChatStatus.WAITING, ChatStatus.CONNECTED]
        ).values_list("remote_id", flat=True)
    )


# --- reconciliation ----------------------------------------------------------------------------


def test_it_fills_an_empty_portal_from_salesiq(simulator, connected_portal):
    portal = connected_portal(open_chats=5, operators=6)
    Worker().run_once()

    state = sim_state(simulator, portal)
    assert open_remote_ids(portal) == set(state["open_conversation_ids"])
    assert Operator.objects.filter(portal=portal).count() == 6
    assert portal.departments.count() == len(state["departments"])
    sync = PortalSync.objects.get(portal=portal)
    assert sync.chats_polled_at and sync.operators_full_at and sync.operators_sync_time
    assert sync.last_poll_error == ""


def test_it_adds_a_chat_salesiq_has_and_the_dashboard_missed(simulator, connected_portal):
    portal = connected_portal(open_chats=2)
    worker = Worker()
    worker.run_once()
    # A visitor arrives and its webhook never comes.
    created = simulator.create_conversation(portal.screen_name, visitor_name="Ünal <b>late</b>")
    assert created["id"] not in open_remote_ids(portal)

    make_due(portal, "chats")
    worker.run_once()

    chat = Chat.objects.get(portal=portal, remote_id=created["id"])
    assert chat.status == ChatStatus.WAITING
    assert chat.visitor_name == "Ünal <b>late</b>"
    assert chat.source == Source.POLL


def test_it_closes_a_ghost_chat_salesiq_no_longer_has_open(simulator, connected_portal):
    portal = connected_portal(open_chats=2)
    worker = Worker()
    worker.run_once()
    ghost = Chat.objects.filter(portal=portal).first()
    # SalesIQ ended it and the webhook was lost; the last fact about it is old.
    simulator.end(ghost.remote_id)
    Chat.objects.filter(pk=ghost.pk).update(fact_at=timezone.now() - apply.GHOST_GRACE * 3)

    make_due(portal, "chats")
    worker.run_once()

    ghost.refresh_from_db()
    assert not ghost.is_open
    assert ghost.inferred_end
    assert open_remote_ids(portal) == set(sim_state(simulator, portal)["open_conversation_ids"])


def test_it_fixes_a_chat_whose_state_disagrees(simulator, connected_portal):
    portal = connected_portal(open_chats=0)
    created = simulator.create_conversation(portal.screen_name)
    worker = Worker()
    worker.run_once()
    assert Chat.objects.get(portal=portal, remote_id=created["id"]).status == ChatStatus.WAITING

    picked = simulator.pickup(created["id"])  # the attender webhook never arrives
    make_due(portal, "chats")
    worker.run_once()

    chat = Chat.objects.get(portal=portal, remote_id=created["id"])
    assert chat.status == ChatStatus.CONNECTED
    assert chat.operator_id == picked["attender_id"]


def test_it_follows_an_operator_presence_change_through_the_incremental_poll(
    simulator, connected_portal
):
    portal = connected_portal(operators=5, open_chats=0)
    worker = Worker()
    worker.run_once()
    sync = PortalSync.objects.get(portal=portal)
    first_sync_time = sync.operators_sync_time
    assert first_sync_time

    remote = sim_state(simulator, portal)["operators"][2]
    target = "busy" if remote["presence"] != "busy" else "available"
    simulator.set_operator_status(remote["id"], target)
    start = last_seq(simulator)
    make_due(portal, "operators")
    worker.run_once()

    operator = Operator.objects.get(portal=portal, remote_id=remote["id"])
    assert operator.status == target
    assert operator.status_since is not None
    (call,) = [c for c in api_calls(simulator, portal, start) if "/operators" in c["path"]]
    assert call["query"].get("last_sync_time") in (first_sync_time, [first_sync_time])
    assert Operator.objects.filter(portal=portal).count() == 5  # a partial list removes nobody


# --- budget --------------------------------------------------------------------------------------


def test_it_never_spends_more_than_the_background_budget(simulator, connected_portal):
    # 4 a minute, 2 of them reserved for supervisors' actions.
    portal = connected_portal(open_chats=3, calls_per_minute=4)
    allowed = 4 - budget.reserved(4)
    start = last_seq(simulator)
    worker = Worker()
    began = timezone.now()
    while timezone.now() - began < timedelta(seconds=3):
        make_due(portal, "departments", "operators", "chats")
        worker.run_once()
        time.sleep(0.2)

    calls = api_calls(simulator, portal, start)
    assert calls, "the worker polled nothing"
    per_minute = Counter(int(call["time"] // 60) for call in calls)
    assert max(per_minute.values()) <= allowed, per_minute
    # Running out of budget is a pause, not an error to show.
    assert PortalSync.objects.get(portal=portal).last_poll_error == ""


# --- failures ---------------------------------------------------------------------------------


def test_it_says_why_state_is_stale_when_salesiq_is_down_and_backs_off(simulator, connected_portal):
    portal = connected_portal(open_chats=1)
    worker = Worker()
    simulator.set_faults(portal=portal.screen_name, outage_seconds=60)
    try:
        worker.run_once()
        error = PortalSync.objects.get(portal=portal).last_poll_error
        assert "SalesIQ" in error and "Traceback" not in error
        start = last_seq(simulator)
        worker.run_once()  # backing off: no call
        assert api_calls(simulator, portal, start) == []
    finally:
        simulator.clear_faults()
    # Whoever polls next successfully (here: a worker taking over) clears the words.
    worker.release_leases()
    Worker().run_once()
    assert PortalSync.objects.get(portal=portal).last_poll_error == ""


def test_it_only_probes_while_salesiq_is_down_and_catches_up_when_it_answers(
    simulator, connected_portal, monkeypatch
):
    from dashboard.polling.poller import UNREACHABLE_PROBE_EVERY
    from dashboard.realtime import publish
    from siq_integration import health

    portal = connected_portal(open_chats=1)
    told = []
    monkeypatch.setattr(publish, "meta", told.append)
    worker = Worker()
    worker.run_once()
    simulator.set_faults(portal=portal.screen_name, outage_seconds=60, outage_mode="drop")
    try:
        make_due(portal, "departments", "operators", "chats")
        before = timezone.now()
        worker.run_once()  # the poll fails (with its own retries)
        assert told == [portal.pk]  # the pages hear at once
        state = worker.poller.states[portal.pk]
        assert state.retry_at - before <= timedelta(seconds=UNREACHABLE_PROBE_EVERY + 1)

        # Each later round while it is down: one call, a one-item page, never a listing.
        for _ in range(3):
            state.retry_at = timezone.now()
            start = last_seq(simulator)
            worker.run_once()
            (call,) = api_calls(simulator, portal, start)
            assert call["path"].endswith("/departments") and call["query"].get("limit") == "1"
            assert state.retry_at - timezone.now() <= timedelta(seconds=UNREACHABLE_PROBE_EVERY)
    finally:
        simulator.clear_faults()

    # SalesIQ answers: healthy at once, the pages told, and the next round catches up.
    told.clear()
    state.retry_at = timezone.now()
    worker.run_once()
    fresh = Portal.objects.get(pk=portal.pk)
    assert health.portal_health(fresh).state == health.State.CONNECTED
    assert told == [portal.pk]
    start = last_seq(simulator)
    worker.run_once()
    paths = {call["path"].rsplit("/", 1)[-1] for call in api_calls(simulator, portal, start)}
    assert {"operators", "conversations"} <= paths


def test_it_stops_polling_a_revoked_portal_until_it_is_reconnected(simulator, connected_portal):
    portal = connected_portal(open_chats=1)
    worker = Worker()
    worker.run_once()
    oauth.revoke_token(portal)  # the grant is gone at Zoho: refreshing cannot help
    make_due(portal, "operators", "chats")
    worker.run_once()
    assert "reconnect" in PortalSync.objects.get(portal=portal).last_poll_error.lower()

    start = last_seq(simulator)
    make_due(portal, "operators", "chats")
    worker.run_once()
    assert simulator.calls(start) == []  # not even a refresh attempt

    oauth_connect(simulator, portal)  # an admin reconnects: new tokens
    make_due(portal, "operators", "chats")
    worker.run_once()
    assert api_calls(simulator, portal, start)
    assert PortalSync.objects.get(portal=portal).last_poll_error == ""


# --- leases -----------------------------------------------------------------------------------


def test_it_lets_only_the_lease_holder_poll(simulator, connected_portal):
    portal = connected_portal(open_chats=2)
    first, second = Worker(), Worker()
    start = last_seq(simulator)
    assert first.run_once()
    polled_by_first = len(api_calls(simulator, portal, start))
    assert polled_by_first > 0

    make_due(portal, "departments", "operators", "chats")
    assert second.run_once() == []
    assert len(api_calls(simulator, portal, start)) == polled_by_first
    sync = PortalSync.objects.get(portal=portal)
    assert sync.lease_holder == first.holder
    assert sync.heartbeat_at is not None and sync.lease_expires_at > timezone.now()


def test_it_takes_over_within_one_lease_when_the_holder_stops_renewing(simulator, connected_portal):
    portal = connected_portal(open_chats=2)
    ttl = timedelta(seconds=1)
    first, second = Worker(lease_ttl=ttl), Worker(lease_ttl=ttl)
    first.tick()
    second.tick()
    assert PortalSync.objects.get(portal=portal).lease_holder == first.holder

    # `first` dies: it never ticks again.
    time.sleep(ttl.total_seconds() + 0.1)
    start = last_seq(simulator)
    assert second.run_once()
    assert PortalSync.objects.get(portal=portal).lease_holder == second.holder
    assert api_calls(simulator, portal, start)

    # Back from the dead, `first` finds the portal taken and polls nothing.
    assert first.run_once() == []
    assert PortalSync.objects.get(portal=portal).lease_holder == second.holder


def test_it_hands_its_leases_over_at_once_when_it_stops(connected_portal):
    portal = connected_portal(open_chats=1)
    first, second = Worker(), Worker()
    first.tick()
    first.release_leases()
    assert first.tick() == []  # a stopped worker takes nothing back
    second.tick()
    assert PortalSync.objects.get(portal=portal).lease_holder == second.holder


@pytest.mark.django_db(transaction=True)
def test_it_keeps_its_heartbeat_and_other_portals_going_during_a_slow_poll(
    simulator, connected_portal
):
    slow = connected_portal(open_chats=400)  # 5 pages of 99
    fast = connected_portal(open_chats=2)
    simulator.set_faults(portal=slow.screen_name, latency_ms=500)
    worker = Worker()
    runner = threading.Thread(target=worker.run, kwargs={"tick_seconds": 0.2}, daemon=True)
    heartbeats: set = set()
    fast_done_first = False
    try:
        runner.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            slow_chats = Chat.objects.filter(portal=slow).count()
            if slow_chats == 400:
                break
            sync = PortalSync.objects.filter(portal=slow, lease_holder=worker.holder).first()
            if sync and sync.heartbeat_at:
                # Beats while the slow portal's listing is under way (no chats applied yet).
                heartbeats.add(sync.heartbeat_at)
            if Chat.objects.filter(portal=fast).exists():
                fast_done_first = True  # the fast portal did not wait for the slow one
            time.sleep(0.1)
        assert Chat.objects.filter(portal=slow).count() == 400
        assert len(heartbeats) >= 5, "the lease was not renewed during the slow poll"
        assert fast_done_first
        assert open_remote_ids(fast) == set(sim_state(simulator, fast)["open_conversation_ids"])
    finally:
        simulator.clear_faults()
        worker.stopping.set()
        runner.join(10)
    assert not runner.is_alive()
    assert set(PortalSync.objects.values_list("lease_holder", flat=True)) == {""}


def test_it_waits_for_budget_mid_listing_and_closes_no_ghost_by_a_listing_that_spanned_minutes(
    simulator, connected_portal, monkeypatch
):
    portal = connected_portal(open_chats=150)  # two pages
    Chat.objects.create(
        portal=portal,
        remote_id="466756000000000001",
        status=ChatStatus.WAITING,
        fact_at=timezone.now() - timedelta(hours=1),
        source=Source.POLL,
    )
    real_spend = budget.spend
    spent = []

    def spend_with_a_minute_running_out(portal, **kwargs):
        spent.append(1)
        if len(spent) == 4:  # departments, operators, the first page, then the minute is over
            raise budget.BudgetExhausted(retry_at=timezone.now() + timedelta(seconds=0.3))
        return real_spend(portal, **kwargs)

    monkeypatch.setattr(budget, "spend", spend_with_a_minute_running_out)
    Worker().run_once()

    assert len(open_remote_ids(portal)) == 151  # every chat listed, after the wait
    assert Chat.objects.get(remote_id="466756000000000001").is_open  # not a snapshot
    assert PortalSync.objects.get(portal=portal).chats_polled_at is None


def test_it_tells_the_pages_when_a_portals_health_changes(simulator, connected_portal, monkeypatch):
    from dashboard.realtime import publish

    portal = connected_portal(open_chats=1)
    told = []
    monkeypatch.setattr(publish, "meta", told.append)
    worker = Worker()
    worker.run_once()  # first look: remembered, then the first polls make the data fresh
    worker.jobs["health"].last = float("-inf")
    worker.run_once()
    assert told == [portal.pk]  # no longer stale: the pages hear of it
    told.clear()
    worker.jobs["health"].last = float("-inf")
    worker.run_once()
    assert told == []  # nothing changed: nothing said
    simulator.set_faults(portal=portal.screen_name, outage_seconds=60, outage_mode="drop")
    try:
        # A poll fails (SalesIQ unreachable): the next look tells the pages.
        for job in worker.tick():
            worker.poll(job)
        from siq_integration.client import SalesIQClient
        from siq_integration.exceptions import Unavailable

        with pytest.raises(Unavailable):
            SalesIQClient(portal).list_departments()
        worker.jobs["health"].last = float("-inf")
        worker.run_once()
    finally:
        simulator.clear_faults()
    assert told == [portal.pk]
