"""The webhook fast path (ASGI receiver, stored together, one lane applying and publishing).
Frame-once is tested under the real daphne: tests/test_frame_once_contract.py."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from channels.testing import HttpCommunicator

from dashboard import ingest
from dashboard.asgi import application
from dashboard.models import Chat, InboxEvent, PortalSync
from dashboard.realtime import publish
from dashboard.state import apply
from siq_integration import connecting, webhooks
from siq_integration.webhooks import MAX_BODY_BYTES
from tests.support.asgi import run_async

pytestmark = pytest.mark.django_db(transaction=True)


def request(path, *, method="POST", body=b"", headers=None):
    headers = headers if headers is not None else [(b"host", b"localhost")]
    http = HttpCommunicator(application, method, path, body=body, headers=headers)

    async def answer():
        return await http.get_response(timeout=10)

    return run_async(answer)


@pytest.fixture
def reference_portal(connected_portal, webhook_receiver):
    """A portal whose deliveries we can sign ourselves (reference dialect, HMAC)."""
    portal = connected_portal(dialect="reference", open_chats=0)
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    portal.refresh_from_db()
    return portal


def signed(portal, payload: dict) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    signature = webhooks.sign_reference(body, portal.get_webhook_secret())
    return {"content-type": "application/json", "x-salesiq-signature": signature}, body


def chat_event(chat_id: str, *, event: str = "chat.missed", at: str = "2026-11-22T09:00:00Z"):
    return {
        "event": event,
        "timestamp": at,
        "data": {"chat_id": chat_id, "visitor_name": "Ada", "started_at": at, "ended_at": at},
    }


# --- the ASGI receiver -----------------------------------------------------------------


def test_it_answers_deliveries_before_django_and_leaves_the_rest_to_django(reference_portal):
    headers, body = signed(reference_portal, chat_event("c-1"))
    address = f"/webhooks/salesiq/{reference_portal.pk}/"

    stored = request(address, body=body, headers=[(b"host", b"localhost"), *encode(headers)])
    assert stored["status"] == 200
    assert dict(stored["headers"])[b"content-type"] == b"application/json"
    assert json.loads(stored["body"]) == {"ok": True, "event": "chat.missed"}
    assert InboxEvent.objects.filter(portal=reference_portal).count() == 1

    # Not a POST: Django answers, as before (require_POST).
    assert request(address, method="GET")["status"] == 405
    # Not a portal's address: Django's 404; an address of no portal: the receiver's 404.
    assert request("/webhooks/salesiq/not-a-uuid/", body=body)["status"] == 404
    unknown = request("/webhooks/salesiq/00000000-0000-0000-0000-000000000000/", body=body)
    assert unknown["status"] == 404
    assert json.loads(unknown["body"]) == {"error": "unknown webhook address"}


def test_it_refuses_a_host_it_does_not_serve_and_a_body_over_the_cap_unread(reference_portal):
    headers, body = signed(reference_portal, chat_event("c-2"))
    address = f"/webhooks/salesiq/{reference_portal.pk}/"

    elsewhere = request(address, body=body, headers=[(b"host", b"evil.example"), *encode(headers)])
    assert elsewhere["status"] == 400

    declared = [(b"host", b"localhost"), (b"content-length", str(MAX_BODY_BYTES + 1).encode())]
    too_large = request(address, body=b"x" * 10, headers=declared)
    assert too_large["status"] == 413
    reference_portal.refresh_from_db()
    assert reference_portal.last_webhook_at is None  # unsigned, unread: not a webhook
    sync = PortalSync.objects.get(portal=reference_portal)
    assert sync.refused_deliveries == 1 and "too large" in sync.last_refused_reason
    assert not InboxEvent.objects.filter(portal=reference_portal).exists()


def test_it_asks_salesiq_to_send_again_when_storing_fails(reference_portal):
    headers, body = signed(reference_portal, chat_event("c-3"))
    address = f"/webhooks/salesiq/{reference_portal.pk}/"
    with mock.patch.object(ingest, "receive_many", side_effect=RuntimeError("disk full")):
        failed = request(address, body=body, headers=[(b"host", b"localhost"), *encode(headers)])
    assert failed["status"] == 503  # SalesIQ retries; nothing was answered "ok" unstored

    again = request(address, body=body, headers=[(b"host", b"localhost"), *encode(headers)])
    assert again["status"] == 200
    assert InboxEvent.objects.filter(portal=reference_portal).count() == 1


def encode(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value.encode()) for name, value in headers.items()]


# --- stored together ---------------------------------------------------------------------


def test_it_judges_each_delivery_of_a_batch_on_its_own(reference_portal, connected_portal):
    other = connected_portal(dialect="reference", open_chats=0)
    good_headers, good = signed(reference_portal, chat_event("c-10"))
    bad_headers = {**good_headers, "x-salesiq-signature": "0" * 64}
    malformed = b"{not json"
    secret = reference_portal.get_webhook_secret()
    malformed_headers = {"x-salesiq-signature": webhooks.sign_reference(malformed, secret)}
    later_headers, later = signed(reference_portal, chat_event("c-11"))
    batch = [
        ingest.Delivery(reference_portal.pk, good, good_headers),
        ingest.Delivery(reference_portal.pk, good, bad_headers),
        ingest.Delivery(reference_portal.pk, good, good_headers),  # SalesIQ's retry, same batch
        ingest.Delivery("00000000-0000-0000-0000-000000000000", good, good_headers),
        ingest.Delivery(reference_portal.pk, malformed, malformed_headers),
        ingest.Delivery(other.pk, good, good_headers),  # another portal's signature: refused
        ingest.Delivery(reference_portal.pk, later, later_headers),
    ]

    receipts, stored = ingest.receive_many(batch)

    assert [receipt.status for receipt in receipts] == [200, 401, 200, 404, 200, 401, 200]
    assert receipts[2].body == {"ok": True, "duplicate": True}
    assert receipts[4].body["ok"] is False  # signed but unreadable: kept as rejected
    assert [item.event.chat_id for item in stored] == ["c-10", "c-11"]  # in arrival order
    states = InboxEvent.objects.filter(portal=reference_portal).values_list("state", flat=True)
    assert sorted(states) == ["pending", "pending", "rejected"]
    reference_portal.refresh_from_db()
    other.refresh_from_db()
    assert reference_portal.last_webhook_ok is True  # its last delivery was fine
    assert other.last_webhook_at is None  # only refused: counted apart, not a webhook
    assert PortalSync.objects.get(portal=other).refused_deliveries == 1
    assert PortalSync.objects.get(portal=reference_portal).refused_deliveries == 1

    # Stored once however often it comes again, also in a later batch.
    receipts, stored = ingest.receive_many(batch[:1])
    assert receipts[0].body == {"ok": True, "duplicate": True} and stored == []


def test_it_stores_once_what_another_process_stored_a_moment_before(reference_portal):
    headers, body = signed(reference_portal, chat_event("c-12"))
    receipts, _ = ingest.receive_many([ingest.Delivery(reference_portal.pk, body, headers)])
    assert receipts[0].status == 200
    existing = InboxEvent.objects.get(portal=reference_portal)
    twin = InboxEvent(
        portal=reference_portal,
        dedupe_key=existing.dedupe_key,
        event_name="x",
        kind="x",
        body="{}",
        received_at=existing.received_at,
    )
    fresh = InboxEvent(
        portal=reference_portal,
        dedupe_key="another",
        event_name="x",
        kind="x",
        body="{}",
        received_at=existing.received_at,
    )

    ingest._insert([twin, fresh])  # the bulk insert fails on the twin: one at a time

    assert twin.pk is None and fresh.pk is not None
    assert InboxEvent.objects.filter(portal=reference_portal).count() == 2


# --- the lane: events applied, their changes published together ---------------------------


def run_lane(portal, chat_ids) -> list[apply.Changes]:
    """Store one event per chat, let a lane apply them, and return what it published."""
    items = []
    for chat_id in chat_ids:
        headers, body = signed(portal, chat_event(chat_id))
        items += ingest.receive_many([ingest.Delivery(portal.pk, body, headers)])[1]
    published: list[apply.Changes] = []

    async def scene():
        lane = ingest._Lane()
        lane.events.extend(items)
        with mock.patch.object(publish, "publish", side_effect=published.append):
            await lane._drain()

    run_async(scene)
    return published


def test_it_publishes_what_it_applied_together_when_nothing_waits(reference_portal, monkeypatch):
    # Held as long as need be: what is tested is "once nothing waits", not the 15 ms limit,
    # which a loaded machine can overrun between two of the three events.
    monkeypatch.setattr(publish, "HOLD_WITHIN", 30.0)
    published = run_lane(reference_portal, ["c-20", "c-21", "c-22"])

    assert len(published) == 1  # three events, one message to every page
    assert published[0].chats == set(Chat.objects.values_list("pk", flat=True))
    assert set(InboxEvent.objects.values_list("state", flat=True)) == {"applied"}


def test_it_publishes_each_event_alone_when_told_not_to_hold_any(reference_portal, monkeypatch):
    monkeypatch.setattr(publish, "HOLD_WITHIN", 0.0)
    published = run_lane(reference_portal, ["c-30", "c-31"])
    assert [len(changes.chats) for changes in published] == [1, 1]
