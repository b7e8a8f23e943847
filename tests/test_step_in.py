"""Stepping in against the simulator: message a visitor, pick up and assign a waiting chat,
canned lines, and a portal connected before messaging was asked for. What reached SalesIQ
(the simulator's call log and state), what the record says, who may do it."""

from __future__ import annotations

from html import escape

import pytest
from django.urls import reverse

from dashboard import ingest
from dashboard.actions import services, wording
from dashboard.actions.assign import best_assignee
from dashboard.models import Action, CannedLine, Chat, ChatMessage, Operator
from siq_integration import connecting, oauth
from tests.factories import make_admin, make_supervisor, make_viewer
from tests.support.simulator import a_connected_chat, last_seq, synced

pytestmark = pytest.mark.django_db


def calls_to(simulator, since, suffix):
    return [c for c in simulator.calls(since) if c["path"].endswith(suffix)]


def me_of(portal) -> Operator:
    return Operator.objects.get(portal=portal, email=f"admin@{portal.screen_name}.example")


def a_waiting_chat(simulator, portal, department_id: str) -> Chat:
    made = simulator.create_conversation(
        portal.screen_name, department_id=department_id, visitor_name="Wanda Waits"
    )
    synced(portal)
    return Chat.objects.get(portal=portal, remote_id=made["id"])


def test_it_messages_the_visitor_as_the_connected_user(simulator, connected_portal):
    portal = synced(connected_portal(open_chats=2, operators=4))
    admin = make_admin()
    chat, _ = a_connected_chat(simulator, portal)
    start = last_seq(simulator)

    action = services.chat_message(key="m" * 20, user=admin, chat=chat, text="  On it — one sec ")

    assert action.outcome == "done", action.message
    (call,) = calls_to(simulator, start, "/messages")
    assert call["method"] == "POST" and call["json"] == {"text": "On it — one sec"}
    assert action.kind == "message" and action.params == {"text": "On it — one sec"}
    assert wording.acting_user(portal) in action.message
    state = simulator.state(portal.screen_name)["portals"][0]
    now = next(c for c in state["conversations"] if c["id"] == chat.remote_id)
    assert now["last_message"] == {**now["last_message"], "text": "On it — one sec"}


def test_it_sends_once_for_the_same_key_and_refuses_an_empty_line(simulator, connected_portal):
    portal = synced(connected_portal(open_chats=2, operators=4))
    admin = make_admin()
    chat, _ = a_connected_chat(simulator, portal)
    start = last_seq(simulator)
    first = services.chat_message(key="same-message-key-123", user=admin, chat=chat, text="Hi")
    second = services.chat_message(key="same-message-key-123", user=admin, chat=chat, text="Hi")
    assert first.pk == second.pk
    assert len(calls_to(simulator, start, "/messages")) == 1

    empty = services.chat_message(key="empty-message-key-12", user=admin, chat=chat, text="   ")
    assert empty.outcome == "refused" and "Nothing was sent" in empty.message
    assert len(calls_to(simulator, start, "/messages")) == 1


def test_the_message_webhook_confirms_the_line_and_puts_it_in_the_transcript(
    simulator, connected_portal, webhook_receiver, django_capture_on_commit_callbacks
):
    portal = synced(connected_portal(open_chats=2, operators=4))
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    admin = make_admin()
    chat, _ = a_connected_chat(simulator, portal)
    action = services.chat_message(key="w" * 20, user=admin, chat=chat, text="Confirm me")
    # The delivery SalesIQ makes for that line, received as the webhook view receives it.
    for headers, body in webhook_receiver.wait_for_events(["conversation.operator.replied"]):
        with django_capture_on_commit_callbacks(execute=True):
            receipt = ingest.receive_one(ingest.Delivery(portal.pk, body, headers))
        assert receipt.status == 200

    action.refresh_from_db()
    assert action.confirmation == "conversation.operator.replied"
    assert "delivered" in action.message
    assert ChatMessage.objects.filter(chat=chat, text="Confirm me").count() == 1


def test_a_portal_connected_before_messaging_says_reconnect_and_sends_nothing(
    simulator, connected_portal, client
):
    portal = synced(connected_portal(open_chats=2, operators=4))
    portal.granted_scopes = ",".join(oauth.scopes_for("v2"))  # the consent before this change
    portal.save()
    admin = make_admin()
    chat, _ = a_connected_chat(simulator, portal)
    start = last_seq(simulator)

    action = services.chat_message(key="s" * 20, user=admin, chat=chat, text="Hello")

    assert action.outcome == "refused" and action.message == wording.MESSAGING_NOT_ALLOWED
    assert "reconnect it to allow messaging" in action.message
    assert calls_to(simulator, start, "/messages") == []
    client.force_login(admin)
    page = client.get(reverse("portal_detail", args=[portal.pk])).content.decode()
    assert "Reconnect to allow messaging" in page
    drawer = client.get(reverse("chat_drawer", args=[chat.pk])).content.decode()
    assert "data-reconnect-to-message" in drawer and "Transfer…" in drawer
    # Everything else keeps working with that grant.
    ended = services.chat_end(key="e" * 20, user=admin, chat=chat)
    assert ended.outcome == "done"


