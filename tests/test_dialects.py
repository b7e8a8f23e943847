"""Both dialects map to one normalised form; every documented error maps to its class."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from siq_integration import dialects
from siq_integration import exceptions as exc
from siq_integration.normalised import ChatStatus, EventKind, OperatorStatus, SenderType

BIG_ID = "466756000000969001"  # above 2**53: a float would change it
assert int(BIG_ID) > 2**53

V2_CONVERSATION = {
    "id": BIG_ID,
    "reference_id": "6144851",
    "chat_status": {
        "state_key": "connected",
        "status_key": "open",
        "state": 2,
        "label": "Connected",
    },
    "status": "connected",
    "question": "My order is <b>damaged</b>",
    "visitor": {"id": "$466756000000969002", "name": "Zoë Ångström", "email": "zoe@example.org"},
    "department": {"id": "466756000000000101", "name": "Support"},
    "attender": {"id": "466756000000000201", "name": "Sam", "email": "sam@zylker.example"},
    "start_time": "1708936896489",
    "attended_time": "1708936897549",
    "last_modified_time": "1708937855434",
    "last_message_info": {
        "sequence_id": "28",
        "sender": {"id": "$466756000000969002", "name": "Zoë Ångström"},
        "type": "text",
        "message": {"text": "Hello?"},
        "time": "1708937855434",
    },
}


def v2_body(document: dict) -> bytes:
    # Big ids as bare JSON numbers too: Python's json keeps integers exact.
    return json.dumps(document).encode()


def test_it_maps_a_v2_conversation_keeping_big_ids_as_strings():
    conversation = dialects.get("v2").parse_conversation(V2_CONVERSATION)
    assert conversation.id == BIG_ID
    assert conversation.status is ChatStatus.CONNECTED
    assert conversation.operator_id == "466756000000000201"
    assert conversation.department_name == "Support"
    assert conversation.visitor.name == "Zoë Ångström"
    assert conversation.started_at == datetime(2024, 2, 26, 8, 41, 36, 489000, tzinfo=UTC)
    assert conversation.attended_at.tzinfo is UTC
    assert conversation.last_message.sender_type is SenderType.VISITOR
    assert conversation.last_message.text == "Hello?"


def test_it_keeps_an_unquoted_big_id_exact():
    body = v2_body({"id": int(BIG_ID), "status": "waiting"})
    conversation = dialects.get("v2").parse_conversation(json.loads(body))
    assert conversation.id == BIG_ID
    assert conversation.status is ChatStatus.WAITING


def test_it_treats_a_v2_chat_without_attender_as_waiting():
    raw = {**V2_CONVERSATION, "attender": None, "chat_status": {"state_key": "waiting"}}
    assert dialects.get("v2").parse_conversation(raw).status is ChatStatus.WAITING


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (1, OperatorStatus.AVAILABLE),
        (3, OperatorStatus.BUSY),
        ("3", OperatorStatus.BUSY),
        (0, OperatorStatus.OFFLINE),
        (None, OperatorStatus.OFFLINE),
    ],
)
def test_it_maps_v2_status_codes_to_one_operator_status(code, status):
    operator = dialects.get("v2").parse_operator(
        {
            "id": BIG_ID,
            "first_name": "Asha",
            "last_name": "Rao",
            "email_id": "a@z.example",
            "status_code": code,
            "maximum_concurrent_chat": "5",
            "departments": [{"id": "11", "name": "Sales"}, "12"],
        }
    )
    assert operator.status is status
    assert operator.id == BIG_ID
    assert operator.name == "Asha Rao"
    assert operator.max_chats == 5
    assert operator.department_ids == ("11", "12")


def test_it_names_a_v2_operator_by_the_full_name_and_keeps_the_raw_fields():
    # Zoho's own example: nick_name "patty" for Patricia Boyle, every value a string.
    operator = dialects.get("v2").parse_operator(
        {
            "id": "33290000000002001",
            "first_name": "Patricia",
            "last_name": "Boyle",
            "nick_name": "patty",
            "email_id": "patricia@zylker.com",
            "status_code": "1",
            "is_enabled": "true",
            "departments": ["33290000000002013"],
        }
    )
    assert operator.name == "Patricia Boyle"
    assert (operator.first_name, operator.last_name, operator.nick_name) == (
        "Patricia",
        "Boyle",
        "patty",
    )
    assert operator.email == "patricia@zylker.com"
    assert operator.enabled is True


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"first_name": "Ólafur", "nick_name": "Ólafur"}, "Ólafur"),
        ({"last_name": "Þórsson", "nick_name": "Óli"}, "Þórsson"),
        ({"nick_name": "Óli"}, "Óli"),
        ({"first_name": " ", "last_name": "", "nick_name": ""}, "olafur.3@zylker.example"),
    ],
)
def test_it_falls_back_to_the_nickname_then_the_email_for_a_v2_name(fields, name):
    operator = dialects.get("v2").parse_operator(
        {"id": "7", "email_id": "olafur.3@zylker.example", **fields}
    )
    assert operator.name == name


def test_it_reads_enabled_from_a_v2_operator_webhook_entity():
    # The operator webhooks' entity says "enabled" where the API pages say "is_enabled".
    operator = dialects.get("v2").parse_operator(
        {"id": "7", "first_name": "Renée", "last_name": "Dubois", "enabled": False}
    )
    assert operator.enabled is False


def test_it_names_a_reference_operator_by_its_one_name():
    operator = dialects.get("reference").parse_operator(
        {"id": "op1", "name": "Sarah Lee", "email": "s@c.example", "status": "online"}
    )
    assert operator.name == "Sarah Lee"
    assert (operator.first_name, operator.last_name, operator.nick_name) == ("", "", "")


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("online", OperatorStatus.AVAILABLE),
        ("away", OperatorStatus.AWAY),
        ("busy", OperatorStatus.BUSY),
        ("offline", OperatorStatus.OFFLINE),
    ],
)
def test_it_maps_reference_statuses_to_the_same_operator_status(raw, status):
    operator = dialects.get("reference").parse_operator(
        {
            "id": "op1",
            "name": "Sarah",
            "email": "s@c.example",
            "status": raw,
            "max_chats": 5,
            "active_chats": 2,
            "department_id": "dept789",
        }
    )
    assert operator.status is status
    assert (operator.max_chats, operator.active_chats) == (5, 2)
    assert operator.department_ids == ("dept789",)


def test_it_maps_a_reference_chat_with_iso_times():
    chat = dialects.get("reference").parse_conversation(
        {
            "id": BIG_ID,
            "visitor_id": "v1",
            "operator_id": "op1",
            "department_id": "d1",
            "status": "active",
            "started_at": "2025-12-12T14:30:00.000Z",
            "visitor_info": {
                "name": "John <script>x</script>",
                "email": "j@example.com",
                "city": "Köln",
            },
            "transcript": [
                {
                    "id": "m1",
                    "sender_type": "visitor",
                    "sender_id": "v1",
                    "message": "Hello",
                    "timestamp": "2025-12-12T14:30:15.000Z",
                },
                {
                    "id": "m2",
                    "sender_type": "operator",
                    "sender_id": "op1",
                    "message": "Hi!",
                    "timestamp": "2025-12-12T14:30:30+00:00",
                },
            ],
        }
    )
    assert chat.id == BIG_ID
    assert chat.status is ChatStatus.CONNECTED
    assert chat.started_at == datetime(2025, 12, 12, 14, 30, tzinfo=UTC)
    assert chat.visitor.details["city"] == "Köln"
    assert chat.last_message.sender_type is SenderType.OPERATOR
    assert chat.last_message.sent_at == datetime(2025, 12, 12, 14, 30, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (1001, exc.Unavailable),
        (1002, exc.Misconfigured),
        (1054, exc.Misconfigured),
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
    ],
)
def test_it_maps_every_v2_error_code_even_under_http_200(code, cls):
    body = json.dumps(
        {"error": {"code": code, "message": "x", "json_key": "department_id"}}
    ).encode()
    with pytest.raises(cls) as caught:
        dialects.get("v2").unwrap(200, {}, body)
    assert caught.value.code == code
    assert caught.value.user_message  # always something to show


def test_it_names_the_refused_field():
    body = json.dumps(
        {"error": {"code": 1015, "message": "Invalid input stream", "json_key": "department_id"}}
    ).encode()
    with pytest.raises(exc.BadRequest) as caught:
        dialects.get("v2").unwrap(200, {}, body)
    assert caught.value.field == "department_id"
    assert "department_id" in caught.value.user_message


def test_it_gives_a_rate_limit_a_time_to_come_back():
    with pytest.raises(exc.RateLimited) as caught:
        dialects.get("v2").unwrap(
            200, {}, b'{"error": {"code": 1023, "message": "Too many requests"}}'
        )
    assert caught.value.retry_at > datetime.now(tz=UTC)


def test_it_unwraps_v2_success_with_its_envelope():
    payload = dialects.get("v2").unwrap(
        200,
        {},
        json.dumps(
            {
                "url": "/api/v2/z/conversations",
                "object": "conversations",
                "data": [],
                "more_data_available": False,
                "sync_time": "1",
            }
        ).encode(),
    )
    assert payload.data == []
    assert payload.meta["more_data_available"] is False


def test_it_treats_a_v2_5xx_html_page_as_unavailable():
    with pytest.raises(exc.Unavailable):
        dialects.get("v2").unwrap(502, {}, b"<html>Bad gateway</html>")


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "INVALID_TOKEN", exc.TokenInvalid),
        (403, "INVALID_OAUTH_SCOPE", exc.ScopeMissing),
        (403, "PERMISSION_DENIED", exc.PermissionDenied),
        (404, "RESOURCE_NOT_FOUND", exc.NotFound),
        (400, "CHAT_NOT_ACTIVE", exc.ChatNotActive),
        (400, "OPERATOR_OFFLINE", exc.OperatorOffline),
        (400, "INVALID_DEPARTMENT", exc.NotFound),
        (400, "REQUIRED_FIELD_MISSING", exc.BadRequest),
        (409, "DUPLICATE_RESOURCE", exc.AlreadyExists),
        (500, "INTERNAL_ERROR", exc.Unavailable),
        (503, "", exc.Unavailable),
        (401, "", exc.TokenInvalid),
    ],
)
def test_it_maps_reference_errors_by_code_then_status(status, code, cls):
    body = (
        json.dumps({"status": "error", "code": code, "message": "m", "details": {}}).encode()
        if code
        else b""
    )
    with pytest.raises(cls):
        dialects.get("reference").unwrap(status, {}, body)


def test_it_reads_the_reference_rate_limit_reset_header():
    reset = int(datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    headers = {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(reset),
    }
    body = b'{"status": "error", "code": "RATE_LIMIT_EXCEEDED", "message": "slow down"}'
    with pytest.raises(exc.RateLimited) as caught:
        dialects.get("reference").unwrap(429, headers, body)
    assert caught.value.retry_at == datetime(2030, 1, 1, tzinfo=UTC)


def test_it_pages_v2_by_more_data_available_then_by_short_page():
    v2 = dialects.get("v2")
    more = dialects.Payload(data=[1] * 99, meta={"more_data_available": True}, headers={})
    done = dialects.Payload(data=[1] * 99, meta={"more_data_available": False}, headers={})
    silent = dialects.Payload(data=[1] * 12, meta={}, headers={})
    assert v2.has_more(more, 99, 99) is True
    assert v2.has_more(done, 99, 99) is False
    assert v2.has_more(silent, 99, 12) is False


def test_it_pages_reference_by_total():
    ref = dialects.get("reference")
    payload = dialects.Payload(
        data=[1] * 100, meta={"pagination": {"page": 2, "per_page": 100, "total": 250}}, headers={}
    )
    assert ref.has_more(payload, 100, 100) is True
    last = dialects.Payload(
        data=[1] * 50, meta={"pagination": {"page": 3, "per_page": 100, "total": 250}}, headers={}
    )
    assert ref.has_more(last, 100, 50) is False


@pytest.mark.parametrize(
    ("dialect", "name", "kind"),
    [
        ("v2", "conversation.created", EventKind.CHAT_CREATED),
        ("v2", "conversation.attender.updated", EventKind.CHAT_ATTENDER_CHANGED),
        ("v2", "conversation.visitor.replied", EventKind.VISITOR_MESSAGE),
        ("v2", "conversation.operator.replied", EventKind.OPERATOR_MESSAGE),
        ("v2", "conversation.transfer.accepted", EventKind.TRANSFER_ACCEPTED),
        ("v2", "conversation.completed", EventKind.CHAT_ENDED),
        ("v2", "conversation.missed", EventKind.CHAT_MISSED),
        ("v2", "conversation.rated", EventKind.CHAT_RATED),
        ("v2", "conversation.metrics", EventKind.UNKNOWN),  # listed by Zoho, not used
        ("reference", "chat.started", EventKind.CHAT_CREATED),
        ("reference", "chat.ended", EventKind.CHAT_ENDED),
        ("reference", "chat.missed", EventKind.CHAT_MISSED),
        ("reference", "chat.rating", EventKind.CHAT_RATED),
        ("reference", "operator.status_changed", EventKind.OPERATOR_STATUS_CHANGED),
        ("reference", "lead.created", EventKind.UNKNOWN),
    ],
)
def test_it_maps_both_event_vocabularies_to_one(dialect, name, kind):
    if dialect == "v2":
        document = {
            "event": name,
            "entity_type": "conversation",
            "entity_id": BIG_ID,
            "event_time": "1708937855434",
            "attempt": 1,
            "entity": V2_CONVERSATION,
        }
    else:
        document = {
            "event": name,
            "timestamp": "2025-12-12T14:30:00.000Z",
            "data": {"chat_id": BIG_ID, "operator_id": "op1", "status": "away", "rating": 2},
        }
    event = dialects.get(dialect).parse_event(document)
    assert event.kind is kind
    assert event.name == name


def test_it_tells_reference_messages_apart_by_sender():
    ref = dialects.get("reference")
    base = {"event": "message.received", "timestamp": "2025-12-12T14:30:00.000Z"}
    visitor = ref.parse_event(
        {
            **base,
            "data": {
                "chat_id": "c1",
                "message_id": "m1",
                "sender_type": "visitor",
                "message": "hi",
            },
        }
    )
    operator = ref.parse_event(
        {
            **base,
            "data": {
                "chat_id": "c1",
                "message_id": "m2",
                "sender_type": "operator",
                "message": "hello",
            },
        }
    )
    assert visitor.kind is EventKind.VISITOR_MESSAGE
    assert operator.kind is EventKind.OPERATOR_MESSAGE
    assert operator.message.sent_at == datetime(2025, 12, 12, 14, 30, tzinfo=UTC)
    assert visitor.dedupe_key != operator.dedupe_key


def test_it_gives_a_retried_v2_delivery_the_same_dedupe_key():
    v2 = dialects.get("v2")
    first = {
        "event": "conversation.created",
        "entity_id": BIG_ID,
        "event_time": "17",
        "attempt": 1,
        "entity": V2_CONVERSATION,
    }
    retry = {**first, "attempt": 3}
    other = {**first, "event_time": "18"}
    assert v2.parse_event(first).dedupe_key == v2.parse_event(retry).dedupe_key
    assert v2.parse_event(retry).attempt == 3
    assert v2.parse_event(first).dedupe_key != v2.parse_event(other).dedupe_key
    # Two different events in the same millisecond for the same chat stay two events.
    same_time_other_state = {**first, "entity": {**V2_CONVERSATION, "status": "waiting"}}
    assert v2.parse_event(same_time_other_state).dedupe_key != v2.parse_event(first).dedupe_key
    without_time = {k: v for k, v in first.items() if k != "event_time"}
    assert (
        v2.parse_event(without_time).dedupe_key
        == v2.parse_event({**without_time, "attempt": 2}).dedupe_key
    )


@pytest.mark.parametrize(
    ("code", "purpose", "cls"),
    [
        (1002, dialects.Purpose.OTHER, exc.RequestHeadersRefused),
        (1016, dialects.Purpose.OPERATOR_STATUS, exc.NotOwnStatus),
        (1016, dialects.Purpose.TRANSFER, exc.PermissionDenied),
        (1019, dialects.Purpose.CLOSE, exc.ChatGone),
        (1020, dialects.Purpose.TRANSFER, exc.OperatorGone),
        (1024, dialects.Purpose.TRANSFER, exc.OperatorGone),
        (1025, dialects.Purpose.TRANSFER, exc.DepartmentGone),
        (1023, dialects.Purpose.OTHER, exc.TooManyRequests),
    ],
)
def test_it_says_what_a_v2_code_means_as_a_class(code, purpose, cls):
    body = json.dumps({"error": {"code": code, "message": "x"}}).encode()
    call = dialects.Call("PUT", "/x", purpose=purpose)
    with pytest.raises(exc.SalesIQError) as caught:
        dialects.get("v2").unwrap(200, {}, body, call=call)
    assert type(caught.value) is cls
    assert caught.value.code == code  # still in the log line and the audit entry


@pytest.mark.parametrize(
    ("code", "purpose", "cls"),
    [
        ("RESOURCE_NOT_FOUND", dialects.Purpose.CLOSE, exc.ChatGone),
        ("RESOURCE_NOT_FOUND", dialects.Purpose.TRANSFER, exc.NotFound),
        ("INVALID_DEPARTMENT", dialects.Purpose.TRANSFER, exc.DepartmentGone),
        ("PERMISSION_DENIED", dialects.Purpose.OPERATOR_STATUS, exc.PermissionDenied),
        ("RATE_LIMIT_EXCEEDED", dialects.Purpose.OTHER, exc.TooManyRequests),
    ],
)
def test_it_says_what_a_reference_code_means_as_a_class(code, purpose, cls):
    body = json.dumps({"status": "error", "code": code, "message": "m"}).encode()
    call = dialects.Call("POST", "/x", purpose=purpose)
    with pytest.raises(exc.SalesIQError) as caught:
        dialects.get("reference").unwrap(404, {}, body, call=call)
    assert type(caught.value) is cls


def test_it_counts_a_bare_429_as_a_plain_rate_limit_in_both_dialects():
    for name in ("v2", "reference"):
        with pytest.raises(exc.RateLimited) as caught:
            dialects.get(name).unwrap(429, {}, b"")
        assert type(caught.value) is exc.RateLimited
