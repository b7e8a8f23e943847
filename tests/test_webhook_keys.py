"""Webhook keys rotated inside SalesIQ: every key SalesIQ lists is trusted, and a signature
none of the stored keys matches makes the dashboard read the list again (at most once a
minute per portal, across processes, within the call budget) before refusing.

Zoho's key page (generate-public-key-webhook-v2): at most 2 public keys per webhook, "the
oldest key will be in use always". The simulator signs with the oldest key.
"""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from dashboard import ingest
from dashboard.models import InboxEvent, Profile, Role
from siq_integration import connecting, webhook_keys
from siq_integration.models import Portal, WebhookPublicKey
from tests.support.simulator import last_seq, oauth_connect
from tests.support.waits import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def key_reads(simulator, since: int, portal: Portal) -> list[dict]:
    """GET /webhooks/{id} calls (the key list read again) since call ``since``."""
    return [
        call
        for call in simulator.calls(since)
        if call["method"] == "GET" and call["path"].endswith(f"/webhooks/{portal.webhook_id}")
    ]


def deliveries_of(simulator, since: int, portal: Portal) -> list[dict]:
    return [d for d in simulator.deliveries(since) if d["portal"] == portal.screen_name]


def registered(simulator, server, connected_portal) -> Portal:
    portal = connected_portal(open_chats=0)
    address = f"{server.url}/webhooks/salesiq/{portal.pk}/"
    assert connecting.register_webhooks(portal, url=address)
    portal.refresh_from_db()
    return portal


def test_it_accepts_the_next_delivery_after_a_key_rotated_in_salesiq_with_one_reread(
    simulator, server, connected_portal
):
    portal = registered(simulator, server, connected_portal)
    (first,) = simulator.webhook_keys(portal.screen_name)
    assert list(
        WebhookPublicKey.objects.filter(portal=portal).values_list("key_id", flat=True)
    ) == [first["id"]]

    # An admin rotates the key in SalesIQ's own settings: adds one, removes the old one.
    second = simulator.add_webhook_key(portal.screen_name)
    simulator.remove_webhook_key(portal.screen_name, first["id"])
    calls, sent = last_seq(simulator), (simulator.deliveries() or [{"seq": 0}])[-1]["seq"]

    chat = simulator.create_conversation(portal.screen_name, visitor_name="After rotation")
    wait_for(
        lambda: InboxEvent.objects.filter(portal=portal).exists(),
        timeout=15,
        what="the delivery signed with the new key stored",
    )
    attempts = deliveries_of(simulator, sent, portal)
    assert [(d["attempt"], d["status"]) for d in attempts] == [(1, 200)], attempts
    assert chat["id"] in InboxEvent.objects.get(portal=portal).body
    assert len(key_reads(simulator, calls, portal)) == 1

    portal.refresh_from_db()
    assert portal.last_webhook_ok is True
    assert portal.last_webhook_key_id == second["id"]
    stored = WebhookPublicKey.objects.get(portal=portal)  # the removed key is trusted no more
    assert stored.key_id == second["id"]
    assert stored.created_time is not None and stored.creator_id == second["creator_id"]

    # The next delivery needs no read: the new key is stored.
    calls = last_seq(simulator)
    simulator.visitor_message(chat["id"], "Still there?")
    wait_for(
        lambda: InboxEvent.objects.filter(portal=portal).count() >= 2,
        timeout=15,
        what="the second delivery stored",
    )
    assert key_reads(simulator, calls, portal) == []

    # The portal page says which key signed the last delivery (by id, never the key).
    admin = get_user_model().objects.create_user("keys-admin", password="pw")
    Profile.objects.create(user=admin, role=Role.ADMIN).portals.set([portal])
    browser = Client()
    browser.force_login(admin)
    page = browser.get(f"/portals/{portal.pk}/").content.decode()
    assert f"signature verified with key {second['id']}" in page
    assert "signed the last delivery" in page
    assert second["key"] not in page and second["key"][:40] not in page