def test_it_picks_up_a_waiting_chat_and_refuses_one_picked_up_already(simulator, connected_portal):
    portal = synced(connected_portal(open_chats=1, operators=4))
    admin = make_admin()
    me = me_of(portal)
    chat = a_waiting_chat(simulator, portal, me.department_ids[0])
    start = last_seq(simulator)

    action = services.chat_pickup(key="p" * 20, user=admin, chat=chat)

    assert action.outcome == "done", action.message
    (call,) = calls_to(simulator, start, "/pickup")
    assert call["method"] == "PUT"
    chat.refresh_from_db()
    assert chat.status == "connected" and chat.operator_id == me.remote_id
    again = services.chat_pickup(key="q" * 20, user=admin, chat=chat)
    assert again.outcome == "refused" and "already picked up" in again.message
    assert len(calls_to(simulator, start, "/pickup")) == 1


def test_it_assigns_a_waiting_chat_to_the_best_available_operator(simulator, connected_portal):
    portal = synced(connected_portal(open_chats=1, operators=6))
    admin = make_admin()
    me = me_of(portal)
    department = me.department_ids[0]
    for operator in Operator.objects.filter(portal=portal):
        if department in operator.department_ids:
            simulator.set_operator_status(operator.remote_id, "online")
    chat = a_waiting_chat(simulator, portal, department)
    best = best_assignee(chat)
    assert best is not None and best.operator.status == "available"
    assert department in best.operator.department_ids
    assert best.operator.shown_name in best.why and "free seat" in best.why
    start = last_seq(simulator)

    action = services.chat_transfer(
        key="a" * 20,
        user=admin,
        chat=chat,
        department_id=department,
        operator_id=best.operator.remote_id,
        assign=True,
    )

    assert action.outcome == "done", action.message
    (call,) = calls_to(simulator, start, "/transfer")
    assert call["json"] == {"department_id": department, "operator_id": best.operator.remote_id}
    assert action.params["assign"] is True


def test_best_is_most_free_seats_then_longest_idle(simulator, connected_portal):
    from dataclasses import replace
    from datetime import timedelta

    from django.utils import timezone

    from dashboard import selectors

    portal = synced(connected_portal(open_chats=0, operators=4))
    department = me_of(portal).department_ids[0]
    chat = a_waiting_chat(simulator, portal, department)
    # The simulator spreads its operators over departments at random: all serve this one here.
    for operator in Operator.objects.filter(portal=portal):
        if department not in operator.department_ids:
            operator.department_ids = [*operator.department_ids, department]
            operator.save(update_fields=["department_ids"])
    views = [
        view
        for view in selectors.operator_views([portal])
        if department in view.operator.department_ids
    ][:3]
    assert len(views) >= 2
    now = timezone.now()
    for n, view in enumerate(views):
        view.operator.status = "available"
        view.operator.max_chats = 4
        view.operator.status_since = now - timedelta(minutes=n)
    views = [replace(view, load=1) for view in views]
    # Same free seats: the one available the longest wins.
    assert best_assignee(chat, views).operator == views[-1].operator
    # More free seats beats idle time.
    views[0] = replace(views[0], load=0)
    assert best_assignee(chat, views).operator == views[0].operator
    # Nobody available: no suggestion (the row opens the picker).
    for view in views:
        view.operator.status = "busy"
    assert best_assignee(chat, views) is None


def test_a_viewer_is_refused_with_403_and_nothing_reaches_salesiq(
    simulator, connected_portal, client
):
    portal = synced(connected_portal(open_chats=2, operators=4))
    viewer = make_viewer("vic", portal)
    chat, _ = a_connected_chat(simulator, portal)
    client.force_login(viewer)
    start = last_seq(simulator)
    for name, fields in (
        ("chat_message", {"text": "Hi"}),
        ("chat_pickup", {}),
        ("chat_assign", {"operator_id": chat.operator_id}),
    ):
        answer = client.post(
            reverse(name, args=[chat.pk]), {"idempotency_key": f"{name}-key-123456", **fields}
        )
        assert answer.status_code == 403, name
    assert [c for c in simulator.calls(start) if c["method"] != "GET"] == []
    assert not Action.objects.exists()
    drawer = client.get(reverse("chat_drawer", args=[chat.pk])).content.decode()
    assert "message-form" not in drawer and "data-step-in" not in drawer


