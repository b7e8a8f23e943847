"""What became of an action, in one vocabulary (dashboard.models.ActionState) on every
screen: the drawer's outcome, the audit page, its filter and its CSV. A v2 transfer is
pending until SalesIQ says accepted or declined; a drain follows its steps and is said again
when their confirmations arrive; a drain with nothing to move says so before anyone clicks."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from dashboard import ingest
from dashboard.actions import services, wording
from dashboard.actions.drain import operator_drain, operator_drain_plan
from dashboard.models import Action, Chat, ChatStatus, Operator
from dashboard.realtime import publish
from siq_integration import connecting
from tests.factories import make_portal
from tests.support.history import csv_rows
from tests.support.live import chat, fill
from tests.support.simulator import a_connected_chat, a_department_with_room, synced

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_superuser("ada", "ada@example.org", "pw-for-tests-1")


@pytest.fixture
def published(monkeypatch) -> list[int]:
    """The actions whose outcome was pushed to the acting user's pages."""
    pushed: list[int] = []
    monkeypatch.setattr(
        publish, "send_outcome", lambda action_id, except_page=None: pushed.append(action_id)
    )
    return pushed


def deliver(portal, webhook_receiver, events, capture) -> None:
    """SalesIQ's webhooks for ``events``, received and applied as the webhook view would."""
    for headers, body in webhook_receiver.wait_for_events(events):
        with capture(execute=True):
            assert ingest.receive_one(ingest.Delivery(portal.pk, body, headers)).status == 200


def outcome_of(client, action) -> tuple[str, str]:
    """(data-state, the state's words) of the outcome the drawer shows for ``action``."""
    from django.template.loader import render_to_string

    html = render_to_string("actions/parts.html#outcome", {"action": action})
    state = re.search(r'data-state="([^"]+)"', html).group(1)
    words = re.search(r'<span class="outcome-state">([^<]+)</span>', html).group(1)
    return state, words


def audit_pill(client, action, **query) -> str:
    html = client.get("/audit/", query).content.decode()
    row = html[html.index(f'data-action="{action.pk}"') :]
    row = row[: row.index("</tr>")]
    return re.search(r'<span class="pill pill-(\w+)">([^<]+)</span>', row).groups()


def test_it_says_a_v2_transfer_is_pending_until_salesiq_says_declined_everywhere(
    simulator,
    connected_portal,
    webhook_receiver,
    admin,
    client,
    django_capture_on_commit_callbacks,
):
    portal = synced(connected_portal(open_chats=2, operators=5))
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    chat_, state = a_connected_chat(simulator, portal)
    target = next(
        o for o in state["operators"] if o["presence"] == "online" and o["id"] != chat_.operator_id
    )
    action = services.chat_transfer(
        key="vocabulary-key-1234",
        user=admin,
        chat=chat_,
        department_id=state["departments"][0]["id"],
        operator_id=target["id"],
    )
    client.force_login(admin)
    name = Operator.objects.get(portal=portal, remote_id=target["id"]).shown_name

    # SalesIQ took it; nobody accepted yet: pending in the drawer, the audit and its CSV.
    assert action.outcome == "done" and action.state == "pending"
    assert action.message == f"SalesIQ took the transfer; waiting for {name} to accept."
    assert outcome_of(client, action) == ("pending", "Pending")
    assert audit_pill(client, action) == ("info", "Pending")
    (row,) = csv_rows(client.get("/audit.csv"))
    assert row["outcome"] == "pending"

    simulator.transfer(chat_.remote_id, outcome="rejected")
    deliver(
        portal,
        webhook_receiver,
        ["conversation.transfer.rejected"],
        django_capture_on_commit_callbacks,
    )

    action.refresh_from_db()
    assert action.state == "declined"
    assert action.message == f"{name} declined the transfer; the chat stays where it was."
    assert outcome_of(client, action) == ("declined", "Declined")
    assert audit_pill(client, action) == ("warn", "Declined")
    assert audit_pill(client, action, outcome="declined") == ("warn", "Declined")
    assert client.get("/audit/", {"outcome": "done"}).content.decode().count("data-action=") == 0
    (row,) = csv_rows(client.get("/audit.csv", {"outcome": "declined"}))
    assert row["outcome"] == "declined" and row["id"] == str(action.pk)
    text = client.get("/audit/", {"outcome": "declined"}).content.decode()
    assert "1 action · declined" in text


def own_operator_with_chats(simulator, portal, visitors):
    """The connected user's operator with a chat from each of ``visitors``, stored."""
    me = Operator.objects.get(portal=portal, email=f"admin@{portal.screen_name}.example")
    department = a_department_with_room(simulator, portal, me, need=len(visitors))
    ids = []
    for visitor in visitors:
        conversation = simulator.create_conversation(
            portal.screen_name, department_id=department, visitor_name=visitor
        )["id"]
        simulator.pickup(conversation, me.remote_id)
        ids.append(conversation)
    synced(portal)
    return me, ids


