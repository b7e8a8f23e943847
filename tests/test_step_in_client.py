"""Send Message (Operator) and Pick up Chat: the client's calls with HTTP faked (responses),
then against the simulator on a real port, in both dialects where the dialect has the call."""

from __future__ import annotations

import json

import pytest
import responses

from siq_integration import exceptions as exc
from siq_integration import oauth
from siq_integration.budget import Priority
from siq_integration.client import SalesIQClient
from siq_integration.normalised import ChatStatus, SenderType
from tests.factories import token_portal
from tests.support.simulator import last_seq

API = "https://salesiq.zoho.eu/api/v2/zylker"


@pytest.fixture
def portal(db):
    return token_portal()


# --- unit: the calls as Zoho's pages write them ------------------------------------------


@responses.activate
def test_it_sends_the_operator_message_as_zohos_page_writes_it(portal):
    responses.post(
        f"{API}/conversations/466756000000969001/messages",
        json={
            "object": "message",
            "data": {
                "id": "466756000001000777",
                "sequence_id": "4",
                "sender": {"id": "466756000000002001", "name": "Patricia", "type": "operator"},
                "message": {"text": "Hello from a supervisor"},
                "time": "1702391400000",
            },
        },
    )
    sent = SalesIQClient(portal, priority=Priority.ACTION).send_message(
        "466756000000969001", text="Hello from a supervisor"
    )
    (call,) = responses.calls
    assert call.request.method == "POST"
    assert json.loads(call.request.body) == {"text": "Hello from a supervisor"}
    assert call.request.headers["Authorization"] == "Zoho-oauthtoken 1000.first"
    assert sent.id == "4" and sent.sender_type is SenderType.OPERATOR
    assert sent.text == "Hello from a supervisor"


@responses.activate
def test_it_never_sends_a_message_twice_after_a_server_error(portal):
    responses.post(f"{API}/conversations/1/messages", status=502, body="<html>bad</html>")
    with pytest.raises(exc.Unavailable):
        SalesIQClient(portal, priority=Priority.ACTION).send_message("1", text="Once")
    assert len(responses.calls) == 1


@responses.activate
def test_it_picks_up_with_the_method_of_the_setting_and_reads_the_new_attender(portal, settings):
    attender = {"id": "466756000000002001", "name": "Patricia", "email": "patricia@zylker.com"}
    answer = {
        "url": "/api/v2/zylker/conversations/19000000033103/pickup",
        "object": "conversations",
        "data": {
            "id": "19000000033103",
            "status": "Connected",
            "chat_status": {"status_code": 0, "state": 2, "label": "Connected"},
            "attender": attender,
            "attended_time": "1612943681060",
            "start_time": "1612943653720",
        },
    }
    responses.put(f"{API}/conversations/19000000033103/pickup", json=answer)
    taken = SalesIQClient(portal).pickup("19000000033103")
    assert taken.status is ChatStatus.CONNECTED
    assert taken.operator_id == "466756000000002001"

    settings.SIQ_HTTP_METHODS = {**settings.SIQ_HTTP_METHODS, "v2.conversation_pickup": "POST"}
    responses.post(f"{API}/conversations/19000000033103/pickup", json=answer)
    SalesIQClient(portal).pickup("19000000033103")
    assert [c.request.method for c in responses.calls] == ["PUT", "POST"]


@pytest.mark.parametrize(
    ("code", "error"),
    [(1016, exc.ChatNotWaiting), (1019, exc.ChatGone), (1009, exc.ScopeMissing)],
)
@responses.activate
def test_it_raises_the_class_of_each_pickup_refusal(portal, code, error):
    responses.put(f"{API}/conversations/1/pickup", json={"error": {"code": code, "message": "No"}})
    with pytest.raises(error):
        SalesIQClient(portal).pickup("1")


def test_it_asks_for_the_messaging_scope_without_requiring_it(portal):
    assert "SalesIQ.conversations.CREATE" in oauth.requested_scopes("v2")
    assert "SalesIQ.conversations.CREATE" not in oauth.scopes_for("v2")
    # The reference dialect's required chats.ALL covers its messages already.
    assert oauth.requested_scopes("reference").count("SalesIQ.chats.ALL") == 1

    portal.granted_scopes = ",".join(oauth.scopes_for("v2"))  # connected before this change
    assert not oauth.may_message(portal)
    portal.granted_scopes += ",salesiq.conversations.create"
    assert oauth.may_message(portal)
    portal.granted_scopes = "SalesIQ.conversations.ALL"
    assert oauth.may_message(portal)


