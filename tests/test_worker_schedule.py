"""The worker's planner: how often to poll, always within the portal's call budget."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from dashboard.polling.planner import (
    HEADROOM,
    Load,
    WebhookState,
    chats_listing_cost,
    plan,
    webhook_state,
)
from siq_integration import budget

NOON = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def load(plan_name: str = "professional", **overrides) -> Load:
    figures = settings.SIQ_PLANS[plan_name]
    values = {
        "dialect": "v2",
        "calls_per_minute": figures["per_minute"],
        "calls_per_day": figures["per_day"],
        "reserved_per_minute": budget.reserved(figures["per_minute"]),
        "reserved_per_day": budget.reserved(figures["per_day"]),
        "open_chats": 20,
        "operators": 12,
        "departments": 3,
        "webhooks": WebhookState.SILENT,
        "full_operators_age": 60.0,
    }
    values.update(overrides)
    return Load(**values)


def within_budget(given: Load) -> bool:
    """The planned rate fits the background's minute and the day's pace, with headroom."""
    result = plan(given)
    minute = given.calls_per_minute - given.reserved_per_minute
    day_left = given.calls_per_day - given.reserved_per_day - given.used_today
    day_pace = day_left / (given.seconds_left_today / 60)
    return result.calls_per_minute <= HEADROOM * min(minute, day_pace) + 1e-9


@pytest.mark.parametrize("plan_name", ["free", "basic", "professional", "enterprise"])
@pytest.mark.parametrize("dialect", ["v2", "reference"])
@pytest.mark.parametrize("open_chats", [0, 20, 2000])
def test_it_stays_within_the_budget_whatever_the_load(plan_name, dialect, open_chats):
    for webhooks in WebhookState:
        for seconds_left in (86_400.0, 3_600.0, 60.0):
            given = load(
                plan_name,
                dialect=dialect,
                open_chats=open_chats,
                operators=500 if open_chats == 2000 else 12,
                webhooks=webhooks,
                seconds_left_today=seconds_left,
            )
            assert within_budget(given), (webhooks, seconds_left)


def test_it_polls_v2_operators_every_ten_to_twenty_seconds_on_a_professional_plan():
    result = plan(load("professional"))
    assert 10 <= result.operators_every <= 20
    assert result.operators_cost == 1  # changes since the last sync
    assert result.chats_every <= 30  # webhooks silent: polling is the truth
    assert result.departments_every == 600


def test_it_reconciles_chats_rarely_while_webhooks_flow():
    silent = plan(load("professional", webhooks=WebhookState.SILENT))
    flowing = plan(load("professional", webhooks=WebhookState.FLOWING))
    assert silent.chats_every <= 30
    assert flowing.chats_every == 120
    # The calls chats no longer need go to presence.
    assert flowing.operators_every <= silent.operators_every


@pytest.mark.parametrize("webhooks", [WebhookState.SILENT, WebhookState.REFUSED, WebhookState.NONE])
def test_it_treats_silent_refused_and_absent_webhooks_alike(webhooks):
    assert plan(load("enterprise", webhooks=webhooks)).chats_every == 20


def test_it_still_polls_a_free_plan_just_slower():
    free = plan(load("free"))
    professional = plan(load("professional"))
    assert math.isfinite(free.operators_every) and math.isfinite(free.chats_every)
    assert free.operators_every > professional.operators_every
    assert free.chats_every > professional.chats_every
    # A Free plan's 1,000 calls a day (700 for the background) run out before its
    # 10 a minute do: the plan paces the day.
    assert free.calls_per_minute <= HEADROOM * 700 / 1440 + 1e-9
    assert free.operators_every < free.chats_every  # presence first in v2


def test_it_spends_a_day_left_unused_faster_near_its_end():
    morning = plan(load("free", seconds_left_today=20 * 3600))
    evening = plan(load("free", seconds_left_today=3600))
    assert evening.operators_every < morning.operators_every
    # …but never past the minute's background budget (10 - 3 reserved).
    assert evening.calls_per_minute <= HEADROOM * 7


def test_it_keeps_two_thousand_open_chats_on_a_free_plan_within_budget():
    given = load("free", open_chats=2000, operators=500)
    result = plan(given)
    assert result.chats_cost == 21  # pages of 99
    assert not result.chats_fit_in_a_minute  # 21 calls, 7 a minute for the background
    assert math.isfinite(result.chats_every) and math.isfinite(result.operators_every)
    assert within_budget(given)


def test_it_counts_reference_listings_as_two_queries():
    assert chats_listing_cost("v2", 0) == 1
    assert chats_listing_cost("v2", 99) == 1
    assert chats_listing_cost("v2", 100) == 2
    assert chats_listing_cost("v2", 2000) == 21
    assert chats_listing_cost("reference", 0) == 2  # waiting, then active
    assert chats_listing_cost("reference", 150) == 3  # e.g. 101 waiting + 49 active
    assert chats_listing_cost("reference", 2000) == 21


def test_it_plans_reference_operators_as_full_lists_and_slower_while_webhooks_flow():
    silent = plan(load("professional", dialect="reference", webhooks=WebhookState.SILENT))
    flowing = plan(load("professional", dialect="reference", webhooks=WebhookState.FLOWING))
    assert silent.full_operators and flowing.full_operators
    assert silent.operators_every <= 20
    assert flowing.operators_every == 60  # presence arrives by webhook
    assert silent.chats_cost == 2


def test_it_asks_for_the_full_operators_list_when_it_is_older_than_ten_minutes():
    assert not plan(load(full_operators_age=60)).full_operators
    assert plan(load(full_operators_age=601)).full_operators
    assert plan(load(full_operators_age=None)).full_operators  # never listed


def test_it_spaces_an_expensive_full_list_out_on_a_tight_budget():
    many = plan(load("basic", operators=500, full_operators_age=700))
    assert many.full_operators_cost == 25
    assert many.full_operators_every > 600
    assert not many.full_operators


def test_it_plans_nothing_when_the_day_is_spent():
    result = plan(load("free", used_today=700))
    assert math.isinf(result.operators_every) and math.isinf(result.chats_every)
    assert result.calls_per_minute == 0


def test_it_tells_flowing_webhooks_from_silent_refused_and_absent():
    recent = NOON - timedelta(seconds=30)
    old = NOON - timedelta(minutes=5)
    state = webhook_state
    assert state(registered=False, last_delivery_at=recent, last_delivery_ok=True, now=NOON) == (
        WebhookState.NONE
    )
    assert state(registered=True, last_delivery_at=recent, last_delivery_ok=True, now=NOON) == (
        WebhookState.FLOWING
    )
    assert state(registered=True, last_delivery_at=old, last_delivery_ok=True, now=NOON) == (
        WebhookState.SILENT
    )
    assert state(registered=True, last_delivery_at=None, last_delivery_ok=None, now=NOON) == (
        WebhookState.SILENT
    )
    assert state(registered=True, last_delivery_at=recent, last_delivery_ok=False, now=NOON) == (
        WebhookState.REFUSED
    )
