"""The simulator's side of issue 16's participant and changed-line events: its control API
makes them happen, its deliveries carry them as our reading of Zoho's pages has it (and the
dashboard's parser reads what it sends), its messages list follows, and life makes them now
and then."""

from __future__ import annotations

import json

import pytest
import requests

from salesiq_simulator import Simulator
from siq_integration import connecting, webhooks
from siq_integration.client import SalesIQClient
from siq_integration.normalised import EventKind, ParticipantRole

pytestmark = pytest.mark.django_db

NEW_EVENTS = [
    "conversation.supervisor.added",
    "conversation.participants.added",
    "conversation.participants.deleted",
    "conversation.message.edited",
    "conversation.message.deleted",
]


def post(simulator, path: str, body: dict | None = None, *, status: int = 200) -> dict:
    answer = requests.post(simulator.base_url + path, json=body or {}, timeout=10)
    assert answer.status_code == status, answer.text
    return answer.json()


def test_it_sends_who_joined_and_changed_lines_as_the_dashboard_reads_them(
    simulator, connected_portal, webhook_receiver
):
    portal = connected_portal(open_chats=0, operators=4)
    assert connecting.register_webhooks(portal, url=webhook_receiver.url)
    operators = simulator.state(portal.screen_name)["portals"][0]["operators"]
    attender, watcher, invited = operators[:3]
    chat = simulator.create_conversation(portal.screen_name, visitor_name="Zoë")["id"]
    scene = f"/_sim/conversations/{chat}"
    post(simulator, f"{scene}/pickup", {"operator_id": attender["id"]})
    post(simulator, f"{scene}/visitor-message", {"text": "Where is my parcel?"})
    post(simulator, f"{scene}/operator-message", {"text": "Let me look"})

    joined = post(simulator, f"{scene}/supervisor-join", {"operator_id": watcher["id"]})
    assert [(p["id"], p["type"]) for p in joined["participants"]] == [(watcher["id"], "supervisor")]
    post(simulator, f"{scene}/supervisor-join", {"operator_id": watcher["id"]}, status=409)
    post(simulator, f"{scene}/participant-add", {"operator_id": invited["id"]})
    left = post(simulator, f"{scene}/participant-remove", {"operator_id": invited["id"]})
    assert [p["id"] for p in left["participants"]] == [watcher["id"]]
    post(simulator, f"{scene}/participant-remove", {"operator_id": invited["id"]}, status=409)
    post(simulator, f"{scene}/participant-remove", {}, status=400)
    post(simulator, f"{scene}/message-edit", {"text": "Let me look it up"})  # the last line
    post(simulator, f"{scene}/message-edit", {"message_id": "99", "text": "x"}, status=404)
    post(simulator, f"{scene}/message-edit", {"message_id": "3"}, status=400)
    post(simulator, f"{scene}/message-delete", {"message_id": "2"})
    post(simulator, f"{scene}/message-edit", {"message_id": "2", "text": "x"}, status=409)

    deliveries = webhook_receiver.wait_for_events(NEW_EVENTS)
    bodies = {json.loads(body)["event"]: body for _, body in deliveries}
    events = {name: webhooks.parse("v2", bodies[name]) for name in NEW_EVENTS}
    for name in NEW_EVENTS:
        document = json.loads(bodies[name])
        assert document["entity_type"] == "conversation" and document["entity_id"] == chat
        assert events[name].chat_id == chat and events[name].occurred_at is not None

    supervisor = json.loads(bodies["conversation.supervisor.added"])["entity"]["supervisor"]
    assert supervisor == {
        "id": watcher["id"],
        "name": watcher["name"],
        "email_id": watcher["email"],
        "type": "supervisor",
    }
    (person,) = events["conversation.supervisor.added"].participants
    assert (person.id, person.role) == (watcher["id"], ParticipantRole.SUPERVISOR)
    added = events["conversation.participants.added"]
    assert added.kind is EventKind.PARTICIPANTS_ADDED
    assert [(p.id, p.role) for p in added.participants] == [(invited["id"], "operator")]
    removed = events["conversation.participants.deleted"]
    assert [p.id for p in removed.participants] == [invited["id"]]

    edited = events["conversation.message.edited"].message_change
    assert (edited.message_id, edited.text, edited.deleted) == ("3", "Let me look it up", False)
    line = json.loads(bodies["conversation.message.edited"])["entity"]["message"]
    assert line["edited_time"] and line["message"] == {"text": "Let me look it up"}
    deleted = events["conversation.message.deleted"].message_change
    assert (deleted.message_id, deleted.text, deleted.deleted) == ("2", "", True)
    assert "parcel" not in bodies["conversation.message.deleted"].decode()

    # The messages list follows: the edited text, and no deleted line.
    lines = SalesIQClient(portal).list_messages(chat)
    assert [(m.id, m.text) for m in lines] == [
        ("1", lines[0].text),
        ("3", "Let me look it up"),
    ]


def test_life_now_and_then_has_a_supervisor_join_and_a_line_edited_or_deleted():
    sim = Simulator(seed=3, life=False, start_time=1_750_000_000.0)
    sim.add_portal("busy", dialect="v2", operators=8, open_chats=12)
    happened: list[str] = []
    world = sim.world
    previous = world.on_event
    world.on_event = lambda event: (happened.append(event.kind), previous(event))
    for _ in range(120):
        sim.step(60)
    assert "supervisor_added" in happened
    assert {"message_edited", "message_deleted"} & set(happened)
    # Most of life is what it always was: lines, pickups, arrivals.
    assert happened.count("visitor_message") > 20 * happened.count("supervisor_added")
