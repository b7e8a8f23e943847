"""The client against the simulator on a real port, in both dialects."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from siq_integration import budget, webhooks
from siq_integration import exceptions as exc
from siq_integration.budget import Priority
from siq_integration.client import SalesIQClient
from siq_integration.models import Portal
from siq_integration.normalised import ChatStatus, EventKind, OperatorStatus
from tests.support.simulator import last_seq

DIALECTS = ["v2", "reference"]


def sim_portal_state(simulator, portal) -> dict:
    return simulator.state(portal.screen_name)["portals"][0]


def api_calls(simulator, since: int = 0) -> list[dict]:
    return [call for call in simulator.calls(since) if "/api/v2/" in call["path"]]


def reference_portal(simulator, connected_portal, **options):
    """Reference portals are found by the token's user, who administers exactly this one."""
    return connected_portal(dialect="reference", **options)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_it_reads_every_open_chat_across_pages_with_big_ids_intact(
    simulator, connected_portal, dialect
):
    portal = connected_portal(dialect=dialect, open_chats=250, operators=60)
    start = last_seq(simulator)
    chats = SalesIQClient(portal).list_open_conversations()

    expected = set(sim_portal_state(simulator, portal)["open_conversation_ids"])
    assert {chat.id for chat in chats} == expected
    assert len(expected) == 250
    assert all(isinstance(chat.id, str) and int(chat.id) > 2**53 for chat in chats)
    assert all(chat.status.is_open for chat in chats)
    assert all(chat.started_at.tzinfo is not None for chat in chats)
    pages = [c for c in api_calls(simulator, start) if c["method"] == "GET"]
    assert len(pages) >= 3  # really paged, not one big answer


@pytest.mark.parametrize("dialect", DIALECTS)
def test_it_maps_operators_departments_and_messages(simulator, connected_portal, dialect):
    portal = connected_portal(dialect=dialect, open_chats=4, operators=7)
    state = sim_portal_state(simulator, portal)
    client = SalesIQClient(portal)

    operators = client.list_operators().operators
    assert {o.id for o in operators} == {o["id"] for o in state["operators"]}
    by_id = {o.id: o for o in operators}
    for raw in state["operators"]:
        assert by_id[raw["id"]].max_chats == raw["max_chats"]
        assert by_id[raw["id"]].status in set(OperatorStatus)

    departments = client.list_departments()
    assert {d.name for d in departments} == {d["name"] for d in state["departments"]}

    conversation = state["conversations"][0]
    messages = client.list_messages(conversation["id"])
    assert len(messages) == conversation["message_count"]
    assert messages[-1].text == conversation["last_message"]["text"]
    # The chat's last message and the transcript's last line are one message, one id:
    # the dashboard stores each line once whichever way it learnt of it.
    assert client.get_conversation(conversation["id"]).last_message.id == messages[-1].id


