"""The per-portal call budget: atomic across threads, a reserve for actions, a clear refusal."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from siq_integration import budget
from siq_integration.budget import Priority
from siq_integration.exceptions import BudgetExhausted, RateLimited
from siq_integration.models import Portal

NOON = datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC)


@pytest.fixture
def frozen(monkeypatch):
    clock = {"now": NOON}
    monkeypatch.setattr(budget.timezone, "now", lambda: clock["now"])
    return clock


@pytest.fixture
def free_portal(db):
    return Portal.objects.create(
        name="Free", data_center="us", plan="free", calls_per_minute=10, calls_per_day=1000
    )


def spend_until_refused(portal, priority) -> tuple[int, BudgetExhausted]:
    spent = 0
    while True:
        try:
            budget.spend(portal, priority=priority)
        except BudgetExhausted as refusal:
            return spent, refusal
        spent += 1
        assert spent < 10_000


def test_it_keeps_a_reserve_that_only_actions_may_use(free_portal, frozen):
    background, refusal = spend_until_refused(free_portal, Priority.BACKGROUND)
    assert background == 10 - budget.reserved(10) == 7
    assert refusal.retry_at == datetime(2026, 11, 22, 12, 1, tzinfo=UTC)
    assert "background" in refusal.user_message and "12:01:00" in refusal.user_message

    actions, refusal = spend_until_refused(free_portal, Priority.ACTION)
    assert actions == 3
    usage = budget.usage(free_portal, now=NOON)
    assert (usage.minute_used, usage.minute_limit) == (10, 10)


def test_it_gives_the_budget_back_the_next_minute(free_portal, frozen):
    spend_until_refused(free_portal, Priority.ACTION)
    frozen["now"] = NOON + timedelta(minutes=1)
    budget.spend(free_portal, priority=Priority.BACKGROUND)
    assert budget.usage(free_portal, now=frozen["now"]).minute_used == 1


def test_it_enforces_the_day_and_rolls_back_the_minute(free_portal, frozen):
    free_portal.calls_per_day = 4
    free_portal.save()
    spent, refusal = spend_until_refused(free_portal, Priority.ACTION)
    assert spent == 4
    assert refusal.retry_at == datetime(2026, 11, 23, tzinfo=UTC)
    assert "today" in refusal.user_message
    assert budget.usage(free_portal, now=NOON).minute_used == 4  # the refused call cost nothing


def test_it_refuses_while_salesiq_asked_us_to_back_off(free_portal, frozen):
    Portal.objects.filter(pk=free_portal.pk).update(rate_limited_until=NOON + timedelta(seconds=40))
    with pytest.raises(RateLimited) as caught:
        budget.spend(free_portal, priority=Priority.ACTION)
    assert caught.value.retry_at == NOON + timedelta(seconds=40)
    assert budget.usage(free_portal, now=NOON).minute_used == 0


@pytest.mark.django_db(transaction=True)
def test_it_never_overspends_when_threads_race(frozen):
    portal = Portal.objects.create(
        name="Race", data_center="us", calls_per_minute=20, calls_per_day=1000
    )
    granted, refused, errors = [], [], []
    start = threading.Barrier(6)

    def worker():
        try:
            start.wait()
            for _ in range(8):
                try:
                    budget.spend(portal, priority=Priority.ACTION)
                    granted.append(1)
                except BudgetExhausted:
                    refused.append(1)
        except Exception as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(granted) == 20
    assert len(refused) == 6 * 8 - 20