def test_an_admin_sets_the_canned_lines_and_the_drawer_offers_them(
    simulator, connected_portal, client
):
    portal = synced(connected_portal(open_chats=2, operators=4))
    admin = make_admin()
    supervisor = make_supervisor("sam", portal)
    chat, _ = a_connected_chat(simulator, portal)
    url = reverse("portal_canned_lines", args=[portal.pk])
    client.force_login(admin)

    too_long = "x" * (CannedLine.MAX_LENGTH + 1)
    refused = client.post(url, {"lines": f"Hello!\n{too_long}"})
    assert refused.status_code == 200
    assert "Line 2 is 1,001 characters long" in refused.content.decode()
    assert too_long in refused.content.decode()  # what was typed is kept
    assert not CannedLine.objects.exists()

    saved = client.post(url, {"lines": "Hello! How can I help?\n\n  One moment, please. \n"})
    assert saved.status_code == 302
    assert list(CannedLine.objects.values_list("text", flat=True)) == [
        "Hello! How can I help?",
        "One moment, please.",
    ]

    client.force_login(supervisor)
    assert client.get(url).status_code == 403  # Admins only
    drawer = client.get(reverse("chat_drawer", args=[chat.pk])).content.decode()
    assert "One moment, please." in drawer and "data-canned" in drawer
    assert f"sends as {escape(wording.acts_as(portal))}" in drawer
    # Once the dashboard knows who the grant acts as, the button names them.
    portal.connected_user_email = me_of(portal).email
    portal.save()
    drawer = client.get(reverse("chat_drawer", args=[chat.pk])).content.decode()
    name = escape(me_of(portal).shown_name)
    assert f"sends as {name}, the portal&#x27;s connected user" in drawer


def test_the_audit_names_the_chat_and_the_line_sent(simulator, connected_portal, client):
    portal = synced(connected_portal(open_chats=2, operators=4))
    admin = make_admin()
    chat, _ = a_connected_chat(simulator, portal)
    services.chat_message(key="audit-message-key-12", user=admin, chat=chat, text="Audited line")
    client.force_login(admin)
    page = client.get(reverse("audit")).content.decode()
    assert "Message visitor" in page
    assert "message: Audited line" in page
    assert escape(chat.visitor_name) in page


def test_the_attender_webhook_confirms_the_pickup_by_the_connected_user_only(
    simulator, connected_portal, webhook_receiver, django_capture_on_commit_callbacks
):
    portal = synced(connected_portal(open_chats=1, operators=4))
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    me = me_of(portal)
    portal.connected_user_email = me.email
    portal.save()
    admin = make_admin()
    mine = a_waiting_chat(simulator, portal, me.department_ids[0])
    theirs = a_waiting_chat(simulator, portal, me.department_ids[0])
    ours = services.chat_pickup(key="pickup-confirm-12345", user=admin, chat=mine)
    # A pickup of the other chat still waits for SalesIQ here when a colleague takes it there.
    pending = Action.objects.create(
        key="pickup-pending-12345",
        user=admin,
        username="ada",
        portal=portal,
        kind="pickup",
        chat=theirs,
        chat_remote_id=theirs.remote_id,
    )
    other = Operator.objects.filter(portal=portal).exclude(pk=me.pk).first()
    simulator.pickup(theirs.remote_id, other.remote_id)
    webhook_receiver.wait_for(4)  # two chats created, two picked up
    for headers, body in list(webhook_receiver.deliveries):
        with django_capture_on_commit_callbacks(execute=True):
            ingest.receive_one(ingest.Delivery(portal.pk, body, headers))

    ours.refresh_from_db()
    pending.refresh_from_db()
    assert ours.confirmation == "conversation.attender.updated"
    assert "confirmed the pickup" in ours.message
    assert pending.confirmation == "" and pending.outcome == "pending"


def test_a_reference_portal_messages_but_offers_no_pickup(simulator, connected_portal, client):
    portal = synced(connected_portal(dialect="reference", open_chats=1, operators=4))
    admin = make_admin()
    me = me_of(portal)
    chat = a_waiting_chat(simulator, portal, me.department_ids[0])
    start = last_seq(simulator)

    refused = services.chat_pickup(key="reference-pickup-123", user=admin, chat=chat)
    sent = services.chat_message(key="reference-message-12", user=admin, chat=chat, text="Hej")

    assert refused.outcome == "refused" and "no call to pick up" in refused.message
    assert calls_to(simulator, start, "/pickup") == []
    assert sent.outcome == "done", sent.message
    (call,) = calls_to(simulator, start, f"/chats/{chat.remote_id}/messages")
    assert call["json"] == {"message": "Hej", "type": "text"}
    client.force_login(admin)
    drawer = client.get(reverse("chat_drawer", args=[chat.pk])).content.decode()
    assert 'data-step-in="pickup"' not in drawer and 'data-step-in="message"' in drawer


def test_it_does_not_assign_a_chat_picked_up_meanwhile(simulator, connected_portal):
    portal = synced(connected_portal(open_chats=1, operators=4))
    admin = make_admin()
    me = me_of(portal)
    chat = a_waiting_chat(simulator, portal, me.department_ids[0])
    colleague = Operator.objects.filter(portal=portal).exclude(pk=me.pk).first()
    simulator.pickup(chat.remote_id, colleague.remote_id)
    synced(portal)  # the poll (or its webhook) says so before the click lands
    start = last_seq(simulator)

    action = services.chat_transfer(
        key="assign-too-late-1234",
        user=admin,
        chat=chat,
        department_id=chat.department_id,
        operator_id=me.remote_id,
        assign=True,
    )

    assert action.outcome == "refused" and "picked up this chat meanwhile" in action.message
    assert colleague.shown_name in action.message
    assert calls_to(simulator, start, "/transfer") == []
