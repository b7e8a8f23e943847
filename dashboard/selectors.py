"""Reads of the live state: what the page, the partials, the websocket snapshot and the
JSON snapshot show. Nothing here writes."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Case, Q, QuerySet, Value, When
from django.utils import timezone

from siq_integration import health
from siq_integration.models import Portal

from .alerts.words import words_now
from .figures.operators import OperatorFigures, operator_figures
from .models import (
    OPEN_CHAT_STATUSES,
    Alert,
    AlertKind,
    AlertRule,
    Chat,
    ChatStatus,
    Department,
    Operator,
    OperatorStatus,
    PortalSync,
)

# Webhooks count as silent when nothing verified arrived for longer than
# health.WEBHOOKS_FLOWING_WITHIN while chats are open (the one definition of "flowing").
_SILENCE_MINUTES = int(health.WEBHOOKS_FLOWING_WITHIN.total_seconds() // 60)
# Data older than this is marked stale on the page.
STALE_AFTER = timedelta(minutes=2)
# How long a visitor has waited before the wait is shown amber, then red.
WAIT_WARN = timedelta(seconds=60)
WAIT_BAD = timedelta(seconds=180)
# Open chats against the seats of available operators (kpis' "utilisation") at which the
# utilisation figure turns amber, then red: in percent.
UTILISATION_WARN = 85
UTILISATION_BAD = 100


def thresholds() -> dict[str, int]:
    """The page's thresholds, defined here only: the page reads them from data attributes
    on #live (templates/live/page.html, static/js/live/page.js). Seconds: stale data, a
    visitor's wait turning amber and red; percent: the utilisation figure's amber and red."""
    return {
        "stale_after": int(STALE_AFTER.total_seconds()),
        "wait_warn": int(WAIT_WARN.total_seconds()),
        "wait_bad": int(WAIT_BAD.total_seconds()),
        "utilisation_warn": UTILISATION_WARN,
        "utilisation_bad": UTILISATION_BAD,
    }


_UNTRUSTED = {
    health.State.UNREACHABLE,
    health.State.RECONNECT,
    health.State.MISCONFIGURED,
    health.State.NOT_CONNECTED,
    health.State.DISCONNECTED,
}


# Portals whose state needs an admin before it can be trusted again, and what to tell them.
_NEEDS_ADMIN = {
    health.State.RECONNECT: ("reconnect it", "it must be reconnected"),
    health.State.MISCONFIGURED: ("fix its settings", "its settings need fixing"),
    health.State.DISCONNECTED: (
        "connect it again or delete it",
        "it is disconnected, so nothing of it shows here",
    ),
    health.State.NOT_CONNECTED: (
        "connect it or delete it",
        "it is not connected, so nothing of it shows here",
    ),
}


def is_live(portal: Portal) -> bool:
    """Whether the dashboard keeps ``portal`` live: it holds a grant. A disconnected or
    never connected portal's chats, operators and alerts are history, not what is
    happening: the live page neither shows nor counts them."""
    return portal.is_connected and portal.connected_at is not None


def live_only(portals: list[Portal]) -> list[Portal]:
    return [portal for portal in portals if is_live(portal)]


def open_chats(portals: list[Portal]) -> QuerySet[Chat]:
    """Open chats in the page's default order: waiting ones first, longest wait first,
    then connected ones, longest running first."""
    waiting_first = Case(When(status=ChatStatus.WAITING, then=Value(0)), default=Value(1))
    return Chat.objects.filter(portal__in=portals, status__in=OPEN_CHAT_STATUSES).order_by(
        waiting_first, "waiting_since", "started_at", "pk"
    )


def changed_since(portals: list[Portal], since: datetime) -> bool:
    """Whether anything a snapshot shows changed after ``since`` (a page's render time)."""
    return (
        Chat.objects.filter(portal__in=portals, updated_at__gt=since).exists()
        or Operator.objects.filter(portal__in=portals, updated_at__gt=since).exists()
        or Alert.objects.filter(portal__in=portals, changed_at__gt=since).exists()
        or PortalSync.objects.filter(portal__in=portals)
        .filter(
            Q(chats_polled_at__gt=since)
            | Q(operators_polled_at__gt=since)
            | Q(last_event_at__gt=since)
        )
        .exists()
        or Portal.objects.filter(pk__in=[p.pk for p in portals])
        .filter(Q(last_error_at__gt=since) | Q(updated_at__gt=since) | Q(last_webhook_at__gt=since))
        .exists()
    )


def operator_loads(portals: list[Portal]) -> Counter[tuple[Any, str]]:
    """Open chats per (portal id, operator SalesIQ id)."""
    rows = (
        Chat.objects.filter(portal__in=portals, status__in=OPEN_CHAT_STATUSES)
        .exclude(operator_id="")
        .values_list("portal_id", "operator_id")
    )
    return Counter(rows)


def operators(portals: list[Portal]) -> QuerySet[Operator]:
    # Namesakes side by side, in the order of what tells them apart.
    return Operator.objects.filter(portal__in=portals).order_by("name", "display_name", "pk")


def department_names(portals: list[Portal]) -> dict[tuple[Any, str], str]:
    return {
        (portal_id, remote_id): name
        for portal_id, remote_id, name in Department.objects.filter(portal__in=portals).values_list(
            "portal_id", "remote_id", "name"
        )
    }


# What an operator counts as in the key figures: away counts as busy, and a disabled operator
# does not count. kpis() sums these; the live page sums the same, read from each operator row
# it shows (data-figure, data-seats), so its tiles can follow its filters.
OPERATOR_FIGURES = {
    OperatorStatus.AVAILABLE: "available",
    OperatorStatus.BUSY: "busy",
    OperatorStatus.AWAY: "busy",
    OperatorStatus.OFFLINE: "offline",
}


def operator_figure(status: str, enabled: bool) -> str:
    """The figure an operator counts in: available, busy, offline, or none ("")."""
    return OPERATOR_FIGURES.get(status, "") if enabled else ""


def operator_seats(status: str, enabled: bool, max_chats: int | None) -> int:
    """The seats an operator adds to the capacity the figures count: an available one's."""
    return (max_chats or 0) if operator_figure(status, enabled) == "available" else 0


@dataclass(frozen=True)
class OperatorView:
    """An operator as a card shows it: with load, department names and today's figures
    (part of the row cache's key, so a changed figure renders the row again)."""

    operator: Operator
    load: int
    departments: list[str]
    figures: OperatorFigures | None = None

    @property
    def capacity(self) -> int | None:
        return self.operator.max_chats

    @property
    def figure(self) -> str:
        return operator_figure(self.operator.status, self.operator.enabled)

    @property
    def seats(self) -> int:
        op = self.operator
        return operator_seats(op.status, op.enabled, op.max_chats)

    @property
    def load_percent(self) -> int:
        if not self.capacity:
            return 0
        return min(100, round(100 * self.load / self.capacity))

    @property
    def over_capacity(self) -> bool:
        return bool(self.capacity) and self.load > self.capacity

    @property
    def away_with_chats(self) -> bool:
        """Busy, away or offline while chats are open with them: their visitors may wait."""
        return self.load > 0 and self.operator.status in (
            OperatorStatus.BUSY,
            OperatorStatus.AWAY,
            OperatorStatus.OFFLINE,
        )

    @property
    def needs_attention(self) -> bool:
        """What the operators panel puts first (the alert rules of the same names add how
        long, and by how much, before they raise)."""
        return self.away_with_chats or self.over_capacity


def operator_views(portals: list[Portal], only: list[int] | None = None) -> list[OperatorView]:
    """The operators of ``portals`` (``only``: these pks) with their load, departments and
    today's figures (dashboard/figures/operators.py: two queries more, whatever the count)."""
    loads = operator_loads(portals)
    names = department_names(portals)
    query = operators(portals)
    if only is not None:
        query = query.filter(pk__in=only)
    found = list(query)
    today = operator_figures(portals, timezone.now(), only=found) if found else {}
    return [
        OperatorView(
            operator=op,
            load=loads.get((op.portal_id, op.remote_id), 0),
            departments=[
                names.get((op.portal_id, d), "")
                for d in op.department_ids
                if names.get((op.portal_id, d))
            ],
            figures=today.get((op.portal_id, op.remote_id)),
        )
        for op in found
    ]


@dataclass(frozen=True)
class Freshness:
    """How old a portal's data is and whether to trust it, in words."""

    portal: Portal
    sync: PortalSync | None
    health: health.Health
    webhooks: str  # flowing / silent / quiet / refused / none
    chats_as_of: datetime | None
    operators_as_of: datetime | None
    stale: bool
    banner: str  # what makes its live data doubtful; empty when all is well
    avg_wait_sum: float  # seconds, chats that started in the last hour
    avg_wait_count: int
    # Seconds a visitor's message may go unanswered before the portal's rule raises an alert
    # (None: the rule is off or not made yet); the page tones its Unanswered clocks by it.
    unanswered_after: int | None = None
    live: bool = True  # False: disconnected or never connected, nothing of it shows
    # An admin must act: what an admin should do, and what others are told instead.
    needs_admin: str = ""
    needs_admin_others: str = ""


def webhook_silence(portal: Portal, now: datetime, *, has_open: bool) -> timedelta | None:
    """How long SalesIQ's webhooks have been silent, or None when they are not.

    The one definition the page and the alert rule share: silence counts from the later of
    the last delivery and the registration (a webhook registered a minute ago has not had
    the time to say anything), and only while chats are open (a quiet portal has nothing
    to send). None too while no webhook is registered: there is nothing to hear from.
    """
    if not portal.webhook_id or not has_open:
        return None
    since = max(
        (t for t in (portal.last_webhook_at, portal.webhook_registered_at) if t), default=None
    )
    if since is None:
        return None
    return max(now - since, timedelta(0))


def _webhook_state(
    portal: Portal, now: datetime, has_open: bool, sync: PortalSync | None = None
) -> str:
    """flowing / silent / quiet / refused / none. "refused" is silence while deliveries
    were refused at the door (a key SalesIQ uses that the dashboard does not know, say):
    a refused delivery alone is what anyone who knows the address can send, so it never
    makes webhooks look flowing, nor puts a banner on a portal whose webhooks are fine."""
    if not portal.webhook_id:
        return "none"
    silence = webhook_silence(portal, now, has_open=has_open)
    if silence is not None and silence > health.WEBHOOKS_FLOWING_WITHIN:
        return "refused" if _refused_during(portal, sync, now - silence) else "silent"
    if portal.last_webhook_at and now - portal.last_webhook_at <= health.WEBHOOKS_FLOWING_WITHIN:
        return "flowing"
    return "quiet"


def _refused_during(portal: Portal, sync: PortalSync | None, since: datetime) -> bool:
    return bool(sync and sync.last_refused_at and sync.last_refused_at > since)


# The waits of the last hour, summed by the database: every publication asks for them,
# and a busy portal starts hundreds of chats an hour. Raw SQL, one per database: the same
# sum through the ORM's expressions costs more to compile than the rows cost to read.
_WAIT_SECONDS = {
    "sqlite": "MAX(0.0, (julianday(waited_until) - julianday(started_at)) * 86400.0)",
    "postgresql": "GREATEST(0.0, EXTRACT(EPOCH FROM (waited_until - started_at)))",
}
_WAITS = """
    SELECT SUM({seconds}), COUNT(waited_until) FROM (
        SELECT started_at,
               COALESCE(attended_at, CASE WHEN status = %s THEN %s END, ended_at)
                   AS waited_until
        FROM {table} WHERE portal_id = %s AND started_at >= %s
    ) AS waits
"""


def wait_stats(portal: Portal, now: datetime) -> tuple[float, int]:
    """Total and count of waits of chats that started in the last hour (still waiting: so
    far; missed: until it was given up; picked up with no known time: not counted)."""
    since = now - timedelta(hours=1)
    if connection.vendor not in _WAIT_SECONDS:
        return _wait_stats_in_python(portal, now, since)
    sql = _WAITS.format(seconds=_WAIT_SECONDS[connection.vendor], table=Chat._meta.db_table)
    moment = Chat._meta.get_field("started_at")
    params = [
        str(ChatStatus.WAITING),
        moment.get_db_prep_value(now, connection),
        Chat._meta.get_field("portal").get_db_prep_value(portal.pk, connection),
        moment.get_db_prep_value(since, connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        total, count = cursor.fetchone()
    return float(total or 0.0), int(count or 0)


def _wait_stats_in_python(portal: Portal, now: datetime, since: datetime) -> tuple[float, int]:
    total, count = 0.0, 0
    rows = Chat.objects.filter(portal=portal, started_at__gte=since).values_list(
        "started_at", "attended_at", "status", "ended_at"
    )
    for started, attended, status, ended in rows:
        end = attended or (now if status == ChatStatus.WAITING else ended)
        if end is not None:
            total += max(0.0, (end - started).total_seconds())
            count += 1
    return total, count


def _banner(
    portal: Portal,
    state: health.Health,
    webhooks: str,
    *,
    needs_admin: bool,
    sync: PortalSync | None = None,
) -> str:
    """What makes a live portal's data doubtful, in words; empty when nothing does."""
    if state.state == health.State.UNREACHABLE:
        return f"{portal.name}: {state.label}. {state.sentence}"
    if needs_admin:
        return ""  # said once, in the needs-admin line, not in a banner as well
    if webhooks == "refused" and sync is not None:
        return (
            f"{portal.name}: no verified webhook from SalesIQ for over {_SILENCE_MINUTES} "
            f"minutes, and deliveries were refused meanwhile ({sync.last_refused_reason}). "
            "Updates come from polling only and may lag."
        )
    if webhooks == "silent":
        return (
            f"{portal.name}: no webhook from SalesIQ for over {_SILENCE_MINUTES} minutes. "
            "Updates come from polling only and may lag."
        )
    return ""


# The "unanswered" rule's threshold, by portal: every publication's meta asks for it, and an
# admin changes it rarely (a change reaches the pages within this many seconds).
UNANSWERED_RULE_TTL = 15.0
_unanswered_rules: dict[Any, tuple[float, int | None]] = {}


def unanswered_threshold(portal: Portal) -> int | None:
    """Minutes of the portal's enabled "unanswered" alert rule (None: off or not made yet)."""
    at = time.monotonic()
    known = _unanswered_rules.get(portal.pk)
    if known is not None and known[0] > at:
        return known[1]
    value = (
        AlertRule.objects.filter(portal_id=portal.pk, kind=AlertKind.UNANSWERED, enabled=True)
        .values_list("threshold", flat=True)
        .first()
    )
    _unanswered_rules[portal.pk] = (at + UNANSWERED_RULE_TTL, value)
    return value


def forget_rules(portal: Portal) -> None:
    """The portal's rules changed (this process): read them afresh."""
    _unanswered_rules.pop(portal.pk, None)


def freshness(portal: Portal, now: datetime | None = None) -> Freshness:
    now = now or timezone.now()
    state = health.portal_health(portal, now=now)
    needs_admin, needs_admin_others = _NEEDS_ADMIN.get(state.state, ("", ""))
    if not is_live(portal):
        # Nothing of it shows or counts: no ages, no waits, only that an admin must act.
        return Freshness(
            portal=portal,
            sync=None,
            health=state,
            webhooks="none",
            chats_as_of=None,
            operators_as_of=None,
            stale=False,
            banner="",
            avg_wait_sum=0.0,
            avg_wait_count=0,
            live=False,
            needs_admin=needs_admin,
            needs_admin_others=needs_admin_others,
        )
    sync = PortalSync.objects.filter(portal=portal).first()
    has_open = Chat.objects.filter(portal=portal, status__in=OPEN_CHAT_STATUSES).exists()
    webhooks = _webhook_state(portal, now, has_open, sync)
    chats_as_of = max(
        (t for t in (sync and sync.chats_polled_at, sync and sync.last_event_at) if t), default=None
    )
    operators_as_of = sync.operators_polled_at if sync else None
    banner = _banner(portal, state, webhooks, needs_admin=bool(needs_admin), sync=sync)
    newest = max((t for t in (chats_as_of, operators_as_of) if t), default=None)
    stale = state.state in _UNTRUSTED or newest is None or now - newest > STALE_AFTER
    avg_sum, avg_count = wait_stats(portal, now)
    unanswered = unanswered_threshold(portal)
    return Freshness(
        portal=portal,
        sync=sync,
        health=state,
        webhooks=webhooks,
        chats_as_of=chats_as_of,
        operators_as_of=operators_as_of,
        stale=stale,
        banner=banner,
        avg_wait_sum=avg_sum,
        avg_wait_count=avg_count,
        unanswered_after=unanswered * 60 if unanswered else None,
        needs_admin=needs_admin,
        needs_admin_others=needs_admin_others,
    )


def live_context(portals: list[Portal], now: datetime | None = None) -> dict[str, Any]:
    """Everything the live page and a websocket snapshot render. Chats, operators,
    departments and alerts come from the live portals only; every portal has its meta
    (a disconnected one says an admin must act)."""
    now = now or timezone.now()
    live = live_only(portals)
    return {
        "portals": portals,
        "chats": list(open_chats(live)),
        "operator_views": operator_views(live),
        "freshness": [freshness(portal, now) for portal in portals],
        "departments": list(
            Department.objects.filter(portal__in=live)
            .order_by("name")
            .values_list("portal_id", "remote_id", "name")
        ),
        "alerts": alert_rows(open_alerts(live)),
        "thresholds": thresholds(),
        "now": now,
    }


def open_alerts(portals: list[Portal]) -> QuerySet[Alert]:
    """The portals' open alerts (the page orders them: what needs someone first), with
    what their rows show now (``alert_rows``)."""
    return (
        Alert.objects.filter(portal__in=portals, resolved_at__isnull=True)
        .select_related("portal", "chat", "operator")
        .prefetch_related("escalations")
        .order_by("raised_at", "pk")
    )


def alert_rows(alerts: Iterable[Alert]) -> list[Alert]:
    """``alerts`` (with portal, chat and operator selected) as their rows show them: each
    with ``words``, its title and detail from its chat's, operator's or portal's state now
    (dashboard/alerts/words.py; None for a resolved one or where the stored title serves).
    Operators' open chats are counted in one query, and only when an operator's alert is
    among them."""
    alerts = list(alerts)
    by_operator = [a for a in alerts if a.operator_id and a.operator and a.is_open]
    loads = operator_loads(list({a.portal for a in by_operator})) if by_operator else Counter()
    for alert in alerts:
        load = loads.get((alert.portal_id, alert.operator.remote_id), 0) if alert.operator else 0
        alert.words = words_now(alert, load) if alert.is_open else None
    return alerts


# --- KPIs (the JSON snapshot; the page sums the same per row: each chat row's
# data-waiting-since is Chat.waited_since, each operator row's data-figure operator_figure) ---


def kpis(portals: list[Portal], now: datetime | None = None) -> dict[str, Any]:
    """The key figures of the live portals among ``portals`` (the others count nothing)."""
    now = now or timezone.now()
    portals = live_only(portals)
    # One query. Chat.waited_since is the one definition of since when a visitor waits, and
    # it reads only these fields: its getter is applied to the plain rows (model instances
    # would cost ~40 ms more at 2,000 open chats, measured against rows like these).
    chats = list(
        open_chats(portals).values_list("status", "waiting_since", "started_at", named=True)
    )
    waiting = [chat for chat in chats if chat.status == ChatStatus.WAITING]
    waited_since = Chat.waited_since.fget
    longest = max(
        (
            (now - since).total_seconds()
            for since in (waited_since(chat) for chat in waiting)
            if since
        ),
        default=0.0,
    )
    total, count = 0.0, 0
    for portal in portals:
        part_total, part_count = wait_stats(portal, now)
        total, count = total + part_total, count + part_count
    ops = list(
        Operator.objects.filter(portal__in=portals, enabled=True).values("status", "max_chats")
    )
    figures = Counter(operator_figure(o["status"], True) for o in ops)
    capacity = sum(operator_seats(o["status"], True, o["max_chats"]) for o in ops)
    return {
        "open_chats": len(chats),
        "waiting": len(waiting),
        "longest_wait_seconds": round(longest),
        "average_wait_last_hour_seconds": round(total / count) if count else None,
        "operators_available": figures["available"],
        "operators_busy": figures["busy"],
        "operators_offline": figures["offline"],
        "capacity_available": capacity,
        "utilisation": round(len(chats) / capacity, 3) if capacity else None,
    }


# --- choices for actions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """An operator as a transfer picker shows it, best choices first."""

    view: OperatorView
    covers_department: bool
    # Its place among every choice ranked both ways (in the department picked, or not), so
    # the browser re-ranks by the server's one rank when another department is picked.
    place_inside: int = 0
    place_outside: int = 0

    @property
    def free(self) -> int | None:
        capacity = self.view.capacity
        return None if capacity is None else capacity - self.view.load

    def rank_for(self, covers_department: bool) -> tuple:
        """Available with room first, in the department before elsewhere, the most room
        first; then busy, away; offline last."""
        op = self.view.operator
        status_order = {OperatorStatus.AVAILABLE: 0, OperatorStatus.BUSY: 1, OperatorStatus.AWAY: 2}
        has_room = self.free is None or self.free > 0
        return (
            status_order.get(op.status, 3),
            not (has_room and op.status == OperatorStatus.AVAILABLE),
            not covers_department,
            -(self.free or 0),
            op.shown_name,
            op.pk,
        )

    @property
    def rank(self) -> tuple:
        return self.rank_for(self.covers_department)


def _covers(operator: Operator, department_id: str) -> bool:
    # No department named: each operator is as good a fit as the next.
    return not department_id or department_id in operator.department_ids


def current_operators(chat: Chat, operators: list[Operator]) -> set[int]:
    """Which of ``operators`` has ``chat`` now (pks): never offered as its transfer target.

    By SalesIQ id; a chat whose operator id matches nobody (or names none) is matched by the
    operator's name, every namesake included, rather than risk offering the operator back."""
    remote_id = (chat.operator_id or "").strip()
    if remote_id:
        by_id = {op.pk for op in operators if op.remote_id.strip() == remote_id}
        if by_id:
            return by_id
    name = (chat.operator_name or "").strip().casefold()
    if not name:
        return set()
    return {
        op.pk for op in operators if name in {op.name.strip().casefold(), op.shown_name.casefold()}
    }


def transfer_choices(chat: Chat) -> dict[str, Any]:
    """Departments (the chat's own first) and operators (available, with room, of the
    chat's department first; offline last) for transferring ``chat``; never the operator
    who has it."""
    portal = chat.portal
    departments = list(Department.objects.filter(portal=portal, enabled=True).order_by("name"))
    departments.sort(key=lambda d: d.remote_id != chat.department_id)
    views = [view for view in operator_views([portal]) if view.operator.enabled]
    current = current_operators(chat, [view.operator for view in views])
    choices = [
        Choice(view=view, covers_department=_covers(view.operator, chat.department_id))
        for view in views
        if view.operator.pk not in current
    ]
    # Every choice ranked both ways, in one order: a department's ranking is each choice's
    # place for whether it covers that department.
    both = sorted(
        [(choice.rank_for(True), n, True) for n, choice in enumerate(choices)]
        + [(choice.rank_for(False), n, False) for n, choice in enumerate(choices)]
    )
    places: dict[tuple[int, bool], int] = {
        (n, inside): at for at, (_, n, inside) in enumerate(both)
    }
    choices = [
        replace(choice, place_inside=places[(n, True)], place_outside=places[(n, False)])
        for n, choice in enumerate(choices)
    ]
    choices.sort(key=lambda choice: choice.rank)
    return {"departments": departments, "choices": choices}
