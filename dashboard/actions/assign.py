"""Who a waiting chat goes to when a supervisor clicks "Assign to …" on its row.

The best operator for a waiting chat is, in this order (docs/step-in.md):
1. available (not busy, away or offline) and enabled in SalesIQ;
2. in the chat's department (a chat with no department: anyone);
3. with a free seat: fewer open chats than their maximum (no maximum set counts as room);
4. the most free seats;
5. then the longest idle: in their current status the longest (``status_since`` earliest),
   the best proxy the dashboard has for "has not been handed a chat for a while".
Ties after that go by shown name, so everyone sees the same choice.

The choice is worked out per department, not per chat: every waiting chat of a department
goes to the same best operator. The queues panel's row of each department carries it
(dashboard/figures/queues.py, from the operators and open chats it reads anyway: no query
more), and the page labels every waiting row's button of that department "Assign to Ana"
(static/js/live/assign.js). The chat row itself never names the operator: it is cached on
the chat's own facts and would go stale when operators change.

The click sends the transfer with that operator (the transfer path: permission, the key, the
budget, the audit). The server looks again first (``stale_choice``): refused, with nothing
sent, if the chat was picked up meanwhile or the operator is no longer free for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils import timezone

from .. import selectors
from ..models import OPEN_CHAT_STATUSES, Chat, ChatStatus, Operator, OperatorStatus
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
    def reason(self) -> str:
        """Why, without how long they have been available: what a queue row carries (it is
        published when the department changes, not as time passes; the page adds the
        minutes from ``status_since`` as they tick)."""
        seats = self.free_seats
        room = (
            "no limit on chats set"
            if seats is None
            else f"{seats} free seat{'s' if seats != 1 else ''} of {self.view.capacity}"
        )
        return f"{self.operator.shown_name}: available, in this department, {room}"

    @property
    def why(self) -> str:
        op = self.operator
        idle = ""
        if op.status_since:
            minutes = int((timezone.now() - op.status_since).total_seconds() // 60)
            idle = f", available for {minutes} min" if minutes else ", just became available"
        return f"{self.reason}{idle}."


def _rank(view: OperatorView) -> tuple:
    free = None if view.capacity is None else view.capacity - view.load
    since = view.operator.status_since or datetime.max.replace(tzinfo=UTC)
    # No limit set sorts as more room than any limit.
    return (free is not None, -(free or 0), since, view.operator.shown_name, view.operator.pk)


def _serves(operator, department_id: str) -> bool:
    # SalesIQ ids are strings here; an operator's list may hold numbers (JSON as sent).
    return not department_id or department_id in {str(d) for d in operator.department_ids or ()}


def _free_for(view: OperatorView, portal_id, department_id: str) -> bool:
    """Rules 1 to 3: available and enabled, serves the department, a free seat."""
    op = view.operator
    return (
        op.portal_id == portal_id
        and op.enabled
        and op.status == OperatorStatus.AVAILABLE
        and _serves(op, department_id)
        and (view.capacity is None or view.load < view.capacity)
    )


def best_of(views: list[OperatorView], portal_id, department_id: str) -> Assignee | None:
    """The best operator among ``views`` for a waiting chat of ``department_id`` ("": a chat
    with no department, anyone) of the portal ``portal_id``, or None when nobody is free.
    The queues panel asks this once per department; ``best_assignee`` once per chat."""
    candidates = [view for view in views if _free_for(view, portal_id, department_id)]
    if not candidates:
        return None
    return Assignee(view=min(candidates, key=_rank))


def best_assignee(chat: Chat, views: list[OperatorView] | None = None) -> Assignee | None:
    """The best available operator of ``chat``'s department with room, or None (the row
    then offers only the transfer picker). ``views``: the portal's operators, when the
    caller has them already."""
    if chat.status != ChatStatus.WAITING:
        return None
    if views is None:
        views = selectors.operator_views([chat.portal])
    return best_of(views, chat.portal_id, chat.department_id)


def stale_choice(chat: Chat, operator: Operator | None) -> str:
    """Why ``operator``, chosen for the waiting ``chat`` on the page a moment ago, may not
    have it now, in the supervisor's words ("" when they still may). Checked at the click,
    before anything is sent: the page's choice is at most a second old, but a second is
    enough for a status change or another chat to take the last seat.

    Only rules 1 to 3 are checked again: an operator still free for the chat is still a good
    choice even if someone else has become marginally better since (more free seats, a
    longer idle), and the supervisor saw and chose that name."""
    if operator is None:
        return "That operator is no longer in SalesIQ: choose again. Nothing was sent to SalesIQ."
    name = operator.shown_name
    if not operator.enabled:
        why = f"{name} is disabled in SalesIQ now"
    elif operator.status != OperatorStatus.AVAILABLE:
        status = dict(OperatorStatus.choices).get(operator.status, operator.status or "away")
        why = f"{name} is {status.lower()} now"
    elif not _serves(operator, chat.department_id):
        department = chat.department_name or "this chat's department"
        why = f"{name} no longer serves {department}"
    else:
        load = Chat.objects.filter(
            portal_id=chat.portal_id, status__in=OPEN_CHAT_STATUSES, operator_id=operator.remote_id
        ).count()
        if operator.max_chats is None or load < operator.max_chats:
            return ""
        why = f"{name} has no free seat any more"
    return f"{why}: choose again. Nothing was sent to SalesIQ."
