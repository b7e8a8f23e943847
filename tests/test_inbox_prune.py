"""The webhook inbox keeps what it is done with for SIQ_INBOX_KEEP_DAYS, then the worker
prunes it in batches, now and then (not every tick); what still needs a look stays."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from dashboard import ingest, jobs
from dashboard.models import InboxEvent
from dashboard.polling.runner import Worker
from tests.factories import live_portal

pytestmark = pytest.mark.django_db


def row(portal, name: str, state: str, age: timedelta) -> InboxEvent:
    return InboxEvent.objects.create(
        portal=portal,
        dedupe_key=name,
        event_name=name,
        kind="x",
        body="{}",
        received_at=timezone.now() - age,
        state=state,
    )


def names() -> set[str]:
    return set(InboxEvent.objects.values_list("dedupe_key", flat=True))


@pytest.fixture
def inbox(db):
    portal = live_portal(name="Zylker", screen_name="zylker")
    old, recent = timedelta(days=8), timedelta(days=6)
    for name, state, age in [
        ("old-applied", "applied", old),
        ("old-rejected", "rejected", old),
        ("old-unknown", "unknown", old),
        ("old-pending", "pending", old),
        ("old-failed", "failed", old),
        ("recent-applied", "applied", recent),
        ("recent-rejected", "rejected", recent),
    ]:
        row(portal, name, state, age)
    return portal


KEPT = {
    "old-pending",
    "old-failed",
    "recent-applied",
    "recent-rejected",
}


@pytest.fixture
def quiet_worker(monkeypatch):
    """A worker whose tick does only the pruning here (its sweep would try the pending
    rows, its alerts escalate in a thread of their own)."""
    monkeypatch.setattr(jobs, "sweep", lambda portals, now: None)
    monkeypatch.setattr(jobs, "evaluate_alerts", lambda portals, now: None)
    monkeypatch.setattr(jobs.Escalation, "__call__", lambda self, portals, now: None)


def test_the_worker_prunes_what_is_done_with_after_seven_days(inbox, quiet_worker):
    Worker().tick()
    assert names() == KEPT


def test_it_keeps_as_many_days_as_the_setting_says(inbox, settings):
    settings.SIQ_INBOX_KEEP_DAYS = 5
    assert ingest.prune() == 5
    assert names() == {"old-pending", "old-failed"}


def test_it_deletes_in_batches_and_leaves_the_rest_for_later(inbox):
    portal = inbox
    for n in range(7):
        row(portal, f"more-{n}", "applied", timedelta(days=30))
    assert ingest.prune(batch=2, batches=2) == 4  # two batches of two, then it stops
    assert ingest.prune(batch=2, batches=100) == 6  # the rest, two at a time
    assert names() == KEPT


def test_it_prunes_now_and_then_not_every_tick(inbox, quiet_worker, monkeypatch):
    calls = []
    monkeypatch.setattr(ingest, "prune", lambda: calls.append(1) or 0)
    w = Worker()
    w.tick()
    w.tick()
    assert len(calls) == 1
    with mock.patch.object(
        jobs.time, "monotonic", return_value=jobs.time.monotonic() + jobs.PRUNE_EVERY
    ):
        w.tick()
    assert len(calls) == 2
