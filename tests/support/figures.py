"""Chats for the service-figure tests, applied as SalesIQ's webhook describes them."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from dashboard.state import apply
from dashboard.state.changes import Changes
from siq_integration.normalised import ChatStatus, Conversation, EventKind, Visitor, WebhookEvent


def arrive(
    portal,
    chat_id: str,
    department: str,
    arrived: float | datetime,
    *,
    picked_after: float | None = None,
    ended_after: float | None = None,
    missed_after: float | None = None,
    operator: str = "op1",
    counted: bool = True,
) -> Changes:
    """A chat that arrived ``arrived`` seconds ago (or at that time): picked up
    ``picked_after`` seconds later; over ``ended_after`` seconds later (ended), or missed
    ``missed_after`` seconds later; else still waiting. Counted into the figures
    (``counted``), as the worker's queues job counts it within a second."""
    now = timezone.now()
    started = arrived if isinstance(arrived, datetime) else now - timedelta(seconds=arrived)
    status, attended, ended = ChatStatus.WAITING, None, None
    if picked_after is not None:
        status, attended = ChatStatus.CONNECTED, started + timedelta(seconds=picked_after)
    if ended_after is not None:
        status, ended = ChatStatus.ENDED, started + timedelta(seconds=ended_after)
    if missed_after is not None:
        status, ended = ChatStatus.MISSED, started + timedelta(seconds=missed_after)
    conversation = Conversation(
        id=chat_id,
        status=status,
        visitor=Visitor(id="$" + chat_id, name="Visitor " + chat_id),
        started_at=started,
        department_id=department,
        operator_id=operator if attended else "",
        operator_name="Asha" if attended else "",
        attended_at=attended,
        ended_at=ended,
    )
    event = WebhookEvent(
        kind=EventKind.CHAT_CREATED,
        name=chat_id,
        dedupe_key=chat_id,
        occurred_at=now,
        conversation=conversation,
        chat_id=chat_id,
    )
    changes = apply.apply_event(portal, event, received_at=now)
    if counted:
        apply.count_pending(portal.pk)
    return changes
