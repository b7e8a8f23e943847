"""One fact, one definition: "webhooks are flowing" and the page's thresholds are defined
once, in Python, and everything that needs them reads that definition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from dashboard import selectors
from dashboard.polling.planner import WebhookState, webhook_state
from siq_integration.health import WEBHOOKS_FLOWING_WITHIN, webhook_health
from siq_integration.models import Portal
from tests.factories import make_portal

NOON = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
JUST_WITHIN = WEBHOOKS_FLOWING_WITHIN - timedelta(seconds=5)
JUST_PAST = WEBHOOKS_FLOWING_WITHIN + timedelta(seconds=5)


def test_it_defines_flowing_as_three_minutes():
    assert timedelta(minutes=3) == WEBHOOKS_FLOWING_WITHIN


def test_it_plans_polls_by_the_same_flowing():
    def state(age: timedelta) -> WebhookState:
        return webhook_state(
            registered=True, last_delivery_at=NOON - age, last_delivery_ok=True, now=NOON
        )

    assert state(JUST_WITHIN) == WebhookState.FLOWING
    assert state(JUST_PAST) == WebhookState.SILENT


@pytest.mark.django_db
def test_it_says_on_the_health_page_when_deliveries_stop_flowing():
    portal = make_portal()
    Portal.objects.filter(pk=portal.pk).update(webhook_id="wh-1", last_webhook_ok=True)
    portal.refresh_from_db()

    portal.last_webhook_at = NOON - JUST_WITHIN
    assert webhook_health(portal, now=NOON).label == "Receiving"
    portal.last_webhook_at = NOON - JUST_PAST
    said = webhook_health(portal, now=NOON)
    assert (said.label, said.tone) == ("Registered", "warn")
    assert "over 3 minutes" in said.sentence


@pytest.mark.django_db
def test_it_shows_webhooks_flowing_on_the_live_page_by_the_same_flowing():
    portal = make_portal()
    now = timezone.now()
    Portal.objects.filter(pk=portal.pk).update(
        webhook_id="wh-1", last_webhook_ok=True, last_webhook_at=now - JUST_WITHIN
    )
    portal.refresh_from_db()
    assert selectors.freshness(portal, now).webhooks == "flowing"
    Portal.objects.filter(pk=portal.pk).update(last_webhook_at=now - JUST_PAST)
    portal.refresh_from_db()
    assert selectors.freshness(portal, now).webhooks != "flowing"


@pytest.mark.django_db
def test_it_gives_the_page_its_thresholds_in_seconds():
    portal = make_portal()
    thresholds = selectors.live_context([portal])["thresholds"]
    assert thresholds == {"stale_after": 120, "wait_warn": 60, "wait_bad": 180}
    assert all(type(value) is int for value in thresholds.values())
