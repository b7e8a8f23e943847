"""Webhook bodies of both dialects, built from a world Event under the lock."""

from __future__ import annotations

from typing import Any

from .world import (
    REFERENCE_EVENT_NAMES,
    V2_EVENT_NAMES,
    Event,
    Webhook,
    iso,
    ms,
    v2_conversation,
    v2_message,
    v2_operator,
)

# Reference: https://www.zoho.com/salesiq/help/webhook-events-conversation.html
# Reference: https://www.zoho.com/salesiq/help/developer-section/workflows-module-conversation.html
# Conversation events whose entity is the conversation with what changed in it: the pages
# list these five but show no example; the keys below are the reading documented in
# docs/participants.md (siq_integration/dialects/v2.py parses the same).
_PEOPLE_KINDS = {
    "participants_added": "participants",
    "participants_deleted": "participants",
    "supervisor_added": "supervisor",
}
_LINE_KINDS = ("message_edited", "message_deleted")


def event_name(dialect: str, kind: str) -> str | None:
    names = V2_EVENT_NAMES if dialect == "v2" else REFERENCE_EVENT_NAMES
    return names.get(kind)


def wants(hook: Webhook, name: str) -> bool:
    return hook.enabled and name in hook.events


def v2_payload(event: Event, name: str) -> tuple[dict[str, Any], str | None]:
    portal = event.portal
    if event.conversation is not None:
        entity_type, entity = "conversation", v2_conversation(portal, event.conversation)
        if event.kind in _PEOPLE_KINDS and event.participant is not None:
            person = {k: v for k, v in event.participant.items() if k != "joined_time"}
            key = _PEOPLE_KINDS[event.kind]
            entity[key] = person if key == "supervisor" else [person]
        elif event.kind in _LINE_KINDS and event.message is not None:
            entity["message"] = v2_message(event.message)
    else:
        assert event.operator is not None
        entity_type, entity = "operator", v2_operator(portal, event.operator)
    payload = {
        "entity_type": entity_type,
        "org_id": portal.id,
        "event": name,
        "entity_id": entity["id"],
        "attempt": 1,
        "version": "1",
        "app_id": portal.app_id,
        "event_time": ms(event.time),
        "entity": entity,
    }
    return payload, entity["id"]


def reference_payload(event: Event, name: str) -> tuple[dict[str, Any], str | None]:
    portal = event.portal
    data: dict[str, Any]
    if event.conversation is not None:
        conv = event.conversation
        op = portal.operators.get(conv.attender_id or "")
        dept = portal.departments.get(conv.department_id)
        if event.kind in ("visitor_message", "operator_message") and event.message is not None:
            msg = event.message
            data = {
                "chat_id": conv.id,
                "message_id": msg.id,
                "sender_type": msg.sender_type,
                "sender_id": msg.sender_id,
                "sender_name": msg.sender_name,
                "message": msg.text,
                "sent_at": iso(msg.time),
            }
        else:
            data = {
                "chat_id": conv.id,
                "visitor_id": conv.visitor.id,
                "visitor_name": conv.visitor.name,
                "visitor_email": conv.visitor.email,
                "operator_id": op.id if op else None,
                "operator_name": op.name if op else None,
                "department_id": conv.department_id,
                "department_name": dept.name if dept else None,
                "started_at": iso(conv.start_time),
                "ended_at": iso(conv.end_time),
                "rating": conv.rating,
                "feedback": conv.feedback,
            }
            if event.kind == "completed":
                data["duration"] = int((conv.end_time or event.time) - conv.start_time)
                data["message_count"] = len(conv.messages)
                data["ended_by"] = "operator"
        entity_id = conv.id
    else:
        op = event.operator
        assert op is not None
        data = {
            "operator_id": op.id,
            "name": op.name,
            "status": op.presence,
            "previous_status": event.previous_presence,
        }
        entity_id = op.id
    return {"event": name, "timestamp": iso(event.time), "data": data}, entity_id
