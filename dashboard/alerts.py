"""Alert rules and the alert lifecycle: raised → acknowledged → resolved, snoozed on demand,
escalated when nobody acknowledges in time.

Time-based rules are evaluated by the worker every few seconds (``evaluate``); event-based
ones (a missed chat, a low rating) as changes are applied (``on_changes``). One alert per
condition and target: a partial unique constraint on the open ones keeps duplicates out
whoever evaluates, however often, and across restarts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from siq_integration import health
from siq_integration.models import Portal

from . import selectors
from .models import (
    OPEN_CHAT_STATUSES,
    Alert,
    AlertKind,
    AlertRule,
    Chat,
    ChatStatus,
    Escalation,
    Operator,
    Severity,
)

logger = logging.getLogger(__name__)

SNOOZE_CHOICES = (5, 15, 60)  # minutes
EVENT_ALERT_WINDOW = timedelta(hours=1)  # a missed chat or a rating older than this is history
WEBHOOK_TIMEOUT = 5.0


@dataclass(frozen=True)
class RuleSpec:
    kind: AlertKind
    threshold: int
    unit: str  # how the threshold reads: "minutes", "seconds", "rating or lower", ""
    severity: Severity
    event: bool = False  # raised by an event; resolved when acknowledged
    scoped: bool = True  # can be limited to departments
    threshold_help: str = ""


RULES: dict[str, RuleSpec] = {
    spec.kind: spec
    for spec in (
        RuleSpec(
            AlertKind.LONG_CHAT,
            30,
            "minutes",
            Severity.WARNING,
            threshold_help="A chat open longer than this.",
        ),
        RuleSpec(
            AlertKind.LONG_WAIT,
            60,
            "seconds",
            Severity.CRITICAL,
            threshold_help="A visitor waiting for pickup longer than this.",
        ),
        RuleSpec(
            AlertKind.UNANSWERED,
            3,
            "minutes",
            Severity.WARNING,
            threshold_help="The visitor's last message unanswered for longer than this.",
        ),
        RuleSpec(
            AlertKind.OPERATOR_AWAY_WITH_CHATS,
            2,
            "minutes",
            Severity.WARNING,
            threshold_help="Busy, away or offline with open chats for longer than this.",
        ),
        RuleSpec(
            AlertKind.OPERATOR_OVER_CAPACITY,
            0,
            "chats over capacity",
            Severity.WARNING,
            threshold_help="More open chats than the operator's capacity plus this.",
        ),
        RuleSpec(AlertKind.MISSED_CHAT, 0, "", Severity.WARNING, event=True),
        RuleSpec(
            AlertKind.LOW_RATING,
            2,
            "rating or lower",
            Severity.WARNING,
            event=True,
            threshold_help="A rating at or below this (1 to 5).",
        ),
        RuleSpec(
            AlertKind.WEBHOOK_SILENCE,
            10,
            "minutes",
            Severity.WARNING,
            scoped=False,
            threshold_help="No webhook from SalesIQ for this long while chats are open.",
        ),
        RuleSpec(
            AlertKind.SALESIQ_UNREACHABLE,
            2,
            "minutes",
            Severity.CRITICAL,
            scoped=False,
            threshold_help="SalesIQ not answering for this long.",
        ),
        RuleSpec(AlertKind.RECONNECT_NEEDED, 0, "", Severity.CRITICAL, scoped=False),
    )
}


def ensure_rules(portal: Portal) -> dict[str, AlertRule]:
    """The portal's rules, with the defaults created for any kind it does not have yet."""
    rules = {rule.kind: rule for rule in AlertRule.objects.filter(portal=portal)}
    for kind, spec in RULES.items():
        if kind not in rules:
            try:
                with transaction.atomic():
                    rules[kind] = AlertRule.objects.create(
                        portal=portal, kind=kind, threshold=spec.threshold, severity=spec.severity
                    )
            except IntegrityError:  # another process made it first
                rules[kind] = AlertRule.objects.get(portal=portal, kind=kind)
    return rules


