"""Small filters in the supervisor's words."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def ago(moment: datetime | None) -> str:
    """'just now', '4 minutes ago', 'never'."""
    if moment is None:
        return "never"
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment, depth=1)} ago"


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@register.filter
def elapsed(moment: datetime | None) -> str:
    """Time since ``moment`` as a clock ("4:05", "1:02:03"); the browser keeps it ticking."""
    if moment is None:
        return ""
    return _clock((timezone.now() - moment).total_seconds())


@register.filter
def duration_to(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return _clock((end - start).total_seconds())
