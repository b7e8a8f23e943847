""" "Webhooks are silent" has one definition, shared by the live page and the alert rule:
silence counts from the later of the last delivery and the registration, and only while
chats are open. A portal connected a minute ago has nothing alarming to say."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard import selectors
from dashboard.alerts import lifecycle
from dashboard.alerts.rules import ensure_rules
from dashboard.models import Alert, AlertKind, AlertRule, Chat, ChatStatus
from siq_integration import health
from tests.factories import live_portal

pytestmark = pytest.mark.django_db


def registered(*, registered_ago: timedelta, delivered_ago: timedelta | None = None):
    now = timezone.now()
    portal = live_portal(name="Zylker", screen_name="zylker")
    portal.webhook_id = "w1"
    portal.webhook_registered_at = now - registered_ago
    portal.last_webhook_at = now - delivered_ago if delivered_ago is not None else None
    portal.last_webhook_ok = True if delivered_ago is not None else None
    portal.save()
    return portal


def an_open_chat(portal) -> None:
    now = timezone.now()
    Chat.objects.create(
        portal=portal,
        remote_id="c1",
        status=ChatStatus.WAITING,
        started_at=now - timedelta(minutes=1),
        waiting_since=now - timedelta(minutes=1),
        fact_at=now,
    )


def silence_alerts(portal) -> list[Alert]:
    return list(Alert.objects.filter(portal=portal, kind=AlertKind.WEBHOOK_SILENCE))


def test_it_says_nothing_alarming_right_after_connecting():
    portal = registered(registered_ago=timedelta(seconds=20))
    an_open_chat(portal)  # the first poll found chats before SalesIQ had anything to send

    fresh = selectors.freshness(portal)

    assert fresh.webhooks != "silent"
    assert fresh.banner == ""
    assert selectors.webhook_silence(portal, timezone.now(), has_open=True) < timedelta(minutes=1)


def test_it_counts_from_a_registration_newer_than_the_last_delivery():
    # Re-registered a minute ago; the last delivery came two hours ago, to the old one.
    portal = registered(registered_ago=timedelta(minutes=1), delivered_ago=timedelta(hours=2))
    an_open_chat(portal)
    now = timezone.now()

    assert selectors.freshness(portal, now).webhooks != "silent"
    lifecycle.evaluate(portal, now)
    assert silence_alerts(portal) == []


def test_it_is_silent_after_the_threshold_for_page_and_rule_alike():
    portal = registered(registered_ago=timedelta(minutes=5))
    an_open_chat(portal)
    now = timezone.now()
    threshold = ensure_rules(portal)[AlertKind.WEBHOOK_SILENCE].threshold  # minutes

    fresh = selectors.freshness(portal, now)
    assert fresh.webhooks == "silent"
    assert "no webhook from SalesIQ for over 3 minutes" in fresh.banner
    lifecycle.evaluate(portal, now)  # 5 minutes: past the page's 3, not the rule's 10
    assert threshold == 10 and silence_alerts(portal) == []

    lifecycle.evaluate(portal, now + timedelta(minutes=threshold - 4))
    (alert,) = silence_alerts(portal)
    assert "no webhook from SalesIQ for 11" in alert.title


def test_it_is_never_silent_without_open_chats():
    portal = registered(registered_ago=timedelta(hours=3), delivered_ago=timedelta(hours=2))
    AlertRule.objects.filter(portal=portal).delete()
    now = timezone.now()

    assert selectors.webhook_silence(portal, now, has_open=False) is None
    assert selectors.freshness(portal, now).webhooks == "quiet"
    lifecycle.evaluate(portal, now + timedelta(hours=1))
    assert silence_alerts(portal) == []


def test_it_never_alerts_while_webhooks_still_count_as_flowing():
    portal = registered(registered_ago=timedelta(minutes=2))  # within WEBHOOKS_FLOWING_WITHIN
    an_open_chat(portal)
    rule = ensure_rules(portal)[AlertKind.WEBHOOK_SILENCE]
    AlertRule.objects.filter(pk=rule.pk).update(threshold=1)  # minutes
    now = timezone.now()

    assert timedelta(minutes=2) < health.WEBHOOKS_FLOWING_WITHIN
    lifecycle.evaluate(portal, now)  # past the rule's minute, not past "flowing"
    assert silence_alerts(portal) == []

    lifecycle.evaluate(portal, now + health.WEBHOOKS_FLOWING_WITHIN)
    assert len(silence_alerts(portal)) == 1
