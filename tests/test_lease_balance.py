"""Leases are shared out: with N live workers none holds more than ceil(portals / N), and a
dead or stopped worker's portals go to the others. Leases driven directly, with the time
passed in, so a death needs no waiting (tests/test_lease_balance_scale_out.py: processes)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard.models import PortalSync, WorkerHeartbeat
from dashboard.polling.leases import (
    LEASE_TTL,
    Leases,
    connected_portals,
    excess,
    fair_share,
    preference,
)
from tests.factories import live_portal

pytestmark = pytest.mark.django_db


@pytest.fixture
def portals():
    for n in range(30):
        live_portal(name=f"Portal {n}", screen_name=f"p{n}")
    return {portal.pk: portal for portal in connected_portals()}


def rounds(workers: list[Leases], portals, now, times: int = 3) -> None:
    for n in range(times):
        for worker in workers:
            worker.hold(portals, now + timedelta(milliseconds=n))


def holders() -> Counter:
    return Counter(
        PortalSync.objects.exclude(lease_holder="").values_list("lease_holder", flat=True)
    )


def assert_balanced(workers: list[Leases], portals) -> None:
    share = fair_share(len(portals), len(workers))
    counts = holders()
    assert sum(counts.values()) == len(portals), "a portal nobody polls"
    assert set(counts) == {worker.holder for worker in workers}
    assert all(share - 1 <= count <= share for count in counts.values()), counts
    held = [pk for worker in workers for pk in worker.held]
    assert len(held) == len(set(held)) == len(portals), "two workers think they hold a portal"


def test_a_share_is_the_portals_divided_among_the_workers_rounded_up():
    assert fair_share(30, 3) == 10
    assert fair_share(30, 2) == 15
    assert fair_share(31, 3) == 11
    assert fair_share(1, 2) == 1  # one portal stays with whoever holds it
    assert fair_share(5, 0) == 5  # nobody else alive: all of them


def test_it_hands_back_what_it_wants_least_and_never_a_portal_mid_poll():
    held = set(range(12))
    by_want = sorted(held, key=lambda pk: preference("w1", pk))
    assert excess(held, 10, "w1") == set(by_want[:2])
    assert excess(held, 10, "w1", busy={by_want[0]}) == set(by_want[1:3])
    assert excess(held, 12, "w1") == set()
    # Each worker has its own order, so they do not all want the same portals.
    assert sorted(range(30), key=lambda pk: preference("w1", pk)) != sorted(
        range(30), key=lambda pk: preference("w2", pk)
    )


def test_three_workers_starting_together_hold_ten_portals_each(portals):
    workers = [Leases(holder=f"host:{n}:a") for n in range(3)]
    rounds(workers, portals, timezone.now())
    assert_balanced(workers, portals)
    assert WorkerHeartbeat.objects.count() == 3


def test_a_worker_that_ran_alone_hands_the_excess_to_workers_that_join(portals):
    first = Leases(holder="host:1:a")
    now = timezone.now()
    first.hold(portals, now)
    assert holders() == {first.holder: 30}
    workers = [first, Leases(holder="host:2:a"), Leases(holder="host:3:a")]
    rounds(workers, portals, now + timedelta(seconds=1))
    assert_balanced(workers, portals)


def test_the_survivors_take_a_dead_workers_portals_once_its_lease_runs_out(portals):
    workers = [Leases(holder=f"host:{n}:a") for n in range(3)]
    now = timezone.now()
    rounds(workers, portals, now)
    dead, survivors = workers[0], workers[1:]
    lost = set(dead.held)
    # Before its lease runs out nobody takes its portals (it may only be slow).
    rounds(survivors, portals, now + LEASE_TTL / 2)
    assert (
        set(PortalSync.objects.filter(lease_holder=dead.holder).values_list("portal_id", flat=True))
        == lost
    )
    # Then the next tick of each survivor takes them, and they stay balanced.
    rounds(survivors, portals, now + LEASE_TTL + timedelta(seconds=1), times=2)
    assert_balanced(survivors, portals)


def test_a_stopping_worker_gives_its_portals_to_the_others_at_once(portals):
    workers = [Leases(holder=f"host:{n}:a") for n in range(3)]
    now = timezone.now()
    rounds(workers, portals, now)
    workers[0].release()
    assert not WorkerHeartbeat.objects.filter(holder=workers[0].holder).exists()
    rounds(workers[1:], portals, now + timedelta(seconds=1), times=2)
    assert_balanced(workers[1:], portals)


def test_one_portal_stays_with_its_holder_when_a_second_worker_starts(portals):
    one = next(iter(portals))
    PortalSync.objects.all().delete()
    only = {one: portals[one]}
    first, second = Leases(holder="host:1:a"), Leases(holder="host:2:a")
    now = timezone.now()
    for n in range(5):
        first.hold(only, now + timedelta(seconds=n))
        second.hold(only, now + timedelta(seconds=n))
    assert holders() == {first.holder: 1}
