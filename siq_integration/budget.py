"""The per-portal call budget, shared by every process through the database.

Each call to SalesIQ spends one unit of the current minute and of the current
day. Spending is one conditional UPDATE per window (``used < cap``), which is
atomic on SQLite and PostgreSQL alike; both windows are spent in one
transaction, so a refusal by the day rolls back the minute.

Background work (polling) may only use the budget minus a reserved share, so a
supervisor's click always finds a call left.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .exceptions import BudgetExhausted, RateLimited
from .models import CallWindow, Portal


class Priority(enum.StrEnum):
    ACTION = "action"  # a supervisor clicked: may use the whole budget
    BACKGROUND = "background"  # polling, reconciling: leaves the reserve alone


def reserved(limit: int) -> int:
    """Calls of ``limit`` that only actions may use."""
    if limit <= 1:
        return 0
    return min(limit - 1, max(1, math.ceil(limit * settings.SIQ_ACTION_RESERVE_SHARE)))


def _cap(limit: int, priority: Priority) -> int:
    return limit if priority is Priority.ACTION else limit - reserved(limit)


def _window_starts(now: datetime) -> dict[str, datetime]:
    return {
        CallWindow.Span.MINUTE: now.replace(second=0, microsecond=0),
        CallWindow.Span.DAY: now.replace(hour=0, minute=0, second=0, microsecond=0),
    }


_SPAN_LENGTH = {
    CallWindow.Span.MINUTE: timedelta(minutes=1),
    CallWindow.Span.DAY: timedelta(days=1),
}


def _ensure_window(portal_id, span: str, starts_at: datetime) -> None:
    if CallWindow.objects.filter(portal_id=portal_id, span=span, starts_at=starts_at).exists():
        return
    try:
        with transaction.atomic():
            CallWindow.objects.create(portal_id=portal_id, span=span, starts_at=starts_at)
    except IntegrityError:
        pass  # another process created it first: fine
    else:
        if span == CallWindow.Span.DAY:
            # A new day: forget windows nobody will report on again.
            CallWindow.objects.filter(
                portal_id=portal_id, starts_at__lt=starts_at - timedelta(days=2)
            ).delete()


def spend(portal: Portal, *, priority: Priority = Priority.BACKGROUND) -> None:
    """Take one call from ``portal``'s budget or raise.

    Raises RateLimited while SalesIQ has asked us to back off, and
    BudgetExhausted (with ``retry_at``) when the window allows no more calls
    at this priority. Nothing is queued: the caller decides what to do.
    """
    now = timezone.now()
    blocked_until = (
        Portal.objects.filter(pk=portal.pk).values_list("rate_limited_until", flat=True).first()
    )
    if blocked_until and blocked_until > now:
        raise RateLimited(
            "SalesIQ asked the dashboard to slow down; "
            f"calls resume at {blocked_until:%H:%M:%S} UTC.",
            retry_at=blocked_until,
        )
    limits = {
        CallWindow.Span.MINUTE: portal.calls_per_minute,
        CallWindow.Span.DAY: portal.calls_per_day,
    }
    starts = _window_starts(now)
    for span, starts_at in starts.items():
        _ensure_window(portal.pk, span, starts_at)
    with transaction.atomic():
        for span, starts_at in starts.items():
            cap = _cap(limits[span], priority)
            changes = {"used": F("used") + 1}
            if priority is Priority.ACTION:
                changes["used_by_actions"] = F("used_by_actions") + 1
            spent = CallWindow.objects.filter(
                portal_id=portal.pk, span=span, starts_at=starts_at, used__lt=cap
            ).update(**changes)
            if not spent:
                retry_at = starts_at + _SPAN_LENGTH[span]
                what = "this minute's" if span == CallWindow.Span.MINUTE else "today's"
                who = "" if priority is Priority.ACTION else " for background updates"
                raise BudgetExhausted(
                    f"This portal has used {what} SalesIQ call budget{who}; "
                    f"it returns at {retry_at:%H:%M:%S} UTC.",
                    retry_at=retry_at,
                )


def charge(portal: Portal, *, calls: int, priority: Priority = Priority.ACTION) -> None:
    """Count ``calls`` already made for ``portal`` (before it had a budget: checking a new
    grant) in the current minute and day, whatever is left: they were made."""
    if calls <= 0:
        return
    starts = _window_starts(timezone.now())
    for span, starts_at in starts.items():
        _ensure_window(portal.pk, span, starts_at)
    changes = {"used": F("used") + calls}
    if priority is Priority.ACTION:
        changes["used_by_actions"] = F("used_by_actions") + calls
    for span, starts_at in starts.items():
        CallWindow.objects.filter(portal_id=portal.pk, span=span, starts_at=starts_at).update(
            **changes
        )


@dataclass(frozen=True)
class Usage:
    minute_used: int
    minute_limit: int
    day_used: int
    day_limit: int
    reserved_per_minute: int


def usage(portal: Portal, *, now: datetime | None = None) -> Usage:
    starts = _window_starts(now or timezone.now())
    used = {
        span: CallWindow.objects.filter(portal_id=portal.pk, span=span, starts_at=starts_at)
        .values_list("used", flat=True)
        .first()
        or 0
        for span, starts_at in starts.items()
    }
    return Usage(
        minute_used=used[CallWindow.Span.MINUTE],
        minute_limit=portal.calls_per_minute,
        day_used=used[CallWindow.Span.DAY],
        day_limit=portal.calls_per_day,
        reserved_per_minute=reserved(portal.calls_per_minute),
    )