# --- conditions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    rule: AlertRule
    target: str
    title: str
    detail: str = ""
    chat: Chat | None = None
    operator: Operator | None = None


def _in_scope(rule: AlertRule, department_ids: Iterable[str]) -> bool:
    scope = set(rule.department_ids or [])
    return not scope or bool(scope & {d for d in department_ids if d})


def _minutes(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _visitor(chat: Chat) -> str:
    return chat.visitor_name or "A visitor"


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
        where = f" ({chat.department_name})" if chat.department_name else ""
        if (
            long_chat
            and long_chat.enabled
            and chat.started_at
            and _in_scope(long_chat, [chat.department_id])
        ):
            running = (now - chat.started_at).total_seconds()
            if running > long_chat.threshold * 60:
                found.append(
                    Condition(
                        long_chat,
                        target,
                        f"{_visitor(chat)}'s chat has run {_minutes(running)}{where}",
                        f"With {chat.operator_name or 'nobody yet'}.",
                        chat=chat,
                    )
                )
        if (
            long_wait
            and long_wait.enabled
            and chat.status == ChatStatus.WAITING
            and chat.waiting_since
            and _in_scope(long_wait, [chat.department_id])
        ):
            waited = (now - chat.waiting_since).total_seconds()
            if waited > long_wait.threshold:
                found.append(
                    Condition(
                        long_wait,
                        target,
                        f"{_visitor(chat)} has waited {_minutes(waited)} for pickup{where}",
                        chat.question[:200],
                        chat=chat,
                    )
                )
        if (
            unanswered
            and unanswered.enabled
            and chat.status == ChatStatus.CONNECTED
            and chat.last_message_sender == "visitor"
            and chat.last_message_at
            and _in_scope(unanswered, [chat.department_id])
        ):
            silent = (now - chat.last_message_at).total_seconds()
            if silent > unanswered.threshold * 60:
                found.append(
                    Condition(
                        unanswered,
                        target,
                        f"{_visitor(chat)} has had no answer for {_minutes(silent)}",
                        f"{chat.operator_name or 'The operator'} has not replied to: "
                        f"“{chat.last_message_text[:160]}”",
                        chat=chat,
                    )
                )
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
        if away and away.enabled and view.away_with_chats and _in_scope(away, op.department_ids):
            since = op.status_since or op.fact_at
            if (now - since).total_seconds() >= away.threshold * 60:
                found.append(
                    Condition(
                        away,
                        target,
                        f"{op.name} is {op.get_status_display().lower()} with {view.load} open chat"
                        f"{'s' if view.load != 1 else ''}",
                        "Their visitors may be waiting. Transfer the chats or drain the operator.",
                        operator=op,
                    )
                )
        if (
            over
            and over.enabled
            and view.capacity is not None
            and view.load > view.capacity + over.threshold
            and _in_scope(over, op.department_ids)
        ):
            found.append(
                Condition(
                    over,
                    target,
                    f"{op.name} has {view.load} chats for {view.capacity} seats",
                    operator=op,
                )
            )
    return found


def portal_conditions(
    rules: dict[str, AlertRule], portal: Portal, now: datetime
) -> list[Condition]:
    found: list[Condition] = []
    state = health.portal_health(portal, now=now)
    silence = rules.get(AlertKind.WEBHOOK_SILENCE)
    if silence and silence.enabled and portal.is_connected and portal.webhook_id:
        has_open = Chat.objects.filter(portal=portal, status__in=OPEN_CHAT_STATUSES).exists()
        last = portal.last_webhook_at or portal.webhook_registered_at
        quiet = (now - last).total_seconds() if last else 0
        if has_open and last and quiet > silence.threshold * 60:
            found.append(
                Condition(
                    silence,
                    "portal",
                    f"{portal.name}: no webhook from SalesIQ for {_minutes(quiet)}",
                    "Chats are open but SalesIQ sends nothing; the dashboard relies on polling. "
                    "Check the webhook on the portal page.",
                )
            )
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


# --- lifecycle -----------------------------------------------------------------------------------


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
    }.get(alert.kind, "The condition cleared.")


