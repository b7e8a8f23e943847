"""What is true now: the conditions the time-based rules raise alerts for."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from siq_integration import health
from siq_integration.models import Portal

from .. import selectors
from ..figures import queues
from ..figures.counting import settings_of, zone_of
from ..figures.definitions import Figures, Tally, figures
from ..models import (
    OPEN_CHAT_STATUSES,
    Alert,
    AlertKind,
    AlertRule,
    Chat,
    ChatStatus,
    Department,
    DepartmentService,
    Operator,
)
from .rules import RULES, SERVICE_KINDS
from .words import (
    Words,
    chat_words,
    missed_share_words,
    operator_words,
    portal_words,
    service_level_words,
)


@dataclass(frozen=True)
class Condition:
    rule: AlertRule
    target: str
    title: str
    detail: str = ""
    chat: Chat | None = None
    operator: Operator | None = None


def in_scope(rule: AlertRule, department_ids: Iterable[str]) -> bool:
    scope = set(rule.department_ids or [])
    return not scope or bool(scope & {d for d in department_ids if d})


def make_condition(rule: AlertRule, target: str, words: Words, now: datetime, **about) -> Condition:
    return Condition(rule, target, words.title_at(now), words.detail, **about)


def chat_conditions(
    rules: dict[str, AlertRule], chats: list[Chat], now: datetime
) -> list[Condition]:
    found: list[Condition] = []
    long_chat, long_wait, unanswered = (
        rules.get(AlertKind.LONG_CHAT),
        rules.get(AlertKind.LONG_WAIT),
        rules.get(AlertKind.UNANSWERED),
    )
    for chat in chats:
        if chat.status not in OPEN_CHAT_STATUSES:
            continue
        target = f"chat:{chat.remote_id}"
        for rule, since, limit in (
            (long_chat, chat.started_at, long_chat and long_chat.threshold * 60),
            (
                long_wait,
                chat.waiting_since if chat.status == ChatStatus.WAITING else None,
                long_wait and long_wait.threshold,
            ),
            (
                unanswered,
                chat.last_message_at
                if chat.status == ChatStatus.CONNECTED and chat.last_message_sender == "visitor"
                else None,
                unanswered and unanswered.threshold * 60,
            ),
        ):
            if (
                rule
                and rule.enabled
                and since
                and in_scope(rule, [chat.department_id])
                and (now - since).total_seconds() > limit
                and (words := chat_words(rule.kind, chat))
            ):
                found.append(make_condition(rule, target, words, now, chat=chat))
    return found


def operator_conditions(
    rules: dict[str, AlertRule], portal: Portal, now: datetime
) -> list[Condition]:
    found: list[Condition] = []
    away, over = (
        rules.get(AlertKind.OPERATOR_AWAY_WITH_CHATS),
        rules.get(AlertKind.OPERATOR_OVER_CAPACITY),
    )
    for view in selectors.operator_views([portal]):
        op = view.operator
        target = f"operator:{op.remote_id}"
        if (
            away
            and away.enabled
            and view.away_with_chats
            and in_scope(away, op.department_ids)
            and (now - (op.status_since or op.fact_at)).total_seconds() >= away.threshold * 60
            and (words := operator_words(away.kind, op, view.load))
        ):
            found.append(make_condition(away, target, words, now, operator=op))
        if (
            over
            and over.enabled
            and view.capacity is not None
            and view.load > view.capacity + over.threshold
            and in_scope(over, op.department_ids)
            and (words := operator_words(over.kind, op, view.load))
        ):
            found.append(make_condition(over, target, words, now, operator=op))
    return found


def portal_conditions(
    rules: dict[str, AlertRule], portal: Portal, now: datetime
) -> list[Condition]:
    found: list[Condition] = []
    state = health.portal_health(portal, now=now)
    silence = rules.get(AlertKind.WEBHOOK_SILENCE)
    if silence and silence.enabled and portal.is_connected and portal.webhook_id:
        has_open = Chat.objects.filter(portal=portal, status__in=OPEN_CHAT_STATUSES).exists()
        # The page's definition of silence (selectors.webhook_silence), the rule's threshold.
        silent_for = selectors.webhook_silence(portal, now, has_open=has_open)
        quiet = silent_for.total_seconds() if silent_for is not None else 0.0
        # Never while webhooks still count as flowing (one definition, siq_integration/
        # health.py), however low the rule's threshold is set.
        limit = max(silence.threshold * 60, health.WEBHOOKS_FLOWING_WITHIN.total_seconds())
        if quiet > limit:
            words = portal_words(silence.kind, portal)
            if words:
                found.append(make_condition(silence, "portal", words, now))
    unreachable = rules.get(AlertKind.SALESIQ_UNREACHABLE)
    if unreachable and unreachable.enabled and state.state == health.State.UNREACHABLE:
        since = state.since or now
        if (now - since).total_seconds() >= unreachable.threshold * 60:
            found.append(
                Condition(
                    unreachable,
                    "portal",
                    f"{portal.name}: SalesIQ unreachable since {since:%H:%M} UTC",
                    state.sentence,
                )
            )
    reconnect = rules.get(AlertKind.RECONNECT_NEEDED)
    if (
        reconnect
        and reconnect.enabled
        and state.state in (health.State.RECONNECT, health.State.MISCONFIGURED)
    ):
        found.append(
            Condition(reconnect, "portal", f"{portal.name}: {state.label.lower()}", state.sentence)
        )
    return found


# --- service rules: a department's figures over the last N minutes -------------------------


def department_target(department_id: str) -> str:
    return f"department:{department_id}"


def _waits_by_department(portal: Portal) -> dict[str, list[datetime]]:
    """When each waiting chat's wait began (Chat.waited_since, the one definition), by
    department, as the queues read them."""
    waits: dict[str, list[datetime]] = {}
    waited_since = Chat.waited_since.fget
    for chat in Chat.objects.filter(portal=portal, status=ChatStatus.WAITING).values_list(
        "status", "waiting_since", "started_at", "department_id", named=True
    ):
        if (since := waited_since(chat)) is not None:
            waits.setdefault(chat.department_id, []).append(since)
    return waits


def _department_names(portal: Portal) -> dict[str, str]:
    return dict(Department.objects.filter(portal=portal).values_list("remote_id", "name"))


def service_conditions(
    rules: dict[str, AlertRule], portal: Portal, now: datetime
) -> tuple[list[Condition], dict[tuple[int, str], str]]:
    """The departments in trouble by the service rules, one condition per rule and
    department, and for each department judged and found well, why (the words an open
    alert of it resolves with). Every number is definitions.figures() on the tally of the
    chats that arrived in the rule's window plus the ones waiting past the target now, as
    the queues' last hour is counted (figures/queues.py)."""
    found: list[Condition] = []
    well: dict[tuple[int, str], str] = {}
    active = [rules[kind] for kind in sorted(SERVICE_KINDS) if kind in rules]
    active = [rule for rule in active if rule.enabled]
    if not active:
        return found, well
    service = settings_of(portal.pk)
    zone = zone_of(service)
    own = {d.department_id: d for d in DepartmentService.objects.filter(portal=portal)}
    names = _department_names(portal)
    waits = _waits_by_department(portal)
    windows: dict[int, dict[str, Tally]] = {}  # both rules over one window: read it once
    for rule in active:
        spec = RULES[rule.kind]
        minutes = rule.window_minutes or spec.window or 0
        minimum = rule.minimum_chats if rule.minimum_chats is not None else spec.minimum or 0
        if minutes not in windows:
            windows[minutes] = {
                department: tally
                for (_, department), tally in queues.window_tallies([portal], now, minutes).items()
            }
        tallies = windows[minutes]
        # A department with an open alert is judged even with no chat left in the window:
        # its alert resolves saying why.
        alerted = {
            target.removeprefix("department:")
            for target in Alert.objects.filter(rule=rule, resolved_at__isnull=True).values_list(
                "target", flat=True
            )
        }
        for department in sorted(set(tallies) | set(waits) | alerted):
            if not in_scope(rule, [department]):
                continue
            key = department_target(department)
            hours = own[department].hours if department in own else {}
            if not queues.is_open(hours, now.astimezone(zone)):
                # Outside business hours missed chats are expected: nobody is paged for them.
                well[(rule.pk, key)] = "The department is closed now (outside its business hours)."
                continue
            target = queues.target_of(service, own.get(department))
            waiting = queues.past_target_in_window(
                waits.get(department, ()), now, minutes, target.seconds
            )
            level = figures(tallies.get(department, Tally()), target, waiting_past_target=waiting)
            name = (
                names.get(department)
                or (department and f"Department {department}")
                or queues.NO_DEPARTMENT
            )
            if rule.kind == AlertKind.SERVICE_LEVEL_LOW:
                words, why = _service_level(rule, level, name, minutes, minimum, waiting)
            else:
                words, why = _missed_share(rule, level, name, minutes, minimum)
            if words is not None:
                found.append(make_condition(rule, key, words, now))
            else:
                well[(rule.pk, key)] = why
    return found, well


