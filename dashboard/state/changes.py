"""What changed: the one value the publisher renders and sends, and where it is recorded.

Whatever changes what a page shows records a ``Changes`` here (applying SalesIQ's facts,
an alert raised or acknowledged, an action's outcome, a portal's freshness). This module
knows nobody downstream: the publisher (dashboard/realtime/publish.py) registers itself
when the app starts (dashboard/apps.py), so the state never imports what follows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Changes:
    """What changed for one portal, for the publisher (database ids)."""

    portal_id: Any  # None for what concerns no portal's group (an action's outcome only)
    chats: set[int] = field(default_factory=set)  # rows to re-render (or remove if closed)
    operators: set[int] = field(default_factory=set)  # cards to re-render
    # Operators whose figures of the day alone changed (counted, dashboard/figures/): their
    # rows are rendered again, nothing else about them (status, load, alerts) moved.
    figures: set[int] = field(default_factory=set)
    removed_operators: set[int] = field(default_factory=set)
    messages: set[int] = field(default_factory=set)  # new transcript lines
    # Transcript lines edited or deleted after they were shown (swapped in place).
    changed_messages: set[int] = field(default_factory=set)
    # Chats whose other participants (invited operators, supervisors) came or went.
    participants: set[int] = field(default_factory=set)
    departments: bool = False
    # Departments (SalesIQ ids) whose queue figures may have changed (dashboard/figures/).
    queues: set[str] = field(default_factory=set)
    meta: bool = False  # freshness or health
    # What the queues say about the portal's figures (a gap being read back) may have
    # changed: the worker's reconcile job says so; an event's freshness alone does not.
    figures_note: bool = False
    alerts: set[int] = field(default_factory=set)  # raised, acknowledged, snoozed, resolved
    # Actions whose outcome changed, to their supervisor's pages: each with the page that
    # already shows it (its own request's answer), or None.
    outcomes: dict[int, str | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.chats
            or self.operators
            or self.figures
            or self.removed_operators
            or self.messages
            or self.changed_messages
            or self.participants
            or self.departments
            or self.queues
            or self.meta
            or self.figures_note
            or self.alerts
            or self.outcomes
        )

    def add(self, other: Changes) -> None:
        self.chats |= other.chats
        self.operators |= other.operators
        self.figures |= other.figures
        self.removed_operators |= other.removed_operators
        self.messages |= other.messages
        self.changed_messages |= other.changed_messages
        self.participants |= other.participants
        self.departments = self.departments or other.departments
        self.queues |= other.queues
        self.meta = self.meta or other.meta
        self.figures_note = self.figures_note or other.figures_note
        self.alerts |= other.alerts
        for action_id, except_page in other.outcomes.items():
            # Two answers for one action: skip a page only if both say so.
            if self.outcomes.get(action_id, except_page) != except_page:
                except_page = None
            self.outcomes[action_id] = except_page


Recorder = Callable[[Changes], None]
_recorders: list[Recorder] = []


def on_record(recorder: Recorder) -> None:
    """Have ``recorder`` hear every change recorded (the publisher, at start-up)."""
    if recorder not in _recorders:
        _recorders.append(recorder)


def record(changes: Changes) -> Changes:
    """``changes`` happened in the current transaction (or just now, outside one): handed
    to the publisher, which sends them after the commit and never if it rolls back."""
    if changes:
        for recorder in _recorders:
            recorder(changes)
    return changes
