"""Small filters in the supervisor's words."""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime
from functools import cache
from operator import attrgetter
from pathlib import Path
from typing import Any

from django import template
from django.db import models
from django.dispatch import receiver
from django.template.loader import get_template
from django.utils import timezone
from django.utils.autoreload import file_changed
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince

from dashboard.users import shown_name

from .. import times

register = template.Library()


@register.filter
def person(user: Any) -> str:
    """A dashboard user as every screen names them (dashboard.users.shown_name)."""
    return shown_name(user)


# A display name's mark, as dashboard.state.apply adds it to tell namesakes apart: " (olafur.8)".
_MARK = re.compile(r"^(.+?) (\([^()]*\))$")


@register.filter
def name_parts(name: str) -> tuple[str, str]:
    """("Ólafur Novák", "(olafur.8)") from "Ólafur Novák (olafur.8)"; (name, "") when it has
    no mark. Where a name must be cut short, the mark is what stays in view."""
    found = _MARK.match(name or "")
    return (found.group(1), found.group(2)) if found else (name or "", "")


@register.filter
def ago(moment: datetime | None) -> str:
    """'just now', '4 minutes ago', 'never'."""
    if moment is None:
        return "never"
    clocks = _clocks.get()
    if clocks is not None:
        clocks.cacheable = False  # its words change with time: a row using it is not kept
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment, depth=1)} ago"


# The one way a duration is written ("6m 07s"), here and in static/js/time.js, which keeps
# the clocks ticking in the same shape.
_clock = times.duration


@register.filter
def elapsed(moment: datetime | None) -> str:
    """Time since ``moment`` ("4m 05s", "1h 02m"); the browser keeps it ticking."""
    if moment is None:
        return ""
    clocks = _clocks.get()
    if clocks is not None:
        # A row being rendered for the row cache: its clocks are set at each use.
        return clocks.mark(moment)
    # Digits, units and a space only: marked safe so 2,000 rows skip escaping it.
    return mark_safe(_clock((timezone.now() - moment).total_seconds()))  # noqa: S308