def _service_level(
    rule: AlertRule, level: Figures, name: str, minutes: int, minimum: int, waiting: int
) -> tuple[Words | None, str]:
    """(the words when the level is below the rule's share, else why not)."""
    if level.judged < minimum or level.service_level is None:
        return None, (
            f"Fewer than {minimum} chats to judge over the last {minutes} min ({level.judged} now)."
        )
    if level.service_level >= rule.threshold:
        return None, f"The service level is back at {math.floor(level.service_level)} %."
    return service_level_words(name, level, minutes, rule.threshold, waiting), ""


def _missed_share(
    rule: AlertRule, level: Figures, name: str, minutes: int, minimum: int
) -> tuple[Words | None, str]:
    """(the words when more than the rule's share of chats were missed, else why not).
    The share is missed out of answered and missed: abandoned chats count on neither side,
    as in the service level, and chats still waiting are not decided yet."""
    decided = level.answered + level.missed
    if decided < minimum or not decided:
        return None, (
            f"Fewer than {minimum} chats to judge over the last {minutes} min ({decided} now)."
        )
    share = 100.0 * level.missed / decided
    if share <= rule.threshold:
        return None, f"Missed chats are down to {round(share)} %."
    return missed_share_words(name, level, share, minutes, rule.threshold), ""