def test_it_asks_only_for_operators_changed_since_the_last_poll(simulator, connected_portal):
    portal = connected_portal(operators=9)
    client = SalesIQClient(portal)
    first = client.list_operators()
    assert first.complete and first.sync_time and len(first.operators) == 9

    changed = sim_portal_state(simulator, portal)["operators"][3]
    simulator.set_operator_status(changed["id"], "busy")
    second = client.list_operators(since=first.sync_time)
    assert not second.complete
    assert [(o.id, o.status) for o in second.operators] == [(changed["id"], OperatorStatus.BUSY)]


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (1001, exc.Unavailable),
        (1002, exc.Misconfigured),
        (1004, exc.Misconfigured),
        (1005, exc.Misconfigured),
        (1006, exc.Misconfigured),
        (1007, exc.BadRequest),
        (1008, exc.TokenInvalid),
        (1009, exc.ScopeMissing),
        (1011, exc.BadRequest),
        (1014, exc.AlreadyExists),
        (1015, exc.BadRequest),
        (1016, exc.PermissionDenied),
        (1017, exc.PlanLimit),
        (1019, exc.NotFound),
        (1020, exc.NotFound),
        (1021, exc.PlanLimit),
        (1023, exc.RateLimited),
        (1024, exc.NotFound),
        (1025, exc.NotFound),
        (1029, exc.BadRequest),
        (1031, exc.BadRequest),
        (1054, exc.Misconfigured),
    ],
)
def test_it_raises_the_exception_of_every_v2_error_code(simulator, connected_portal, code, error):
    portal = connected_portal()
    simulator.set_faults(
        portal=portal.screen_name,
        errors=[
            {
                "method": "PUT",
                "path_regex": r"/transfer$",
                "code": code,
                "times": None,
                "json_key": "department_id",
            }
        ],
    )
    try:
        with pytest.raises(error) as caught:
            SalesIQClient(portal, priority=Priority.ACTION).transfer(
                "466756000009999999", department_id="1"
            )
    finally:
        simulator.clear_faults()
    assert caught.value.code == code
    assert caught.value.user_message and "Traceback" not in caught.value.user_message


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (401, "INVALID_TOKEN", exc.TokenInvalid),
        (403, "INVALID_OAUTH_SCOPE", exc.ScopeMissing),
        (403, "PERMISSION_DENIED", exc.PermissionDenied),
        (404, "RESOURCE_NOT_FOUND", exc.NotFound),
        (429, "RATE_LIMIT_EXCEEDED", exc.RateLimited),
        (500, "INTERNAL_ERROR", exc.Unavailable),
        (400, "CHAT_NOT_ACTIVE", exc.ChatNotActive),
        (400, "OPERATOR_OFFLINE", exc.OperatorOffline),
        (400, "INVALID_DEPARTMENT", exc.NotFound),
    ],
)
def test_it_raises_the_exception_of_every_reference_error(
    simulator, connected_portal, status, code, error
):
    portal = reference_portal(simulator, connected_portal)
    simulator.set_faults(
        portal=portal.screen_name,
        errors=[
            {
                "method": "POST",
                "path_regex": r"/transfer$",
                "http_status": status,
                "code": code,
                "times": None,
            }
        ],
    )
    try:
        with pytest.raises(error):
            SalesIQClient(portal, priority=Priority.ACTION).transfer("1", operator_id="2")
    finally:
        simulator.clear_faults()


def test_it_meets_the_natural_v2_refusals(simulator, connected_portal, settings):
    portal = connected_portal(open_chats=2)
    client = SalesIQClient(portal, priority=Priority.ACTION)
    state = sim_portal_state(simulator, portal)

    with pytest.raises(exc.NotFound):
        client.get_conversation("466756000009999999")
    chat = state["conversations"][0]["id"]
    with pytest.raises(exc.NotFound):
        client.transfer(chat, department_id="466756000009999999")
    someone_else = state["operators"][1]["id"]
    with pytest.raises(exc.PermissionDenied) as caught:
        client.set_operator_status(someone_else, OperatorStatus.BUSY)
    assert "not allowed" in caught.value.user_message

    settings.SIQ_HTTP_METHODS = {**settings.SIQ_HTTP_METHODS, "v2.conversation_close": "PUT"}
    with pytest.raises(exc.Misconfigured) as caught:
        client.close(chat)
    assert caught.value.code == 1004 and "SIQ_HTTP_METHODS" in caught.value.user_message

    Portal.objects.filter(pk=portal.pk).update(screen_name="nosuchportal")
    portal.refresh_from_db()
    with pytest.raises(exc.Misconfigured) as caught:
        SalesIQClient(portal).list_departments()
    assert caught.value.code == 1005 and "screen name" in caught.value.user_message


def test_it_meets_the_natural_reference_refusals(simulator, connected_portal):
    portal = reference_portal(simulator, connected_portal, open_chats=2)
    client = SalesIQClient(portal, priority=Priority.ACTION)
    state = sim_portal_state(simulator, portal)
    chat = state["conversations"][0]["id"]
    client.close(chat, message="Thanks, bye!")
    with pytest.raises(exc.ChatNotActive) as caught:
        client.close(chat)
    assert caught.value.user_message == "That chat has already ended."
    offline = state["operators"][-1]
    simulator.set_operator_status(offline["id"], "offline")
    other = state["conversations"][1]["id"]
    with pytest.raises(exc.OperatorOffline):
        client.transfer(other, operator_id=offline["id"])