def test_it_trusts_both_keys_salesiq_lists_while_the_oldest_still_signs(
    simulator, server, connected_portal
):
    portal = registered(simulator, server, connected_portal)
    (first,) = simulator.webhook_keys(portal.screen_name)
    second = simulator.add_webhook_key(portal.screen_name)
    assert webhook_keys.reread(Portal.objects.get(pk=portal.pk)) is not None
    assert set(WebhookPublicKey.objects.filter(portal=portal).values_list("key_id", flat=True)) == {
        first["id"],
        second["id"],
    }
    simulator.create_conversation(portal.screen_name)
    wait_for(lambda: InboxEvent.objects.filter(portal=portal).exists(), timeout=15, what="stored")
    portal.refresh_from_db()
    assert portal.last_webhook_key_id == first["id"]  # "the oldest key will be in use always"


def bad_signature(n: int) -> str:
    return base64.b64encode(bytes([n % 256]) * 256).decode()


def test_a_burst_of_badly_signed_deliveries_reads_the_keys_at_most_once_a_minute(
    simulator, server, connected_portal
):
    portal = registered(simulator, server, connected_portal)
    address = f"{server.url}/webhooks/salesiq/{portal.pk}/"
    calls = last_seq(simulator)

    def forge(n: int) -> int:
        body = b'{"event": "conversation.created", "entity_id": "%d"}' % n
        answer = requests.post(
            address,
            data=body,
            headers={"Content-Type": "application/json", "x-siqsignature": bad_signature(n)},
            timeout=15,
        )
        return answer.status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(forge, range(50)))
    # Refusals from one address past SIQ_WEBHOOK_REFUSALS_PER_MINUTE (20) are answered 429
    # unwritten; each is still checked against the keys first.
    assert sorted(statuses) == [401] * 20 + [429] * 30
    assert len(key_reads(simulator, calls, portal)) == 1

    # Another process (this one, on the same database) within the minute: no read either.
    refused = ingest.receive_one(
        ingest.Delivery(
            portal.pk,
            b'{"event": "conversation.created"}',
            {"x-siqsignature": bad_signature(7)},
        )
    )
    assert refused.status == 401
    assert len(key_reads(simulator, calls, portal)) == 1
    assert not InboxEvent.objects.filter(portal=portal).exists()

    # A minute later one more read is allowed, and again only one for a burst.
    Portal.objects.filter(pk=portal.pk).update(
        webhook_keys_read_at=timezone.now() - timedelta(seconds=61)
    )
    with ThreadPoolExecutor(max_workers=10) as pool:
        assert set(pool.map(forge, range(20))) == {429}  # the address's minute is not over
    assert len(key_reads(simulator, calls, portal)) == 2


def test_a_reread_stays_within_the_call_budget(simulator, sim_portal):
    portal = oauth_connect(simulator, sim_portal(open_chats=0, calls_per_minute=1000))
    assert connecting.register_webhooks(portal, url="http://127.0.0.1:9/hook")
    Portal.objects.filter(pk=portal.pk).update(calls_per_minute=2)  # 1 reserved for actions
    portal.refresh_from_db()
    from siq_integration import budget

    with pytest.raises(budget.BudgetExhausted):
        for _ in range(10):  # the background share of this minute used up
            budget.spend(portal)
    calls = last_seq(simulator)
    assert webhook_keys.reread(portal) is None
    assert key_reads(simulator, calls, portal) == []


def test_the_simulator_keeps_keys_as_zohos_pages_say(simulator, connected_portal, webhook_receiver):
    """At most 2 keys; the last cannot be deleted; each key names its creator."""
    from siq_integration import exceptions as exc
    from siq_integration.client import SalesIQClient

    portal = connected_portal(open_chats=0)
    client = SalesIQClient(portal)
    hook = client.register_webhook(url=webhook_receiver.url, events=["conversation.created"])
    first = client.create_webhook_key(hook.id)
    assert first.creator_id == simulator.user_id(f"admin@{portal.screen_name}.example") != ""
    with pytest.raises(exc.SalesIQError):
        client.delete_webhook_key(hook.id, first.id)  # the last available key
    second = client.add_webhook_key(hook.id)
    assert second.public_keys[0].id == first.id
    with pytest.raises(exc.SalesIQError):
        client.add_webhook_key(hook.id)  # a third
    listed = client.get_webhook(hook.id)
    assert len(listed.public_keys) == 2
    client.delete_webhook_key(hook.id, first.id)
    assert [key.id for key in client.get_webhook(hook.id).public_keys] == [second.public_keys[1].id]
