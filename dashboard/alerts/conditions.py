"""What is true now: the conditions the time-based rules raise alerts for."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from siq_integration import health
from siq_integration.models import Portal

from .. import selectors
from ..models import (
    OPEN_CHAT_STATUSES,
    AlertKind,
    AlertRule,
    Chat,
    ChatStatus,
    Operator,
)
from .words import Words, chat_words, operator_words, portal_words


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
