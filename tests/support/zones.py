"""Time zones for tests whose chats must all fall within one business day."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

# Zones half a day apart: at any moment one of them is far from its midnight.
_CANDIDATES = ("UTC", "Pacific/Kiritimati", "Asia/Tokyo", "America/New_York", "Etc/GMT+12")


def far_from_midnight(now: datetime, *, hours: int = 2) -> str:
    """An IANA zone where ``now`` is at least ``hours`` from either midnight, so chats from
    the last hour or two and the next few minutes all belong to today there."""
    for name in _CANDIDATES:
        local = now.astimezone(ZoneInfo(name))
        if hours <= local.hour < 24 - hours:
            return name
    raise AssertionError("no candidate zone is far from midnight")  # cannot happen
