"""Forged deliveries: a portal's webhook address needs no secret to know, so what arrives
unsigned (or signed wrongly) is counted apart, is never webhook activity, and a flood of it
from one address is answered 429 without a database write.

Posted through the real ASGI application (the webhook lane), with the client address in
the scope as daphne sets it; valid deliveries are the simulator's, signed with its key.
"""

from __future__ import annotations

import json
from datetime import timedelta
from functools import partial

import pytest
from channels.testing import HttpCommunicator
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard import ingest, selectors
from dashboard.alerts import lifecycle
from dashboard.alerts.rules import ensure_rules
from dashboard.asgi import application
from dashboard.models import Alert, AlertKind, AlertRule, Chat, ChatStatus, PortalSync
from siq_integration import connecting, health
from tests.support.asgi import delivery_headers, run_async

pytestmark = pytest.mark.django_db(transaction=True)

FORGER = "203.0.113.9"
FORGED = json.dumps(
    {"event": "conversation.created", "entity_type": "conversation", "entity_id": "1"}
).encode()


async def post(portal, body, headers, address):
    http = HttpCommunicator(
        application,
        "POST",
        f"/webhooks/salesiq/{portal.pk}/",
        body=body,
        headers=delivery_headers(headers),
    )
    http.scope["client"] = (address, 40000)  # as daphne sets it: the peer's address
    return await http.get_response(timeout=10)


def forge(portal, address=FORGER):
    return run_async(partial(post, portal, FORGED, {"content-type": "application/json"}, address))


def an_open_chat(portal, now) -> None:
    Chat.objects.create(
        portal=portal,
        remote_id="c1",
        status=ChatStatus.WAITING,
        started_at=now - timedelta(minutes=1),
        waiting_since=now - timedelta(minutes=1),
        fact_at=now,
    )


def test_forged_deliveries_are_not_webhooks_and_do_not_silence_the_silence_alert(
    connected_portal, webhook_receiver, monkeypatch
):
    portal = connected_portal(open_chats=0)
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    portal.refresh_from_db()
    start = portal.webhook_registered_at
    an_open_chat(portal, start)
    ensure_rules(portal)
    AlertRule.objects.filter(portal=portal, kind=AlertKind.WEBHOOK_SILENCE).update(threshold=2)

    # One forged, unsigned POST every 20 s (simulated) for 150 s.
    for second in range(20, 150, 20):
        at = start + timedelta(seconds=second)
        monkeypatch.setattr(timezone, "now", lambda at=at: at)
        assert forge(portal)["status"] == 401
    monkeypatch.undo()

    portal.refresh_from_db()
    assert portal.last_webhook_at is None  # "last webhook" unchanged: never verified
    sync = PortalSync.objects.get(portal=portal)
    assert sync.refused_deliveries == 7
    assert sync.last_refused_from == FORGER
    assert sync.last_refused_at == start + timedelta(seconds=140)
    assert "without a signature" in sync.last_refused_reason

    at_150 = start + timedelta(seconds=150)
    # Past the rule's 2 minutes and past "webhooks are flowing" (health.WEBHOOKS_FLOWING_WITHIN).
    lifecycle.evaluate(portal, start + health.WEBHOOKS_FLOWING_WITHIN + timedelta(seconds=10))
    raised = Alert.objects.filter(portal=portal, kind=AlertKind.WEBHOOK_SILENCE)
    assert raised.exists(), "the no-webhooks alert was suppressed by forged POSTs"
    assert selectors.freshness(portal, at_150).banner == ""  # no "refused" banner either

    # Silence with refusals past the page's threshold: a real failure (an unknown key) is
    # likely, and the banner says both.
    later = start + timedelta(minutes=4)
    fresh = selectors.freshness(portal, later)
    assert fresh.webhooks == "refused"
    assert "deliveries were refused meanwhile" in fresh.banner


def test_a_forged_delivery_between_real_ones_changes_nothing_anyone_sees(
    simulator, connected_portal, webhook_receiver
):
    portal = connected_portal(open_chats=0)
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    simulator.create_conversation(portal.screen_name)
    ((headers, body),) = webhook_receiver.wait_for(1)
    assert run_async(partial(post, portal, body, headers, "198.51.100.7"))["status"] == 200
    portal.refresh_from_db()
    verified_at = portal.last_webhook_at

    assert forge(portal)["status"] == 401

    portal.refresh_from_db()
    assert portal.last_webhook_at == verified_at and portal.last_webhook_ok is True
    fresh = selectors.freshness(portal)
    assert fresh.webhooks == "flowing" and fresh.banner == ""


def test_a_flood_from_one_address_is_answered_429_with_no_database_write(
    simulator, connected_portal, webhook_receiver, settings
):
    settings.SIQ_WEBHOOK_REFUSALS_PER_MINUTE = 20
    portal = connected_portal(open_chats=0)
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    simulator.create_conversation(portal.screen_name)
    ((headers, body),) = webhook_receiver.wait_for(1)

    statuses = [forge(portal)["status"] for _ in range(50)]
    assert statuses == [401] * 20 + [429] * 30
    assert PortalSync.objects.get(portal=portal).refused_deliveries == 20

    # The same address's valid delivery is not held back, another address is not limited.
    assert run_async(partial(post, portal, body, headers, FORGER))["status"] == 200
    assert forge(portal, "192.0.2.1")["status"] == 401

    # Past the limit, a refusal writes nothing at all (not even a transaction).
    forged = ingest.Delivery(portal.pk, FORGED, {}, address=FORGER)
    with CaptureQueriesContext(db) as queries:
        receipts, stored = ingest.receive_many([forged] * 10)
    assert {r.status for r in receipts} == {429} and stored == []
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].split()[0].upper() in {"INSERT", "UPDATE", "DELETE", "BEGIN", "SAVEPOINT"}
    ]
    assert writes == []
    assert PortalSync.objects.get(portal=portal).refused_deliveries == 21


def test_the_portal_page_counts_refused_deliveries_apart(connected_portal, webhook_receiver):
    from django.contrib.auth import get_user_model

    portal = connected_portal(open_chats=0)
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    for _ in range(3):
        forge(portal)
    admin = get_user_model().objects.create_superuser("ada", "ada@example.org", "pw-tests-1")
    client = Client()
    client.force_login(admin)
    page = client.get(f"/portals/{portal.pk}/").content.decode()
    assert "3 refused deliveries, last from <code>203.0.113.9</code>" in page
    assert "do not count as webhooks" in page