def test_it_performs_the_actions_in_salesiq(simulator, connected_portal):
    portal = connected_portal(open_chats=3, operators=8)
    client = SalesIQClient(portal, priority=Priority.ACTION)
    state = sim_portal_state(simulator, portal)
    chat = state["conversations"][0]
    target = state["departments"][1]
    operator = next(
        o
        for o in state["operators"]
        if o["presence"] == "online" and o["id"] != chat["attender_id"]
    )
    start = last_seq(simulator)

    moved = client.transfer(
        chat["id"], department_id=target["id"], operator_id=operator["id"], note="Ça va — VIP"
    )
    assert moved.id == chat["id"] and moved.transfer.status == "initiated"
    (call,) = [c for c in api_calls(simulator, start) if c["path"].endswith("/transfer")]
    assert call["method"] == "PUT"
    assert call["json"] == {
        "department_id": target["id"],
        "operator_id": operator["id"],
        "note": "Ça va — VIP",
    }

    closed = client.close(state["conversations"][1]["id"])
    assert closed.status is ChatStatus.ENDED and closed.ended_at is not None
    assert (
        state["conversations"][1]["id"]
        not in sim_portal_state(simulator, portal)["open_conversation_ids"]
    )

    me = next(o for o in state["operators"] if o["email"] == f"admin@{portal.screen_name}.example")
    assert client.set_operator_status(me["id"], OperatorStatus.BUSY).status is OperatorStatus.BUSY


def test_it_retries_reads_but_never_a_transfer(simulator, connected_portal):
    portal = connected_portal(open_chats=1)
    chat = sim_portal_state(simulator, portal)["conversations"][0]["id"]
    simulator.set_faults(
        portal=portal.screen_name,
        errors=[
            {
                "method": "GET",
                "path_regex": r"/departments$",
                "http_status": 503,
                "code": 1001,
                "times": 2,
            },
            {
                "method": "PUT",
                "path_regex": r"/transfer$",
                "http_status": 503,
                "code": 1001,
                "times": 1,
            },
        ],
    )
    try:
        start = last_seq(simulator)
        assert SalesIQClient(portal).list_departments()
        assert [c["status"] for c in api_calls(simulator, start)] == [503, 503, 200]

        start = last_seq(simulator)
        with pytest.raises(exc.Unavailable):
            SalesIQClient(portal, priority=Priority.ACTION).transfer(chat, department_id="1")
        assert len(api_calls(simulator, start)) == 1
    finally:
        simulator.clear_faults()


def test_it_says_salesiq_is_unreachable_during_an_outage_and_recovers(
    simulator, connected_portal, settings
):
    settings.SIQ_RETRY_ATTEMPTS = 2
    portal = connected_portal()
    simulator.set_faults(portal=portal.screen_name, outage_seconds=60, outage_mode="drop")
    try:
        with pytest.raises(exc.Unavailable) as caught:
            SalesIQClient(portal).list_departments()
        assert "not" in caught.value.user_message
        portal.refresh_from_db()
        assert portal.current_error
    finally:
        simulator.clear_faults()
    assert SalesIQClient(portal).list_departments()
    portal.refresh_from_db()
    assert portal.current_error == ""


def test_it_stays_within_the_budget_and_keeps_the_reserve_for_actions(simulator, connected_portal):
    portal = connected_portal(calls_per_minute=5)
    start = last_seq(simulator)
    background = SalesIQClient(portal)
    spent = 0
    with pytest.raises(exc.BudgetExhausted) as caught:
        for _ in range(10):
            background.list_departments()
            spent += 1
    assert spent == 5 - budget.reserved(5)
    assert caught.value.retry_at > timezone.now()
    SalesIQClient(portal, priority=Priority.ACTION).list_departments()
    assert len(api_calls(simulator, start)) == spent + 1  # the refused call never left


def test_it_backs_off_when_salesiq_rate_limits(simulator, connected_portal):
    portal = connected_portal(rate_limit_per_minute=2)
    client = SalesIQClient(portal)
    client.list_departments()
    client.list_departments()
    with pytest.raises(exc.RateLimited) as caught:
        client.list_departments()
    assert caught.value.code == 1023
    start = last_seq(simulator)
    with pytest.raises(exc.RateLimited):
        SalesIQClient(Portal.objects.get(pk=portal.pk)).list_departments()
    assert api_calls(simulator, start) == []
    simulator.clear_faults()


