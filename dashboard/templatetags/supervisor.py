"""Small filters in the supervisor's words."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
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
    """As static/js/live.js writes it, so a ticking clock never changes its shape."""
    seconds = max(0, int(seconds))
    if seconds >= 86400:
        return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@register.filter
def elapsed(moment: datetime | None) -> str:
    """Time since ``moment`` as a clock ("4:05", "1:02:03"); the browser keeps it ticking."""
    if moment is None:
        return ""
    # Digits and colons only: marked safe so 2,000 rows skip escaping it.
    return mark_safe(_clock((timezone.now() - moment).total_seconds()))  # noqa: S308


@register.filter
def duration_to(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return mark_safe(_clock((end - start).total_seconds()))  # noqa: S308 (digits and colons)


@register.filter
def iso(moment: datetime | None) -> SafeString:
    """ISO 8601 in UTC to the millisecond, for data-* attributes and <time datetime>.

    The live page renders five per chat row: ``date:'c'`` costs several times more, and
    the result (digits, dashes, colons, a dot, T and Z) needs no escaping.
    """
    if moment is None:
        return SafeString("")
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return mark_safe(text)  # noqa: S308
