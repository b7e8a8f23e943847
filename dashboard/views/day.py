"""The "Through the day" page and its JSON: one portal's business day (or one department's)
per quarter hour, against the same weekday last week (dashboard/figures/day.py).

Only the portals the user may see: another portal is a 404 whether it exists or not, as on
every page. The day is typed as YYYY-MM-DD in the portal's own zone (today there when none
is given); a day outside the years the history pages accept is refused in words.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from siq_integration.models import Portal

from .. import access, times
from ..figures import counting, day
from ..history import FIRST_YEAR, LAST_YEAR, OUT_OF_RANGE, read_portal
from ..models import Department, ServiceTally

NOT_A_DAY = "Not a day (like 2026-03-14)."
NOTHING = "—"  # a figure with nothing to judge: a dash, never 0 % or 100 %

# The day's totals, in the table's order (static/js/day/charts.js writes the same).
TOTALS = (
    ("offered", "Offered"),
    ("answered", "Answered"),
    ("missed", "Missed"),
    ("abandoned", "Abandoned"),
    ("service_level", "Service level"),
    ("answer_average", "Average answer time"),
    ("answer_p90", "9 in 10 answered within"),
)


@dataclass
class Choice:
    """What the page shows: a portal, perhaps one department, a day; ``errors`` holds what
    could not be used, in words, by the field it came from."""

    portal: Portal | None = None
    department_id: str | None = None
    day: date | None = None
    today: date | None = None  # in the portal's zone
    zone_name: str = "UTC"
    departments: list[tuple[str, str]] = field(default_factory=list)  # (SalesIQ id, name)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def department_name(self) -> str:
        return dict(self.departments).get(self.department_id or "", "")


def read_day(text: str) -> date:
    """A typed day; ValueError (with the words to show) when it is none or out of range."""
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise ValueError(NOT_A_DAY) from None
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(OUT_OF_RANGE)
    return value


def _departments(portal: Portal) -> list[tuple[str, str]]:
    """The portal's departments as SalesIQ lists them, then any gone from that list that
    still have figures counted (named by their id)."""
    named = list(
        Department.objects.filter(portal=portal).order_by("name").values_list("remote_id", "name")
    )
    known = {remote_id for remote_id, _ in named}
    counted = (
        ServiceTally.objects.filter(portal=portal)
        .exclude(department_id="")
        .values_list("department_id", flat=True)
        .distinct()
    )
    gone = sorted(set(counted) - known)
    return named + [(remote_id, f"Department {remote_id}") for remote_id in gone]


def read_choice(request: HttpRequest) -> Choice:
    """The portal (a 404 for one the user may not see), department and day asked for."""
    visible = access.visible_portals(request.user).order_by("name")
    choice = Choice()
    choice.portal = read_portal(request, visible) or visible.first()
    if choice.portal is None:
        return choice
    zone = counting.zone_of(counting.settings_of(choice.portal.pk))
    choice.zone_name = str(zone)
    choice.today = timezone.now().astimezone(zone).date()
    choice.departments = _departments(choice.portal)
    wanted = request.GET.get("department", "").strip()
    if wanted:
        if wanted in dict(choice.departments):
            choice.department_id = wanted
        else:
            choice.errors["department"] = "This portal has no such department."
    text = request.GET.get("day", "").strip()
    if text:
        try:
            choice.day = read_day(text)
        except ValueError as problem:
            choice.errors["day"] = str(problem)
    else:
        choice.day = choice.today
    return choice


def shown(name: str, value: Any) -> str:
    """A figure as the page writes it: "83 %" (rounded down: never over the target when it is
    under), "1m 05s", a count; a dash when there is nothing to judge."""
    if value is None:
        return NOTHING
    if name == "service_level":
        return f"{math.floor(value)} %"
    if name in ("answer_average", "answer_p90"):
        return times.duration(value)
    return str(value)


def total_rows(data: dict[str, Any], words: dict[str, str]) -> list[dict[str, str]]:
    """The totals table: each figure on this day and on the same weekday last week."""
    rows = []
    for name, label in TOTALS:
        row = {"name": name, "label": label, "definition": words[name]}
        for side in ("figures", "last_week"):
            totals = data["totals"][side]
            row[side] = shown(name, totals[name]) if totals else NOTHING
        rows.append(row)
    return rows


def embedded_json(value: Any) -> SafeString:
    """``value`` as JSON that cannot end the <script> element it sits in (what json_script
    writes, without its tag: the page's tag must carry the CSP nonce)."""
    text = json.dumps(value, cls=DjangoJSONEncoder)
    escaped = text.replace("&", "\\u0026").replace("<", "\\u003C").replace(">", "\\u003E")
    return mark_safe(escaped)  # noqa: S308 (no <, > or & left: JSON, escaped as json_script does)


@login_required
@never_cache
@require_GET
def day_page(request: HttpRequest) -> HttpResponse:
    choice = read_choice(request)
    # A department of another portal (the form keeps it when the portal is changed): the page
    # shows the whole portal and says why; the JSON refuses it.
    department_note = choice.errors.pop("department", "")
    if department_note:
        department_note += " Every department is shown."
    data = None
    if choice.portal is not None and not choice.errors:
        data = _series(choice)
    shown_day = choice.day or choice.today
    words = day.definitions_in_words()
    return render(
        request,
        "figures/day.html",
        {
            "choice": choice,
            "portals": access.visible_portals(request.user).order_by("name"),
            "series": data,
            "series_json": embedded_json(data) if data else "",
            "words": words,
            "department_note": department_note,
            "totals": total_rows(data, words) if data else [],
            "first_day": date(FIRST_YEAR, 1, 1),
            "last_day": date(LAST_YEAR, 12, 31),
            "week_before": choice.day - day.WEEK if choice.day else None,
            "series_query": _series_query(request, choice),
            "previous_day": shown_day - timedelta(days=1) if shown_day else None,
            "next_day": shown_day + timedelta(days=1) if shown_day else None,
            "is_today": shown_day == choice.today,
            "has_figures": bool(data and data["has_figures"]),
        },
    )


def _series_query(request: HttpRequest, choice: Choice) -> str:
    """What the page's script asks series.json for: this portal and department, and the day
    only when one was asked for (without one, a page left open past midnight moves on)."""
    if choice.portal is None:
        return ""
    pairs = {"portal": str(choice.portal.pk), "department": choice.department_id or ""}
    if request.GET.get("day", "").strip() and choice.day:
        pairs["day"] = choice.day.isoformat()
    return urlencode({key: value for key, value in pairs.items() if value})


def _series(choice: Choice) -> dict[str, Any]:
    """The day's series, and whether any chat arrived that day or the same weekday last
    week (the page says so in words when none did)."""
    # ``now`` is taken before the tallies are read: the page gives it to the websocket as
    # "since", which then sends the live page's snapshot only if anything changed after it.
    data = day.series(choice.portal, choice.department_id, choice.day, timezone.now())
    data["has_figures"] = any(
        (entry[side] or {}).get("offered")
        for entry in data["quarters"]
        for side in ("figures", "last_week")
    )
    data["is_today"] = choice.day == choice.today
    return data


@login_required
@never_cache
@require_GET
def day_series(request: HttpRequest) -> JsonResponse:
    choice = read_choice(request)
    if choice.portal is None:
        raise Http404("No such portal")
    if choice.errors:
        return JsonResponse(
            {"error": " ".join(choice.errors.values()), "fields": choice.errors}, status=400
        )
    return JsonResponse(_series(choice))