def test_it_registers_a_v2_webhook_and_verifies_its_signed_deliveries(
    simulator, connected_portal, webhook_receiver
):
    portal = connected_portal(open_chats=2)
    client = SalesIQClient(portal)
    hook = client.register_webhook(
        url=webhook_receiver.url, events=["conversation.created", "conversation.visitor.replied"]
    )
    again = client.register_webhook(url=webhook_receiver.url, events=["conversation.created"])
    assert again.id == hook.id  # 1014: already registered, reused
    first_key = client.create_webhook_key(hook.id)
    pems = [webhooks.normalise_public_key(first_key.public_key_pem)]

    chat = simulator.create_conversation(portal.screen_name)
    headers, body = webhook_receiver.wait_for(1)[0]
    webhooks.verify(dialect="v2", body=body, headers=headers, public_keys=pems)
    event = webhooks.parse("v2", body)
    assert event.kind is EventKind.CHAT_CREATED
    assert event.conversation.id == chat["id"]

    # Rotation: a second key; both stay valid until the old one is deleted.
    second_key = client.create_webhook_key(hook.id)
    assert second_key.id != first_key.id
    pems.append(webhooks.normalise_public_key(second_key.public_key_pem))
    simulator.visitor_message(chat["id"], "Encore là ? <b>allô</b>")
    headers, body = webhook_receiver.wait_for(2)[1]
    webhooks.verify(dialect="v2", body=body, headers=headers, public_keys=pems)
    client.delete_webhook_key(hook.id, first_key.id)
    simulator.visitor_message(chat["id"], "Hello again")
    headers, body = webhook_receiver.wait_for(3)[2]
    webhooks.verify(dialect="v2", body=body, headers=headers, public_keys=pems[1:])
    with pytest.raises(exc.SignatureInvalid):
        webhooks.verify(dialect="v2", body=body, headers=headers, public_keys=pems[:1])

    client.delete_webhook(hook.id)
    assert client.list_webhooks() == []


def test_it_registers_a_reference_webhook_and_checks_its_hmac(
    simulator, connected_portal, webhook_receiver
):
    portal = reference_portal(simulator, connected_portal, open_chats=1)
    client = SalesIQClient(portal)
    hook = client.register_webhook(
        url=webhook_receiver.url, events=["chat.started", "chat.ended"], secret="s3cret"
    )
    assert [w.id for w in client.list_webhooks()] == [hook.id]

    chat = simulator.create_conversation(portal.screen_name)
    headers, body = webhook_receiver.wait_for(1)[0]
    webhooks.verify(dialect="reference", body=body, headers=headers, secret="s3cret")
    with pytest.raises(exc.SignatureInvalid):
        webhooks.verify(dialect="reference", body=body, headers=headers, secret="other")
    event = webhooks.parse("reference", body)
    assert event.kind is EventKind.CHAT_CREATED and event.chat_id == chat["id"]
    assert json.loads(body)["event"] == "chat.started"


def test_it_lists_the_portals_the_connected_user_reaches(simulator, connected_portal):
    portal = connected_portal()
    screens = {remote.screen_name for remote in SalesIQClient(portal).list_portals()}
    assert portal.screen_name in screens


def test_it_refuses_a_v2_transfer_without_department_before_calling(simulator, connected_portal):
    portal = connected_portal(open_chats=1)
    chat = sim_portal_state(simulator, portal)["conversations"][0]["id"]
    start = last_seq(simulator)
    with pytest.raises(exc.BadRequest) as caught:
        SalesIQClient(portal, priority=Priority.ACTION).transfer(chat, operator_id="1")
    assert caught.value.field == "department_id"
    assert api_calls(simulator, start) == []


def test_it_names_a_data_centre_missing_from_the_table(simulator, connected_portal):
    portal = connected_portal()
    Portal.objects.filter(pk=portal.pk).update(data_center="mars")
    portal.refresh_from_db()
    with pytest.raises(exc.Misconfigured) as caught:
        SalesIQClient(portal).list_departments()
    assert "mars" in caught.value.user_message
    assert "SIQ_EXTRA_DATA_CENTERS" in caught.value.user_message
    portal.refresh_from_db()
    assert "mars" in portal.current_error  # the portals page says it too
