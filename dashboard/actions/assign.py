"""Who a waiting chat goes to when a supervisor clicks "Assign to …" on its row.

The best operator for a waiting chat is, in this order (docs/step-in.md):
1. available (not busy, away or offline) and enabled in SalesIQ;
2. in the chat's department (a chat with no department: anyone);
3. with a free seat: fewer open chats than their maximum (no maximum set counts as room);
4. the most free seats;
5. then the longest idle: in their current status the longest (``status_since`` earliest),
   the best proxy the dashboard has for "has not been handed a chat for a while".
Ties after that go by shown name, so everyone sees the same choice.

The row shows the choice before the click ("Assign to Ana", with why in its title); the
click sends the transfer with that operator (the transfer path: permission, the key, the
budget, the audit), refused if the chat was picked up meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils import timezone

from .. import selectors
from ..models import Chat, ChatStatus, OperatorStatus
from ..selectors import OperatorView


@dataclass(frozen=True)
class Assignee:
    """The best operator for a waiting chat, and why, in a sentence."""

    view: OperatorView

    @property
    def operator(self):
        return self.view.operator

    @property
    def free_seats(self) -> int | None:
        capacity = self.view.capacity
        return None if capacity is None else capacity - self.view.load

    @property
    def why(self) -> str:
        op = self.operator
        seats = self.free_seats
        room = (
            "no limit on chats set"
            if seats is None
            else f"{seats} free seat{'s' if seats != 1 else ''} of {self.view.capacity}"
        )
        idle = ""
        if op.status_since:
            minutes = int((timezone.now() - op.status_since).total_seconds() // 60)
            idle = f", available for {minutes} min" if minutes else ", just became available"
        return f"{op.shown_name}: available, in this department, {room}{idle}."


def _rank(view: OperatorView) -> tuple:
    free = None if view.capacity is None else view.capacity - view.load
    since = view.operator.status_since or datetime.max.replace(tzinfo=UTC)
    # No limit set sorts as more room than any limit.
    return (free is not None, -(free or 0), since, view.operator.shown_name, view.operator.pk)


def best_assignee(chat: Chat, views: list[OperatorView] | None = None) -> Assignee | None:
    """The best available operator of ``chat``'s department with room, or None (the row
    then offers only the transfer picker). ``views``: the portal's operators, when the
    caller has them already."""
    if chat.status != ChatStatus.WAITING:
        return None
    if views is None:
        views = selectors.operator_views([chat.portal])
    candidates = [
        view
        for view in views
        if view.operator.portal_id == chat.portal_id
        and view.operator.enabled
        and view.operator.status == OperatorStatus.AVAILABLE
        and (not chat.department_id or chat.department_id in view.operator.department_ids)
        and (view.capacity is None or view.load < view.capacity)
    ]
    if not candidates:
        return None
    return Assignee(view=min(candidates, key=_rank))
