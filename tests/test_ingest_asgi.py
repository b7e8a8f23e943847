"""Webhook → inbox → live state → websocket message, through the real ASGI application,
with the deliveries the simulator really signs and sends, in both dialects."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.contrib.auth import get_user_model

from dashboard import ingest
from dashboard.alerts import lifecycle
from dashboard.asgi import application
from dashboard.models import Chat, ChatMessage, InboxEvent, Operator, PortalSync
from dashboard.realtime import publish
from dashboard.state import apply
from siq_integration import connecting
from siq_integration.client import SalesIQClient
from tests.support.asgi import browser_headers, delivery_headers, run_async, settled

pytestmark = pytest.mark.django_db(transaction=True)


async def post(portal, headers, body):
    http = HttpCommunicator(
        application,
        "POST",
        f"/webhooks/salesiq/{portal.pk}/",
        body=body,
        headers=delivery_headers(headers),
    )
    return await http.get_response(timeout=10)


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_superuser("ada", "ada@example.org", "pw-for-tests-1")


def scenes_v2(simulator, portal):
    """Every v2 event the dashboard registers for, in a believable order."""
    state = simulator.state(portal.screen_name)["portals"][0]
    ops = [o for o in state["operators"] if o["presence"] == "online"]
    first, second = ops[0]["id"], ops[1]["id"]
    other_department = state["departments"][1]["id"]
    chat = simulator.create_conversation(portal.screen_name, visitor_name="Zoë <b>VIP</b>")["id"]
    simulator.pickup(chat, first)  # attender.updated
    simulator.visitor_message(chat, "Hallo? <script>alert(1)</script>")  # visitor.replied
    simulator.operator_message(chat, "Hi Zoë, how can I help?")  # operator.replied
    simulator.transfer(chat, department_id=other_department, operator_id=second, outcome="accepted")
    others = [o["id"] for o in state["operators"] if o["id"] not in (first, second)]
    simulator.add_participant(chat, others[0], role="supervisor")  # supervisor.added
    simulator.add_participant(chat, others[1])  # participants.added
    simulator.remove_participant(chat, others[1])  # participants.deleted
    simulator.edit_message(chat, None, "Hi Zoë, how may I help?")  # message.edited
    simulator.delete_message(chat, "2")  # message.deleted (the line after the question)
    refused = simulator.create_conversation(portal.screen_name)["id"]
    simulator.pickup(refused, first)
    simulator.transfer(
        refused, department_id=other_department, operator_id=second, outcome="rejected"
    )
    simulator.end(chat)  # completed
    simulator.rate(chat, 2, "Too slow")  # rated
    missed = simulator.create_conversation(portal.screen_name)["id"]
    simulator.miss(missed)  # missed
    simulator.update_operator(first, nick_name="Asha R.")  # operator.updated
    return chat, refused, missed, first


def scenes_reference(simulator, portal):
    state = simulator.state(portal.screen_name)["portals"][0]
    op = state["operators"][0]["id"]
    chat = simulator.create_conversation(portal.screen_name, visitor_name="José <i>x</i>")["id"]
    simulator.pickup(chat, op)  # (no webhook in this dialect: polling shows pickups)
    simulator.visitor_message(chat, "¿Hola?")  # message.received
    simulator.operator_message(chat, "Hola José")  # message.received
    simulator.set_operator_status(op, "away")  # operator.status_changed
    simulator.end(chat)  # chat.ended
    simulator.rate(chat, 5, "¡Genial!")  # chat.rating
    missed = simulator.create_conversation(portal.screen_name)["id"]
    simulator.miss(missed)  # chat.missed
    return chat, missed, op


def replay(admin, portal, deliveries):
    """Post each captured delivery to the ASGI app while a browser socket listens."""
    outcomes = []
    headers_of_browser = browser_headers(admin)

    async def scenario():
        ws = WebsocketCommunicator(
            application, f"/ws/live/?portals={portal.pk}", headers=headers_of_browser
        )
        connected, _ = await ws.connect(timeout=10)
        assert connected
        snapshot = await ws.receive_from(timeout=10)
        assert 'id="chats-body"' in snapshot
        settled = sync_to_async(
            lambda: not InboxEvent.objects.filter(portal=portal, state="pending").exists()
        )
        for headers, body in deliveries:
            response = await post(portal, headers, body)
            # What one delivery pushes: its own change, and maybe the alerts it raised.
            pushed = [await ws.receive_from(timeout=10)]
            for _ in range(200):
                if await settled():
                    break
                await asyncio.sleep(0.05)
            while not await ws.receive_nothing(timeout=0.2):
                pushed.append(await ws.receive_from(timeout=1))
            outcomes.append((json.loads(body)["event"], response["status"], "".join(pushed)))
        await ws.disconnect()

    run_async(scenario)
    return outcomes


def test_it_applies_every_v2_event_and_pushes_it_live(
    simulator, connected_portal, webhook_receiver, admin
):
    portal = connected_portal(open_chats=0, operators=4)
    assert connecting.register_webhooks(portal, url=webhook_receiver.url)
    chat, refused, missed, operator = scenes_v2(simulator, portal)
    deliveries = webhook_receiver.wait_for_events(connecting.V2_WEBHOOK_EVENTS)

    outcomes = replay(admin, portal, deliveries)

    assert all(status == 200 for _, status, _ in outcomes)
    assert InboxEvent.objects.filter(portal=portal, state="applied").count() == len(deliveries)
    created = next(pushed for name, _, pushed in outcomes if name == "conversation.created")
    row = Chat.objects.get(remote_id=chat)
    assert f'id="chat-{row.pk}"' in created
    assert "Zoë &lt;b&gt;VIP&lt;/b&gt;" in created and "<b>VIP</b>" not in created
    completed = next(pushed for name, _, pushed in outcomes if name == "conversation.completed")
    assert f'<tr id="chat-{row.pk}" hx-swap-oob="delete">' in completed
    assert (row.status, row.rating, row.feedback) == ("ended", 2, "Too slow")
    assert Chat.objects.get(remote_id=refused).status == "connected"
    assert Chat.objects.get(remote_id=missed).status == "missed"
    assert Operator.objects.get(remote_id=operator).nick_name == "Asha R."
    # Who else is in the chat, and its changed lines, reach the open drawers live.
    joined = next(p for name, _, p in outcomes if name == "conversation.supervisor.added")
    assert f'id="drawer-people-{row.pk}"' in joined and "(supervisor)" in joined
    left = next(p for name, _, p in outcomes if name == "conversation.participants.deleted")
    assert f'id="drawer-people-{row.pk}"' in left
    edited = next(p for name, _, p in outcomes if name == "conversation.message.edited")
    assert "Hi Zoë, how may I help?" in edited and ">edited<" in edited
    gone = next(p for name, _, p in outcomes if name == "conversation.message.deleted")
    assert "Message deleted" in gone and "alert(1)" not in gone


def test_it_applies_every_reference_event_and_pushes_it_live(
    simulator, connected_portal, webhook_receiver, admin
):
    portal = connected_portal(dialect="reference", open_chats=0, operators=3)
    assert connecting.register_webhooks(portal, url=webhook_receiver.url)
    # Operators come from polling; presence changes then arrive by webhook.
    polled = SalesIQClient(portal).list_operators()
    apply.apply_operators(portal, polled, taken_at=datetime(2020, 1, 1, tzinfo=UTC))
    chat, missed, operator = scenes_reference(simulator, portal)
    deliveries = webhook_receiver.wait_for_events(connecting.REFERENCE_WEBHOOK_EVENTS)

    outcomes = replay(admin, portal, deliveries)

    assert all(status == 200 for _, status, _ in outcomes)
    row = Chat.objects.get(remote_id=chat)
    assert (row.status, row.rating) == ("ended", 5)
    assert row.last_message_text == "Hola José"
    assert Chat.objects.get(remote_id=missed).status == "missed"
    started = next(pushed for name, _, pushed in outcomes if name == "chat.started")
    assert "José &lt;i&gt;x&lt;/i&gt;" in started
    away = Operator.objects.get(portal=portal, remote_id=operator)
    assert (away.status, away.source) == ("away", "webhook")
    presence = next(pushed for name, _, pushed in outcomes if name == "operator.status_changed")
    assert f'id="op-{away.pk}"' in presence


def test_it_changes_nothing_for_a_duplicate_or_a_replay(
    simulator, connected_portal, webhook_receiver, admin
):
    portal = connected_portal(open_chats=0)
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    simulator.create_conversation(portal.screen_name)
    ((headers, body),) = webhook_receiver.wait_for(1)

    async def scenario():
        first = await post(portal, headers, body)
        again = await post(portal, headers, body)
        return first, again

    first, again = run_async(scenario)
    assert first["status"] == again["status"] == 200
    assert json.loads(again["body"])["duplicate"] is True
    assert InboxEvent.objects.filter(portal=portal).count() == 1
    assert Chat.objects.filter(portal=portal).count() == 1


def test_it_keeps_the_newer_state_when_deliveries_arrive_out_of_order(
    simulator, connected_portal, webhook_receiver, admin
):
    portal = connected_portal(open_chats=0, operators=3)
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    chat = simulator.create_conversation(portal.screen_name)["id"]
    simulator.pickup(chat)
    simulator.end(chat)
    deliveries = webhook_receiver.wait_for(3)

    async def scenario():
        for headers, body in reversed(deliveries):
            assert (await post(portal, headers, body))["status"] == 200
        await settled(portal)  # applied after the answers, off their path

    run_async(scenario)
    row = Chat.objects.get(remote_id=chat)
    assert row.status == "ended" and row.attended_at is not None


def test_it_refuses_bad_signatures_and_malformed_bodies_and_keeps_unknown_events(
    simulator, connected_portal, webhook_receiver, admin
):
    portal = connected_portal(open_chats=0)
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    simulator.create_conversation(portal.screen_name)
    ((headers, body),) = webhook_receiver.wait_for(1)

    async def scenario():
        tampered = await post(portal, headers, body.replace(b"waiting", b"connected"))
        unsigned = await post(portal, {"content-type": "application/json"}, body)
        return tampered, unsigned

    tampered, unsigned = run_async(scenario)
    assert tampered["status"] == unsigned["status"] == 401
    assert not InboxEvent.objects.filter(portal=portal).exists()
    assert not Chat.objects.filter(portal=portal).exists()
    portal.refresh_from_db()
    assert portal.last_webhook_at is None  # refused: counted apart, not webhook activity
    assert PortalSync.objects.get(portal=portal).refused_deliveries == 2

    # Malformed and unknown events need a valid signature to get that far: use reference HMAC.
    from siq_integration import webhooks

    ref = connected_portal(dialect="reference", open_chats=0)
    connecting.register_webhooks(ref, url=webhook_receiver.url)
    ref.refresh_from_db()
    secret = ref.get_webhook_secret()

    def signed(raw: bytes) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "x-salesiq-signature": webhooks.sign_reference(raw, secret),
        }

    unknown_body = json.dumps(
        {"event": "lead.created", "timestamp": "2026-11-22T09:00:00Z", "data": {"lead_id": "1"}}
    ).encode()

    async def scenario2():
        malformed = await post(ref, signed(b"{not json"), b"{not json")
        unknown = await post(ref, signed(unknown_body), unknown_body)
        return malformed, unknown

    malformed, unknown = run_async(scenario2)
    # Signed but unreadable: kept as rejected and acknowledged, so SalesIQ stops retrying.
    assert malformed["status"] == 200
    assert json.loads(malformed["body"])["ok"] is False
    rejected = InboxEvent.objects.get(portal=ref, state="rejected")
    assert "not the JSON SalesIQ sends" in rejected.error
    assert unknown["status"] == 200
    stored = InboxEvent.objects.exclude(state="rejected").get(portal=ref)
    assert (stored.state, stored.event_name) == ("unknown", "lead.created")
    sync = PortalSync.objects.get(portal=ref)
    assert (sync.unknown_events, sync.last_unknown_event) == (1, "lead.created")


def test_it_refuses_anonymous_sockets_and_portals_not_yours(connected_portal, admin):
    portal = connected_portal()
    viewer = get_user_model().objects.create_user("vic", password="pw-for-tests-1")

    async def scenario():
        anonymous = WebsocketCommunicator(
            application, "/ws/live/", headers=[(b"origin", b"http://localhost")]
        )
        ok, _ = await anonymous.connect(timeout=10)
        assert not ok
        stranger = WebsocketCommunicator(
            application,
            f"/ws/live/?portals={portal.pk}",
            headers=await sync_to_async(browser_headers)(viewer),
        )
        ok, _ = await stranger.connect(timeout=10)
        assert not ok
        foreign_origin = WebsocketCommunicator(
            application,
            "/ws/live/",
            headers=[h for h in await sync_to_async(browser_headers)(admin) if h[0] != b"origin"]
            + [(b"origin", b"http://evil.example")],
        )
        ok, _ = await foreign_origin.connect(timeout=10)
        assert not ok

    run_async(scenario)


def test_it_skips_the_snapshot_for_a_page_that_is_still_current(connected_portal, admin):
    import time

    from django.utils import timezone

    portal = connected_portal(open_chats=2)
    apply.apply_chats(
        portal,
        SalesIQClient(portal).list_open_conversations(),
        taken_at=timezone.now(),
        complete=True,
    )
    time.sleep(0.01)
    just_rendered = int(time.time() * 1000)
    headers = browser_headers(admin)

    async def connect(since):
        ws = WebsocketCommunicator(
            application, f"/ws/live/?portals={portal.pk}&since={since}", headers=headers
        )
        ok, _ = await ws.connect(timeout=10)
        assert ok
        first = await ws.receive_from(timeout=10)
        await ws.disconnect()
        return first

    async def connect_current():
        return await connect(just_rendered)

    async def connect_stale():
        return await connect(just_rendered - 60_000)

    current = run_async(connect_current)
    assert 'id="portal-metas"' in current and 'id="chats-body"' not in current  # freshness only
    changed = run_async(connect_stale)
    assert 'id="chats-body"' in changed  # changed since: the whole snapshot


def stored_unapplied(portal, deliveries, monkeypatch) -> list[int]:
    """Store ``deliveries`` without applying them; their inbox ids, in arrival order."""
    monkeypatch.setattr(ingest, "schedule", lambda event_id: None)
    for headers, body in deliveries:
        assert ingest.receive_one(ingest.Delivery(portal.pk, body, headers)).status == 200
    return list(
        InboxEvent.objects.filter(portal=portal).order_by("pk").values_list("pk", flat=True)
    )


def test_it_applies_a_burst_together_once_each_in_order_and_publishes_it_once(
    simulator, connected_portal, webhook_receiver, monkeypatch
):
    portal = connected_portal(open_chats=0, operators=3)
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    chat = simulator.create_conversation(portal.screen_name, visitor_name="Burst")["id"]
    simulator.pickup(chat)
    simulator.visitor_message(chat, "First line")
    simulator.visitor_message(chat, "Second line")
    other = simulator.create_conversation(portal.screen_name)["id"]
    simulator.end(other)
    stored = stored_unapplied(portal, webhook_receiver.wait_for(6), monkeypatch)
    ingest.apply_stored(stored[0])  # one applied alone already: not applied again

    with (
        mock.patch.object(publish, "publish") as published,
        mock.patch.object(lifecycle, "on_changes") as on_changes,
    ):
        assert ingest.apply_stored_together(stored) == len(stored) - 1

    assert published.call_count == 1 and on_changes.call_count == 1
    (changes,) = published.call_args.args
    assert changes.chats == set(Chat.objects.filter(portal=portal).values_list("pk", flat=True))
    assert set(InboxEvent.objects.filter(portal=portal).values_list("state", flat=True)) == {
        "applied"
    }
    row = Chat.objects.get(remote_id=chat)
    assert (row.status, row.last_message_text) == ("connected", "Second line")
    assert Chat.objects.get(remote_id=other).status == "ended"


def test_it_keeps_one_failing_event_of_a_burst_to_itself(
    simulator, connected_portal, webhook_receiver, monkeypatch
):
    portal = connected_portal(open_chats=0, operators=3)
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    chat = simulator.create_conversation(portal.screen_name, visitor_name="Burst")["id"]
    simulator.pickup(chat)
    simulator.visitor_message(chat, "A line")
    stored = stored_unapplied(portal, webhook_receiver.wait_for(3), monkeypatch)
    real_apply = apply.apply_event

    def picky(portal, event, **kwargs):
        if event.name == "conversation.attender.updated":
            raise RuntimeError("this one cannot be applied")
        return real_apply(portal, event, **kwargs)

    monkeypatch.setattr(apply, "apply_event", picky)
    with mock.patch.object(publish, "publish") as published:
        assert ingest.apply_stored_together(stored) == len(stored) - 1
    assert published.call_count == 1
    states = dict(InboxEvent.objects.filter(portal=portal).values_list("event_name", "state"))
    assert states["conversation.attender.updated"] == "failed"
    assert states["conversation.created"] == states["conversation.visitor.replied"] == "applied"
    assert ChatMessage.objects.filter(chat__remote_id=chat, text="A line").exists()


@pytest.mark.parametrize("lane_counts", [True, False])
def test_the_lane_counts_what_it_applied_when_the_worker_runs_beside_it(
    simulator, connected_portal, webhook_receiver, admin, monkeypatch, lane_counts
):
    """Where the worker runs in the same process (`serve`), the lane counts the figures of
    what it applied once idle and hands what moved to the worker's queues job; elsewhere it
    leaves the chats marked for the worker's own count."""
    from dashboard.figures import counting
    from dashboard.models import ServiceTally

    monkeypatch.setattr(ingest, "LANE_COUNTS", lane_counts)
    monkeypatch.setattr(counting, "handed", counting.Handed())
    portal = connected_portal(open_chats=0, operators=3)
    assert connecting.register_webhooks(portal, url=webhook_receiver.url)
    taken = datetime.now(UTC)
    apply.apply_operators(portal, SalesIQClient(portal).list_operators(), taken_at=taken)
    chat = simulator.create_conversation(portal.screen_name, visitor_name="Counted")["id"]
    simulator.pickup(chat)
    deliveries = webhook_receiver.wait_for(2)

    replay(admin, portal, deliveries)

    row = Chat.objects.get(remote_id=chat)
    day = ServiceTally.objects.filter(portal=portal, span="day", department_id=row.department_id)
    departments, operators = counting.handed.take(portal.pk)
    if lane_counts:
        assert not row.needs_counting
        assert [(t.offered, t.answered) for t in day] == [(1, 1)]
        assert departments == {row.department_id}
        assert operators == {Operator.objects.get(portal=portal, remote_id=row.operator_id).pk}
    else:
        assert row.needs_counting and not day.exists()
        assert (departments, operators) == (set(), set())