def evaluate(portal: Portal, now: datetime | None = None) -> Outcome:
    """Raise what holds now and resolve what no longer does (time-based rules)."""
    now = now or timezone.now()
    rules = ensure_rules(portal)
    chats = list(selectors.open_chats([portal]))
    conditions = (
        chat_conditions(rules, chats, now)
        + operator_conditions(rules, portal, now)
        + portal_conditions(rules, portal, now)
    )
    wanted = {(c.rule.pk, c.target): c for c in conditions}
    time_rules = [rule.pk for kind, rule in rules.items() if not RULES[kind].event]
    open_alerts = list(
        Alert.objects.filter(portal=portal, rule_id__in=time_rules, resolved_at__isnull=True)
    )
    have = {(a.rule_id, a.target) for a in open_alerts}
    raised = [alert for key, c in wanted.items() if key not in have and (alert := _raise(c, now))]
    resolved = _resolve([a for a in open_alerts if (a.rule_id, a.target) not in wanted], now)
    if raised or resolved:
        _publish(portal, raised + resolved)
    return Outcome(raised, resolved)


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
            and _in_scope(missed, [chat.department_id])
            # One alert per missed chat ever: acknowledging it must not bring it back.
            and not Alert.objects.filter(rule=missed, target=target).exists()
        ):
            alert = _raise(
                Condition(
                    missed,
                    target,
                    f"Missed chat: {_visitor(chat)} left unanswered",
                    chat.question[:200] or "Nobody picked the chat up.",
                    chat=chat,
                ),
                now,
            )
            raised += [alert] if alert else []
        if (
            low.enabled
            and chat.rating is not None
            and chat.rating <= low.threshold
            and recent
            and _in_scope(low, [chat.department_id])
            and not Alert.objects.filter(rule=low, target=target).exists()
        ):
            alert = _raise(
                Condition(
                    low,
                    target,
                    f"{_visitor(chat)} rated the chat {chat.rating}/5",
                    f"“{chat.feedback}”" if chat.feedback else "No feedback given.",
                    chat=chat,
                ),
                now,
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
        _publish(portal, raised + resolved)
    return Outcome(raised, resolved)


def acknowledge(alert: Alert, user: Any, now: datetime | None = None) -> Alert:
    """Someone has it. Event alerts (nothing left to clear) are resolved by this."""
    now = now or timezone.now()
    if alert.acknowledged_at is None:
        Alert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(
            acknowledged_at=now,
            acknowledged_by=user,
            acknowledged_by_name=user.get_username(),
            changed_at=now,
        )
    alert.refresh_from_db()
    if RULES[alert.kind].event and alert.is_open:
        _resolve([alert], now, f"Acknowledged by {alert.acknowledged_by_name}.")
        alert.refresh_from_db()
    _publish(alert.portal, [alert])
    return alert


def snooze(alert: Alert, user: Any, minutes: int, now: datetime | None = None) -> Alert:
    if minutes not in SNOOZE_CHOICES:
        raise ValueError(f"snooze for {minutes} minutes")
    now = now or timezone.now()
    Alert.objects.filter(pk=alert.pk).update(
        snoozed_until=now + timedelta(minutes=minutes),
        snoozed_by_name=user.get_username(),
        changed_at=now,
    )
    alert.refresh_from_db()
    _publish(alert.portal, [alert])
    return alert


def _publish(portal: Portal, alerts: list[Alert]) -> None:
    from . import broadcast  # renders templates

    transaction.on_commit(lambda: broadcast.publish_alerts(portal.pk, [a.pk for a in alerts]))


# --- escalation ----------------------------------------------------------------------------------


def slack_body(alert: Alert, dashboard_url: str) -> dict[str, Any]:
    """A JSON body Slack-compatible incoming webhooks accept (``text`` is enough for most)."""
    link = f"{dashboard_url.rstrip('/')}/alerts/{alert.pk}/" if dashboard_url else ""
    text = f"[{alert.get_severity_display()}] {alert.title} — {alert.portal.name}"
    if alert.detail:
        text += f"\n{alert.detail}"
    if link:
        text += f"\n{link}"
    return {
        "text": text,
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*{alert.title}*\n{alert.detail}"},
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": (
                            f"{alert.portal.name} · raised {alert.raised_at:%H:%M} UTC · "
                            "unacknowledged"
                        ),
                    }
                ],
            },
        ],
    }


