"""Supervisor actions against the simulator: what reaches SalesIQ, what the record says."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from dashboard import ingest
from dashboard.actions import services
from dashboard.actions.drain import operator_drain, operator_drain_plan
from dashboard.models import Action, Chat, Operator
from siq_integration import connecting
from tests.support.simulator import a_connected_chat, last_seq, synced

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_superuser("ada", "ada@example.org", "pw-for-tests-1")


def calls_to(simulator, since, suffix):
    return [c for c in simulator.calls(since) if c["path"].endswith(suffix)]


def test_it_transfers_with_department_operator_and_note(simulator, connected_portal, admin):
    portal = synced(connected_portal(open_chats=3, operators=6))
    chat, state = a_connected_chat(simulator, portal)
    target = next(
        o for o in state["operators"] if o["presence"] == "online" and o["id"] != chat.operator_id
    )
    department = state["departments"][1]["id"]
    start = last_seq(simulator)

    action = services.chat_transfer(
        key="k" * 20,
        user=admin,
        chat=chat,
        department_id=department,
        operator_id=target["id"],
        note="VIP – please be quick",
    )

    assert action.outcome == "done", action.message
    (call,) = calls_to(simulator, start, "/transfer")
    assert call["json"] == {
        "department_id": department,
        "operator_id": target["id"],
        "note": "VIP – please be quick",
    }
    # SalesIQ took it; the new operator has not accepted yet: pending, not done.
    assert action.state == "pending" and "waiting for" in action.message
    chat.refresh_from_db()
    assert chat.transfer_status == "initiated"


def test_it_calls_salesiq_once_for_the_same_key(simulator, connected_portal, admin):
    portal = synced(connected_portal(open_chats=3, operators=6))
    chat, _ = a_connected_chat(simulator, portal)
    start = last_seq(simulator)
    first = services.chat_end(key="same-key-1234567890", user=admin, chat=chat)
    second = services.chat_end(key="same-key-1234567890", user=admin, chat=chat)
    assert first.pk == second.pk and first.outcome == "done"
    assert len(calls_to(simulator, start, "/close")) == 1
    assert Action.objects.count() == 1
    chat.refresh_from_db()
    assert chat.status == "ended"


def test_it_says_salesiq_refuses_another_operators_status(simulator, connected_portal, admin):
    portal = synced(connected_portal(open_chats=1, operators=4))
    me = Operator.objects.get(portal=portal, email=f"admin@{portal.screen_name}.example")
    someone = Operator.objects.filter(portal=portal).exclude(pk=me.pk).first()

    mine = services.operator_set_status(
        key="own-status-12345678", user=admin, operator=me, status="busy"
    )
    theirs = services.operator_set_status(
        key="their-status-1234567", user=admin, operator=someone, status="busy"
    )

    assert mine.outcome == "done" and Operator.objects.get(pk=me.pk).status == "busy"
    # The record names the failure by its class; SalesIQ's own code stays in the detail.
    assert theirs.outcome == "refused" and theirs.error_code == "NotOwnStatus"
    assert "only their own status" in theirs.message and "drain" in theirs.message
    assert "code=1016" in theirs.error_detail  # v2 1016 on the status call


def test_it_drains_an_operator_to_colleagues_with_room(simulator, connected_portal, admin):
    portal = synced(connected_portal(open_chats=4, operators=6))
    busy = Chat.objects.filter(portal=portal, status="connected").values_list(
        "operator_id", flat=True
    )
    operator = Operator.objects.get(portal=portal, remote_id=busy.first())
    plan = operator_drain_plan(operator=operator)
    assert plan.moves and all(m.to is None or m.to.pk != operator.pk for m in plan.moves)
    start = last_seq(simulator)

    action = operator_drain(
        key="drain-key-123456789",
        user=admin,
        operator=operator,
        moves=[(m.chat.pk, m.to.pk) for m in plan.movable],
    )

    steps = list(action.steps.order_by("pk"))
    assert len(steps) == len(plan.movable) + 1
    assert len(calls_to(simulator, start, "/transfer")) == len(plan.movable)
    assert all(step.parent_id == action.pk for step in steps)
    # SalesIQ took the transfers; nobody has accepted yet: the drain is pending and says so.
    moving = len(plan.movable)
    assert f"0 of {moving} chat{'s' if moving != 1 else ''} moved so far; waiting for" in (
        action.message
    )
    assert action.state == "pending"


def test_it_completes_the_record_when_salesiq_confirms(
    simulator, connected_portal, webhook_receiver, admin, django_capture_on_commit_callbacks
):
    portal = synced(connected_portal(open_chats=2, operators=5))
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    chat, state = a_connected_chat(simulator, portal)
    target = next(
        o for o in state["operators"] if o["presence"] == "online" and o["id"] != chat.operator_id
    )
    action = services.chat_transfer(
        key="confirm-key-12345678",
        user=admin,
        chat=chat,
        department_id=state["departments"][0]["id"],
        operator_id=target["id"],
    )
    simulator.transfer(chat.remote_id, outcome="accepted")
    deliveries = webhook_receiver.wait_for_events(["conversation.transfer.accepted"])
    for headers, body in deliveries:
        with django_capture_on_commit_callbacks(execute=True):
            receipt = ingest.receive_one(ingest.Delivery(portal.pk, body, headers))
        assert receipt.status == 200
    action.refresh_from_db()
    assert action.confirmation == "conversation.transfer.accepted" and action.confirmed_at
    assert "accepted the transfer" in action.message
