"""A signed delivery that can never be stored fails nobody but itself.

The simulator signs and sends the poison (JSON nested 100,000 deep, a lone surrogate, an
event time past year 9999) with its real keys, among 180 ordinary deliveries; all 183 are
posted at once through the real ASGI application, where the webhook lane stores what
arrived together in one batch.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from django.test import Client

from dashboard import ingest
from dashboard.asgi import application
from dashboard.models import Chat, ChatMessage, InboxEvent
from siq_integration import connecting
from tests.support.asgi import delivery_headers, run_async, settled

pytestmark = pytest.mark.django_db(transaction=True)

CHATS = 90  # each: created + a visitor's line = 180 valid deliveries


def poison_bodies() -> dict[str, bytes]:
    depth = 100_000
    deep = b'{"event":"conversation.created","entity":' + b"[" * depth + b"]" * depth + b"}"
    surrogate = (
        b'{"event":"conversation.visitor.replied","entity_type":"conversation",'
        b'"entity_id":"1","entity":{"id":"1","visitor":{"name":"\\ud800"}}}'
    )
    far = json.dumps(
        {
            "event": "conversation.completed",
            "entity_type": "conversation",
            "entity_id": "2",
            "event_time": 99999999999999999,
            "entity": {"id": "2", "status": "ended"},
        }
    ).encode()
    return {"deep": deep, "surrogate": surrogate, "far": far}


async def post_all(portal, deliveries):
    from channels.testing import HttpCommunicator

    async def post(headers, body):
        http = HttpCommunicator(
            application,
            "POST",
            f"/webhooks/salesiq/{portal.pk}/",
            body=body,
            headers=delivery_headers(headers),
        )
        return await http.get_response(timeout=60)

    return await asyncio.gather(*(post(h, b) for h, b in deliveries))


def test_a_poison_delivery_fails_nobody_but_itself(
    simulator, connected_portal, webhook_receiver, monkeypatch
):
    monkeypatch.setattr(ingest, "STORE_LIMIT", 64)
    portal = connected_portal(open_chats=0, operators=2)
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    for n in range(CHATS):
        chat = simulator.create_conversation(portal.screen_name, visitor_name=f"V{n}")["id"]
        simulator.visitor_message(chat, f"Line {n}")
    poison = poison_bodies()
    for name, body in poison.items():
        assert simulator.send_raw_delivery(portal.screen_name, body, event=name) == 1
    deliveries = webhook_receiver.wait_for(2 * CHATS + len(poison), timeout=60)
    assert {b for _, b in deliveries} >= set(poison.values())  # signed by the simulator
    bad = [(h, b) for h, b in deliveries if b in poison.values()]
    good = [(h, b) for h, b in deliveries if b not in poison.values()]
    # The poison in the middle of the stream: each lands in a batch with valid neighbours.
    mixed = good[:40] + bad[:1] + good[40:100] + bad[1:2] + good[100:] + bad[2:]

    async def scenario():
        answers = await post_all(portal, mixed)
        await settled(portal, timeout=60)
        return answers

    answers = run_async(scenario)
    statuses = [answer["status"] for answer in answers]
    assert 503 not in statuses, f"{statuses.count(503)} answered 503"
    assert all(200 <= status < 300 for status in statuses), sorted(set(statuses))

    applied = InboxEvent.objects.filter(portal=portal, state="applied").count()
    assert applied == 2 * CHATS
    assert Chat.objects.filter(portal=portal).count() == CHATS
    assert ChatMessage.objects.filter(chat__portal=portal, text__startswith="Line ").count() == (
        CHATS
    )
    rejected = list(InboxEvent.objects.filter(portal=portal, state="rejected"))
    assert len(rejected) == 3
    reasons = " | ".join(row.error for row in rejected)
    assert "nested too deeply" in reasons
    assert "not valid Unicode" in reasons
    assert "out of range" in reasons
    assert not InboxEvent.objects.filter(portal=portal, state="failed").exists()


def test_the_portal_page_shows_rejected_deliveries_in_words(
    simulator, connected_portal, webhook_receiver, admin_user
):
    portal = connected_portal(open_chats=0)
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    simulator.send_raw_delivery(portal.screen_name, poison_bodies()["surrogate"])
    ((headers, body),) = webhook_receiver.wait_for(1)

    async def scenario():
        return await post_all(portal, [(headers, body)])

    (answer,) = run_async(scenario)
    assert answer["status"] == 200
    client = Client()
    client.force_login(admin_user)
    page = client.get(f"/portals/{portal.pk}/").content.decode()
    assert "1 rejected delivery" in page
    assert "not valid Unicode" in page


@pytest.fixture
def admin_user(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("ada", "ada@example.org", "pw-for-tests-1")


def test_a_locked_database_is_still_a_503_for_the_whole_batch(
    simulator, connected_portal, webhook_receiver, monkeypatch
):
    """503 means "send again and it will work": a database that cannot write right now."""
    from django.db import OperationalError

    portal = connected_portal(open_chats=0)
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    for n in range(3):
        simulator.create_conversation(portal.screen_name, visitor_name=f"L{n}")
    deliveries = webhook_receiver.wait_for(3)

    def locked(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(InboxEvent, "save", locked)
    monkeypatch.setattr(InboxEvent.objects, "bulk_create", locked)

    async def scenario():
        return await post_all(portal, deliveries)

    assert [answer["status"] for answer in run_async(scenario)] == [503] * 3
    monkeypatch.undo()
    assert not InboxEvent.objects.filter(portal=portal).exists()