def _send_email(alert: Alert, addresses: list[str]) -> Escalation:
    record = Escalation(
        alert=alert,
        channel=Escalation.Channel.EMAIL,
        destination=", ".join(addresses),
        sent_at=timezone.now(),
    )
    if "default" not in settings.MAILERS:
        record.error = "No mail server is configured (set SMTP_URL); nothing was sent."
        record.save()
        return record
    try:
        send_mail(
            subject=f"[SalesIQ Supervisor] {alert.title}",
            message=(
                f"{alert.title}\n\n{alert.detail}\n\nPortal: {alert.portal.name}\n"
                f"Raised: {alert.raised_at:%Y-%m-%d %H:%M} UTC, not acknowledged yet.\n"
                + (
                    f"\n{settings.PUBLIC_BASE_URL}/alerts/{alert.pk}/\n"
                    if settings.PUBLIC_BASE_URL
                    else ""
                )
            ),
            from_email=None,
            recipient_list=addresses,
            fail_silently=False,
        )
        record.ok = True
    except Exception as error:  # SMTP errors come in many classes; all of them count
        record.error = f"{type(error).__name__}: {error}"[:1000]
    record.save()
    return record


def _post_webhook(alert: Alert, url: str) -> Escalation:
    record = Escalation(
        alert=alert, channel=Escalation.Channel.WEBHOOK, destination=url, sent_at=timezone.now()
    )
    try:
        response = requests.post(
            url,
            data=json.dumps(slack_body(alert, settings.PUBLIC_BASE_URL)),
            headers={"Content-Type": "application/json"},
            timeout=WEBHOOK_TIMEOUT,
        )
        record.ok = 200 <= response.status_code < 300
        if not record.ok:
            record.error = f"HTTP {response.status_code}: {response.text[:300]}"
    except requests.RequestException as error:
        record.error = f"{type(error).__name__}: could not reach the address"
    record.save()
    return record


def escalate_due(portal: Portal, now: datetime | None = None) -> list[Escalation]:
    """Tell the rule's recipients about open alerts nobody acknowledged in time."""
    now = now or timezone.now()
    sent: list[Escalation] = []
    due = Alert.objects.filter(
        portal=portal,
        resolved_at__isnull=True,
        acknowledged_at__isnull=True,
        escalated_at__isnull=True,
        rule__escalate_after_minutes__isnull=False,
    ).select_related("rule", "portal")
    for alert in due:
        rule = alert.rule
        if alert.snoozed_until and alert.snoozed_until > now:
            continue
        if now - alert.raised_at < timedelta(minutes=rule.escalate_after_minutes):
            continue
        # Claim it first: one escalation per alert, whichever worker gets here.
        if not Alert.objects.filter(pk=alert.pk, escalated_at__isnull=True).update(
            escalated_at=now, changed_at=now
        ):
            continue
        addresses = [a.strip() for a in rule.escalate_emails.split(",") if a.strip()]
        if addresses:
            sent.append(_send_email(alert, addresses))
        if rule.escalate_webhook_url:
            sent.append(_post_webhook(alert, rule.escalate_webhook_url))
        _publish(portal, [alert])
    return sent