@register.filter
def duration_to(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return mark_safe(_clock((end - start).total_seconds()))  # noqa: S308 (digits and units)


NO_FIGURE = "\u2013"  # an en dash: the figure does not exist (not zero)


@register.filter
def seconds(value: float | None) -> str:
    """A figure in seconds as a duration ("1m 05s"); a figure there is none of: a dash."""
    if value is None:
        return NO_FIGURE
    return mark_safe(_clock(value))  # noqa: S308 (digits and units)


@register.filter
def percent(value: float | None) -> str:
    """A share 0 to 100 as "87 %" (never "100 %" before it is whole); none: a dash."""
    if value is None:
        return NO_FIGURE
    shown = math.floor(value) if value < 100 else 100
    return f"{shown} %"


@register.simple_tag(takes_context=True)
def local_time(context: Any, moment: datetime | None, kind: str = "time", text: str = "") -> str:
    """``<time datetime=… data-local=…>`` for a moment, written for the viewer.

    ``kind`` "time": its time of day (after the date when not today); "seconds": with seconds;
    "title": ``text`` shown, the moment in the tooltip. Pages rendered for one viewer have
    their clock (``viewer_clock``, dashboard.context_processors); pieces rendered once for
    everybody (live updates, cached rows) have none and write the time in UTC, saying so,
    never depending on today's date; static/js/time.js writes every one for its viewer.
    """
    if moment is None:
        return ""
    clock = context.get("viewer_clock")
    seconds = kind == "seconds"
    if clock is None:
        shown = times.time_of_day(moment, times.UTC_CLOCK, seconds=seconds) + " UTC"
        full = times.in_full(moment, times.UTC_CLOCK)
    else:
        shown = times.when(moment, clock, timezone.now(), seconds=seconds)
        full = times.in_full(moment, clock)
    return format_html(
        '<time datetime="{}" data-local="{}" title="{}">{}</time>',
        iso(moment),
        kind if kind in ("time", "seconds", "title") else "time",
        full,
        text if kind == "title" else shown,
    )


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


# --- rows rendered once ------------------------------------------------------------------------
#
# The live page of a big portal is thousands of rows, and the template engine spends ~0.1 ms
# on each; almost all of them are the same as on the last page load or snapshot. ``{% rows %}``
# renders each row with its partial once and keeps the HTML, keyed by everything the row can
# show of its item (so a changed chat is a new key, and a poll that changes nothing keeps the
# key), and sets only the clocks' text (time since …, the ``elapsed`` filter) afresh on each
# render. Only documented template APIs: a partial is loaded as "template.html#partial" and
# rendered with a dict; while a row renders for the cache, ``elapsed`` writes a mark instead of
# its text and notes the moment, and the HTML is kept cut at the marks.

ROW_CACHE_SIZE = 10_000
# Bookkeeping a row never shows: a poll that only moves these keeps the rendered row.
_NOT_SHOWN = frozenset({"fact_at", "source", "updated_at"})


class _Clocks:
    """The clocks of the row being rendered for the cache."""

    # Stands where a clock's text goes. Random per process, and never sent anywhere (it is
    # cut out), so no visitor text can hold it.
    MARK = f"\x00clock-{secrets.token_hex(8)}\x00"

    def __init__(self) -> None:
        self.moments: list[datetime] = []
        self.cacheable = True

    def mark(self, moment: datetime) -> str:
        self.moments.append(moment)
        return mark_safe(self.MARK)  # noqa: S308 (no markup; cut out before anything is sent)


_clocks: ContextVar[_Clocks | None] = ContextVar("row_clocks", default=None)


@dataclass(frozen=True)
class _Row:
    pieces: tuple[str, ...]  # the HTML before, between and after the clocks' text
    moments: tuple[datetime, ...]  # what each clock counts from

    def html(self, now: datetime) -> str:
        if not self.moments:
            return self.pieces[0]
        parts = [self.pieces[0]]
        for moment, piece in zip(self.moments, self.pieces[1:], strict=True):
            parts.append(_clock((now - moment).total_seconds()))  # digits and units
            parts.append(piece)
        return "".join(parts)


def _render_for_cache(render: Callable[[], str]) -> _Row | None:
    """``render()`` with its clocks noted apart; None when the row cannot be kept (something
    in it changes with time other than its clocks)."""
    clocks = _Clocks()
    token = _clocks.set(clocks)
    try:
        html = render()
    finally:
        _clocks.reset(token)
    pieces = html.split(_Clocks.MARK)
    if not clocks.cacheable or len(pieces) != len(clocks.moments) + 1:
        return None
    return _Row(tuple(pieces), tuple(clocks.moments))


class _RowCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self._rows: dict[tuple, _Row] = {}
        self._lock = threading.Lock()  # pages, snapshots and publishers render in threads

    def get(self, key: tuple) -> _Row | None:
        return self._rows.get(key)

    def put(self, key: tuple, row: _Row) -> None:
        with self._lock:
            while len(self._rows) >= self.size:
                del self._rows[next(iter(self._rows))]  # the oldest first
            self._rows[key] = row

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()


row_cache = _RowCache(ROW_CACHE_SIZE)


@receiver(file_changed, dispatch_uid="supervisor_rows_template_changed")
def _template_changed(sender, file_path, **kwargs) -> None:
    """A developer edited a template (runserver's reloader): rows are rendered anew."""
    if Path(file_path).suffix == ".html":
        row_cache.clear()


@cache
def _shown_fields(model: type[models.Model]) -> tuple[attrgetter, tuple[int, ...]]:
    """A getter of the model's fields a row may show (as one tuple), and which of them
    hold JSON (dicts and lists: not hashable as they are)."""
    shown = [field for field in model._meta.concrete_fields if field.name not in _NOT_SHOWN]
    json_at = tuple(i for i, field in enumerate(shown) if isinstance(field, models.JSONField))
    return attrgetter(*(field.attname for field in shown)), json_at


def _hashable(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def row_key(item: Any) -> Any:
    """Everything a row can show of ``item`` (a model, or a dataclass view of one), hashable."""
    if isinstance(item, models.Model):
        get, json_at = _shown_fields(type(item))
        values = get(item)
        if json_at:
            values = list(values)
            for i in json_at:
                values[i] = _hashable(values[i])
        return (type(item), *values)
    if is_dataclass(item):
        return (type(item), *(row_key(getattr(item, field.name)) for field in fields(item)))
    return _hashable(item)


def _render_row(template: Any, template_name: str, name: str, item: Any, oob: bool) -> str:
    """The row of ``item`` from the cache, or rendered with ``template`` (and kept)."""
    key = (template_name, oob, row_key(item))
    row = row_cache.get(key)
    if row is None:
        context = {name: item, "oob": oob}
        row = _render_for_cache(lambda: template.render(context))
        if row is None:
            return template.render(context)
        row_cache.put(key, row)
    return row.html(timezone.now())


def render_row(template_name: str, name: str, item: Any, *, oob: bool) -> str:
    """``render_to_string(template_name, {name: item, "oob": oob})`` for a row partial
    (``"live/parts.html#chat_row"``), reusing the last rendering while ``item`` shows the same:
    a poll that changes nothing renders nothing again."""
    return _render_row(get_template(template_name), template_name, name, item, oob)


class RowsNode(template.Node):
    def __init__(self, items, template_name: str, name: str) -> None:
        self.items = items
        self.template_name = template_name
        self.name = name

    def render(self, context) -> str:
        # The row is rendered for every viewer alike, from its item and ``oob`` alone (no
        # request: not this viewer's clock either).
        row = get_template(self.template_name)
        return "".join(
            _render_row(row, self.template_name, self.name, item, False)
            for item in self.items.resolve(context) or ()
        )


@register.tag
def rows(parser, token) -> RowsNode:
    """``{% rows chats "chat_row" as chat %}``: each item through the partial (with ``oob``
    off), as ``{% for chat in chats %}{% partial chat_row %}{% endfor %}`` would, but a row
    already rendered for the same facts is reused with its clocks set to now. The partial
    may use only its item (and ``oob``): nothing else of the context is in the key. The
    partial is this template's, or another's when named in full ("live/parts.html#chat_row")."""
    bits = token.split_contents()
    if len(bits) != 5 or bits[3] != "as" or bits[2][0] not in "\"'":
        raise template.TemplateSyntaxError('usage: {% rows <items> "<partial name>" as <name> %}')
    partial = bits[2][1:-1]
    if "#" not in partial:
        partial = f"{parser.origin.template_name}#{partial}"
    return RowsNode(parser.compile_filter(bits[1]), partial, bits[4])