def test_it_says_a_drain_again_when_salesiq_confirms_each_transfer(
    simulator,
    connected_portal,
    webhook_receiver,
    admin,
    client,
    published,
    django_capture_on_commit_callbacks,
):
    portal = synced(connected_portal(open_chats=0, operators=6))
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    me, (ana, bo) = own_operator_with_chats(simulator, portal, ["Ana Draintest", "Bo Draintest"])
    plan = operator_drain_plan(operator=me)
    assert len(plan.movable) == 2
    to = {move.chat.remote_id: move.to.shown_name for move in plan.movable}

    drain = operator_drain(
        key="drain-then-decline-1",
        user=admin,
        operator=me,
        moves=[(move.chat.pk, move.to.pk) for move in plan.movable],
    )
    # Named in the order of the plan (the drain moves chats in that order).
    waiting = " and ".join(dict.fromkeys(move.to.shown_name for move in plan.movable))
    assert drain.state == "pending"
    assert drain.message == (
        f"0 of 2 chats moved so far; waiting for {waiting} to accept. {me.shown_name} is now Busy."
    )

    simulator.transfer(ana, outcome="accepted")
    deliver(
        portal,
        webhook_receiver,
        ["conversation.transfer.accepted"],
        django_capture_on_commit_callbacks,
    )
    drain.refresh_from_db()
    assert drain.message == (
        f"1 of 2 chats moved so far; waiting for {to[bo]} to accept. {me.shown_name} is now Busy."
    )
    assert drain.state == "pending"

    published.clear()
    simulator.transfer(bo, outcome="rejected")
    deliver(
        portal,
        webhook_receiver,
        ["conversation.transfer.rejected"],
        django_capture_on_commit_callbacks,
    )
    drain.refresh_from_db()
    assert drain.message == (
        "1 of 2 chats moved; the transfer of Bo Draintest was declined. "
        f"{me.shown_name} is now Busy."
    )
    assert drain.state == "partial"
    # The step and the drain both reach the acting user's pages.
    step = Action.objects.get(parent=drain, chat_remote_id=bo)
    assert step.state == "declined" and set(published) == {step.pk, drain.pk}
    # And the audit says the same.
    client.force_login(admin)
    assert audit_pill(client, drain) == ("warn", "Partly done")
    assert "the transfer of Bo Draintest was declined" in client.get("/audit/").content.decode()
    (row,) = [r for r in csv_rows(client.get("/audit.csv")) if r["id"] == str(drain.pk)]
    assert row["outcome"] == "partial" and row["message"] == drain.message


def test_it_keeps_the_drain_advice_out_of_a_drains_own_steps(
    simulator, connected_portal, admin, client
):
    portal = synced(connected_portal(open_chats=0, operators=6))
    me = Operator.objects.get(portal=portal, email=f"admin@{portal.screen_name}.example")
    someone = Operator.objects.filter(portal=portal, status="available").exclude(pk=me.pk).first()
    visitor = simulator.create_conversation(
        portal.screen_name, department_id=someone.department_ids[0], visitor_name="Cy Refusal"
    )["id"]
    simulator.pickup(visitor, someone.remote_id)
    synced(portal)
    plan = operator_drain_plan(operator=someone)

    drain = operator_drain(
        key="drain-no-advice-1234",
        user=admin,
        operator=someone,
        moves=[(move.chat.pk, move.to.pk) for move in plan.movable],
    )

    status = Action.objects.get(parent=drain, kind="operator_status")
    assert status.state == "refused" and status.error_code == "NotOwnStatus"
    assert "drain" not in status.message and "drain" not in drain.message
    assert status.message == wording.status_not_own(someone.shown_name, offer_drain=False)
    # On its own the refusal still offers the drain.
    alone = services.operator_set_status(
        key="alone-status-1234567", user=admin, operator=someone, status="busy"
    )
    assert alone.message == wording.status_not_own(someone.shown_name)
    assert "drain their chats" in alone.message


def test_it_says_before_a_drain_that_no_chat_can_move(admin, client):
    portal = make_portal()
    # Asha's chat is in Support, where nobody else is available.
    fill(
        portal,
        [
            chat(
                "c2",
                status=ChatStatus.CONNECTED,
                visitor="Bo",
                operator=("o1", "Asha Rao"),
                department=("d2", "Support"),
            )
        ],
    )
    asha = Operator.objects.get(portal=portal, remote_id="o1")
    client.force_login(admin)

    text = client.get(f"/live/operators/{asha.pk}/drain/").content.decode()
    assert "No chat can move now: nobody available in its department has room." in text
    assert "The drain can only set Asha Rao Busy." in text
    assert 'name="move"' not in text and "Move 0" not in text and "0 of 1" not in text
    assert re.search(r'<span class="when-idle">Set Asha Rao Busy</span>', text)

    # Asha is Busy already: nothing to do at all, said before the click.
    Operator.objects.filter(pk=asha.pk).update(status="busy")
    text = client.get(f"/live/operators/{asha.pk}/drain/").content.decode()
    assert "No chat can move now" in text
    assert "Asha Rao is Busy already. There is nothing to do." in text
    assert 'type="submit"' not in text
    # Sent anyway (an old form): refused in words, and never "0 of 0 chats moved".
    drain = operator_drain(
        key="nothing-to-drain-123", user=admin, operator=Operator.objects.get(pk=asha.pk), moves=[]
    )
    assert drain.state == "refused" and "0 of 0" not in drain.message
    assert drain.message == "Nothing to do: there is no chat to move. Asha Rao is Busy already."


def test_it_says_a_busy_only_drain_without_counting_chats(simulator, connected_portal, admin):
    portal = synced(connected_portal(open_chats=0, operators=4))
    me = Operator.objects.get(portal=portal, email=f"admin@{portal.screen_name}.example")

    drain = operator_drain(key="busy-only-drain-123", user=admin, operator=me, moves=[])

    assert drain.state == "done" and drain.message == f"{me.shown_name} is now Busy."
    assert not Chat.objects.filter(portal=portal, operator_id=me.remote_id).exists()
