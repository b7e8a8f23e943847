"""What one application changed: the value the publisher renders and sends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Changes:
    """What one application changed, for the publisher (database ids)."""

    portal_id: Any
    chats: set[int] = field(default_factory=set)  # rows to re-render (or remove if closed)
    operators: set[int] = field(default_factory=set)  # cards to re-render
    removed_operators: set[int] = field(default_factory=set)
    messages: set[int] = field(default_factory=set)  # new transcript lines
    departments: bool = False
    meta: bool = False  # freshness or health

    def __bool__(self) -> bool:
        return bool(
            self.chats
            or self.operators
            or self.removed_operators
            or self.messages
            or self.departments
            or self.meta
        )

    def add(self, other: Changes) -> None:
        self.chats |= other.chats
        self.operators |= other.operators
        self.removed_operators |= other.removed_operators
        self.messages |= other.messages
        self.departments = self.departments or other.departments
        self.meta = self.meta or other.meta
