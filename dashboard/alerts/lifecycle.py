"""The alert lifecycle: raised → acknowledged → resolved, snoozed on demand.

Time-based rules are evaluated by the worker every few seconds (``evaluate``); event-based
ones (a missed chat, a low rating) after each publication of changed chats
(``after_publication``, the publisher's hook). One alert per condition and target: a
partial unique constraint on the open ones keeps duplicates out whoever evaluates, however
often, and across restarts. What changes is recorded (state/changes.py) and published
after the commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from siq_integration.models import Portal

from .. import selectors
from ..models import (
    OPEN_CHAT_STATUSES,
    Alert,
    AlertKind,
    Chat,
    ChatStatus,
)
from ..state.changes import Changes, record
from ..users import shown_name
from .conditions import (
    Condition,
    chat_conditions,
    in_scope,
    make_condition,
    operator_conditions,
    portal_conditions,
    service_conditions,
)
from .rules import EVENT_ALERT_WINDOW, RULES, SERVICE_KINDS, SNOOZE_CHOICES, ensure_rules
from .words import chat_words


@dataclass
class Outcome:
    raised: list[Alert]
    resolved: list[Alert]


def _raise(condition: Condition, now: datetime) -> Alert | None:
    try:
        with transaction.atomic():
            return Alert.objects.create(
                portal=condition.rule.portal,
                rule=condition.rule,
                kind=condition.rule.kind,
                severity=condition.rule.severity,
                target=condition.target,
                chat=condition.chat,
                operator=condition.operator,
                title=condition.title[:300],
                detail=condition.detail,
                raised_at=now,
                changed_at=now,
            )
    except IntegrityError:
        return None  # already open: raised by an earlier round or another process


def _resolve(alerts: Iterable[Alert], now: datetime, reason: str | None = None) -> list[Alert]:
    done = []
    for alert in alerts:
        why = reason or _cleared(alert)
        updated = Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
            resolved_at=now, resolved_reason=why[:200], changed_at=now
        )
        if updated:
            alert.resolved_at, alert.resolved_reason = now, why
            done.append(alert)
    return done


def _cleared(alert: Alert) -> str:
    if alert.chat_id:
        chat = Chat.objects.filter(pk=alert.chat_id).only("status").first()
        if chat is None or chat.status not in OPEN_CHAT_STATUSES:
            return "The chat ended."
    return {
        AlertKind.LONG_WAIT: "An operator picked the chat up.",
        AlertKind.UNANSWERED: "The operator answered.",
        AlertKind.OPERATOR_AWAY_WITH_CHATS: "The operator is available again or has no open chats.",
        AlertKind.OPERATOR_OVER_CAPACITY: "The operator is within capacity again.",
        AlertKind.WEBHOOK_SILENCE: "Webhooks arrive again.",
        AlertKind.SALESIQ_UNREACHABLE: "SalesIQ answers again.",
        AlertKind.RECONNECT_NEEDED: "The portal's connection works again.",
        AlertKind.LONG_CHAT: "The condition cleared.",
        AlertKind.SERVICE_LEVEL_LOW: "The rule or its departments changed.",
        AlertKind.MISSED_SHARE_HIGH: "The rule or its departments changed.",
    }.get(alert.kind, "The condition cleared.")


def evaluate(portal: Portal, now: datetime | None = None) -> Outcome:
    """Raise what holds now and resolve what no longer does (time-based rules)."""
    now = now or timezone.now()
    rules = ensure_rules(portal)
    chats = list(selectors.open_chats([portal]))
    in_trouble, well = service_conditions(rules, portal, now)
    conditions = (
        chat_conditions(rules, chats, now)
        + operator_conditions(rules, portal, now)
        + portal_conditions(rules, portal, now)
        + in_trouble
    )
    wanted = {(c.rule.pk, c.target): c for c in conditions}
    time_rules = [rule.pk for kind, rule in rules.items() if not RULES[kind].event]
    open_alerts = list(
        Alert.objects.filter(portal=portal, rule_id__in=time_rules, resolved_at__isnull=True)
    )
    have = {(a.rule_id, a.target) for a in open_alerts}
    raised = [alert for key, c in wanted.items() if key not in have and (alert := _raise(c, now))]
    resolved = [
        done
        for alert in open_alerts
        if (alert.rule_id, alert.target) not in wanted
        for done in _resolve([alert], now, well.get((alert.rule_id, alert.target)))
    ]
    reworded = _reword_service_alerts(open_alerts, wanted, now)
    if raised or resolved or reworded:
        announce(portal, raised + resolved + reworded)
    return Outcome(raised, resolved)


def _reword_service_alerts(
    open_alerts: list[Alert], wanted: dict[tuple[int, str], Condition], now: datetime
) -> list[Alert]:
    """A department's figures move while its alert is open: its title and detail follow
    them (the panel, the escalation and the history read the stored words; there is no
    chat or operator to read them from)."""
    changed = []
    for alert in open_alerts:
        condition = wanted.get((alert.rule_id, alert.target))
        if alert.kind not in SERVICE_KINDS or condition is None:
            continue
        title = condition.title[:300]
        if (alert.title, alert.detail) == (title, condition.detail):
            continue
        Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
            title=title, detail=condition.detail, changed_at=now
        )
        alert.title, alert.detail = title, condition.detail
        changed.append(alert)
    return changed


def on_changes(portal_id: Any, chat_pks: Iterable[int], now: datetime | None = None) -> Outcome:
    """After live state changed: event rules (missed, low rating) for these chats, and the
    alerts of chats that ended resolve at once."""
    now = now or timezone.now()
    chats = list(
        Chat.objects.filter(pk__in=list(chat_pks), portal_id=portal_id).select_related("portal")
    )
    if not chats:
        return Outcome([], [])
    portal = chats[0].portal
    raised: list[Alert] = []
    # Most changes (a message, a pickup) concern no event rule: no rules to read for them.
    concerned = [c for c in chats if c.status == ChatStatus.MISSED or c.rating is not None]
    rules = ensure_rules(portal) if concerned else {}
    for chat in concerned:
        missed, low = rules[AlertKind.MISSED_CHAT], rules[AlertKind.LOW_RATING]
        target = f"chat:{chat.remote_id}"
        recent = chat.ended_at is None or now - chat.ended_at <= EVENT_ALERT_WINDOW
        if (
            missed.enabled
            and chat.status == ChatStatus.MISSED
            and recent
            and in_scope(missed, [chat.department_id])
            # One alert per missed chat ever: acknowledging it must not bring it back.
            and not Alert.objects.filter(rule=missed, target=target).exists()
        ):
            words = chat_words(missed.kind, chat)
            alert = (
                _raise(make_condition(missed, target, words, now, chat=chat), now)
                if words
                else None
            )
            raised += [alert] if alert else []
        if (
            low.enabled
            and chat.rating is not None
            and chat.rating <= low.threshold
            and recent
            and in_scope(low, [chat.department_id])
            and not Alert.objects.filter(rule=low, target=target).exists()
        ):
            words = chat_words(low.kind, chat)
            alert = (
                _raise(make_condition(low, target, words, now, chat=chat), now) if words else None
            )
            raised += [alert] if alert else []
    ended = [c.pk for c in chats if c.status not in OPEN_CHAT_STATUSES]
    time_kinds = [kind for kind, spec in RULES.items() if not spec.event]
    resolved = (
        _resolve(
            Alert.objects.filter(chat_id__in=ended, kind__in=time_kinds, resolved_at__isnull=True),
            now,
            "The chat ended.",
        )
        if ended
        else []
    )
    if raised or resolved:
        announce(portal, raised + resolved)
    return Outcome(raised, resolved)


def acknowledge(alert: Alert, user: Any, now: datetime | None = None) -> Alert:
    """Someone has it. Event alerts (nothing left to clear) are resolved by this."""
    now = now or timezone.now()
    if alert.acknowledged_at is None:
        Alert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(
            acknowledged_at=now,
            acknowledged_by=user,
            acknowledged_by_name=shown_name(user)[:150],
            changed_at=now,
        )
    alert.refresh_from_db()
    if RULES[alert.kind].event and alert.is_open:
        _resolve([alert], now, f"Acknowledged by {alert.acknowledged_by_name}.")
        alert.refresh_from_db()
    announce(alert.portal, [alert])
    return alert


def snooze(alert: Alert, user: Any, minutes: int, now: datetime | None = None) -> Alert:
    if minutes not in SNOOZE_CHOICES:
        raise ValueError(f"snooze for {minutes} minutes")
    now = now or timezone.now()
    Alert.objects.filter(pk=alert.pk).update(
        snoozed_until=now + timedelta(minutes=minutes),
        snoozed_by_name=shown_name(user)[:150],
        changed_at=now,
    )
    alert.refresh_from_db()
    announce(alert.portal, [alert])
    return alert


def announce(portal: Portal, alerts: list[Alert]) -> None:
    """These alerts changed: their rows follow on the pages after the commit."""
    record(Changes(portal.pk, alerts={alert.pk for alert in alerts}))


def after_publication(changes: Changes) -> None:
    """The publisher's hook: event rules (missed, low rating) fire on the chats a
    publication changed, and the alerts of chats that ended resolve at once."""
    if changes.chats:
        on_changes(changes.portal_id, changes.chats)