# --- against the simulator ---------------------------------------------------------------


def sim_state(simulator, portal) -> dict:
    return simulator.state(portal.screen_name)["portals"][0]


def me_in(state: dict, portal) -> dict:
    return next(
        o for o in state["operators"] if o["email"] == f"admin@{portal.screen_name}.example"
    )


@pytest.mark.parametrize("dialect", ["v2", "reference"])
def test_it_writes_in_the_chat_as_the_connected_user_and_salesiq_tells_the_webhook(
    simulator, connected_portal, dialect, webhook_receiver
):
    portal = connected_portal(dialect=dialect, open_chats=2)
    client = SalesIQClient(portal, priority=Priority.ACTION)
    client.register_webhook(
        url=webhook_receiver.url,
        events=["conversation.operator.replied"] if dialect == "v2" else ["message.received"],
        secret="s3cret-for-the-hmac",
    )
    state = sim_state(simulator, portal)
    chat = next(c for c in state["conversations"] if c["status"] == "connected")
    start = last_seq(simulator)

    sent = client.send_message(chat["id"], text="Un instant — je regarde ça")

    me = me_in(state, portal)
    assert sent is not None and sent.text == "Un instant — je regarde ça"
    assert sent.sender_id == me["id"]
    (call,) = [c for c in simulator.calls(start) if c["path"].endswith("/messages")]
    assert call["method"] == "POST" and call["status"] in (200, 201)
    now = next(c for c in sim_state(simulator, portal)["conversations"] if c["id"] == chat["id"])
    assert now["last_message"]["text"] == "Un instant — je regarde ça"
    assert now["last_message"]["sender_type"] == "operator"
    event = "conversation.operator.replied" if dialect == "v2" else "message.received"
    deliveries = webhook_receiver.wait_for_events([event])
    # The usual message webhook, with the line in it.
    assert any("je regarde ça" in body.decode() for _headers, body in deliveries)


def test_it_picks_up_a_waiting_chat_as_the_connected_user(simulator, connected_portal):
    portal = connected_portal(open_chats=1)
    state = sim_state(simulator, portal)
    me = me_in(state, portal)
    waiting = simulator.create_conversation(
        portal.screen_name, department_id=me["department_ids"][0]
    )
    client = SalesIQClient(portal, priority=Priority.ACTION)

    taken = client.pickup(waiting["id"])

    assert taken.status is ChatStatus.CONNECTED and taken.operator_id == me["id"]
    now = next(c for c in sim_state(simulator, portal)["conversations"] if c["id"] == waiting["id"])
    assert now["status"] == "connected" and now["attender_id"] == me["id"]
    with pytest.raises(exc.ChatNotWaiting):
        client.pickup(waiting["id"])  # not waiting any more
    client.close(waiting["id"])
    with pytest.raises(exc.ChatGone):
        client.pickup(waiting["id"])  # ended
    with pytest.raises(exc.ChatGone):
        client.pickup("466756999999999999")  # unknown
    with pytest.raises(exc.ChatGone):
        client.send_message(waiting["id"], text="Too late")


def test_it_is_refused_the_message_by_a_grant_without_the_create_scope(simulator, connected_portal):
    # Zoho's token answer lists no scopes: the grant is taken to have what was asked for,
    # and SalesIQ's own 1009 says otherwise.
    simulator.accounts.drop_scopes = {"salesiq.conversations.create"}
    try:
        portal = connected_portal(open_chats=1)
    finally:
        simulator.accounts.drop_scopes = set()
    chat = sim_state(simulator, portal)["conversations"][0]
    with pytest.raises(exc.ScopeMissing):
        SalesIQClient(portal, priority=Priority.ACTION).send_message(chat["id"], text="Hi")
    # Everything else keeps working with that grant.
    assert SalesIQClient(portal).get_conversation(chat["id"]).id == chat["id"]
