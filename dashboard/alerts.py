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

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from siq_integration import health
from siq_integration.models import Portal

from . import outbound, selectors, times
from .models import (
    OPEN_CHAT_STATUSES,
    Alert,
    AlertKind,
    AlertRule,
    Chat,
    ChatStatus,
    Escalation,
    Operator,
    OperatorStatus,
    Severity,
)
from .users import shown_name

logger = logging.getLogger(__name__)

SNOOZE_CHOICES = (5, 15, 60)  # minutes
EVENT_ALERT_WINDOW = timedelta(hours=1)  # a missed chat or a rating older than this is history


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
    """How long, as every duration is written ("6m 07s", "1h 02m"; dashboard/times.py)."""
    return times.duration(seconds)


def _visitor(chat: Chat) -> str:
    return chat.visitor_name or "A visitor"


@dataclass(frozen=True)
class Words:
    """What an alert says about its chat or operator as they are now. The title's figure
    (how long) runs from ``since``: the live page puts a ticking clock between ``before``
    and ``after``; e-mail, Slack and the history spell it once (``title_at``)."""

    before: str
    since: datetime | None = None
    after: str = ""
    detail: str = ""

    def title_at(self, now: datetime) -> str:
        if self.since is None:
            return f"{self.before}{self.after}"[:300]
        return f"{self.before}{_minutes((now - self.since).total_seconds())}{self.after}"[:300]

    @property
    def title(self) -> str:
        """As it reads this moment (desktop notifications, the badges' tooltips)."""
        return self.title_at(timezone.now())


def chat_words(kind: str, chat: Chat) -> Words | None:
    """The title and detail of a chat's alert of ``kind`` from the chat as it is: its
    visitor, department, operator (their display name) and the moment its figure counts
    from. None when the chat no longer fits the words (the alert resolves on the next
    evaluation; its stored title serves till then)."""
    visitor = _visitor(chat)
    where = f" ({chat.department_name})" if chat.department_name else ""
    if kind == AlertKind.LONG_CHAT and chat.started_at:
        return Words(
            f"{visitor}'s chat has run ",
            chat.started_at,
            where,
            f"With {chat.operator_name or 'nobody yet'}.",
        )
    if kind == AlertKind.LONG_WAIT and chat.status == ChatStatus.WAITING and chat.waiting_since:
        return Words(
            f"{visitor} has waited ", chat.waiting_since, f" for pickup{where}", chat.question[:200]
        )
    if kind == AlertKind.UNANSWERED and chat.awaiting_reply and chat.last_message_at:
        return Words(
            f"{visitor} has had no answer for ",
            chat.last_message_at,
            "",
            f"{chat.operator_name or 'The operator'} has not replied to: "
            f"“{chat.last_message_text[:160]}”",
        )
    if kind == AlertKind.MISSED_CHAT:
        return Words(
            f"Missed chat: {visitor} left unanswered",
            detail=chat.question[:200] or "Nobody picked the chat up.",
        )
    if kind == AlertKind.LOW_RATING and chat.rating is not None:
        return Words(
            f"{visitor} rated the chat {chat.rating}/5",
            detail=f"“{chat.feedback}”" if chat.feedback else "No feedback given.",
        )
    return None


_AWAY = (OperatorStatus.BUSY, OperatorStatus.AWAY, OperatorStatus.OFFLINE)


def operator_words(kind: str, operator: Operator, load: int) -> Words | None:
    """As ``chat_words``, for an operator's alert: ``load`` is their open chats now."""
    name = operator.shown_name
    chats = f"{load} open chat{'s' if load != 1 else ''}"
    if kind == AlertKind.OPERATOR_AWAY_WITH_CHATS and operator.status in _AWAY and load:
        status = operator.get_status_display().lower()
        detail = "Their visitors may be waiting. Transfer the chats or drain the operator."
        if operator.status_since is None:  # not seen to change: how long is not known
            return Words(f"{name} is {status} with {chats}", detail=detail)
        return Words(
            f"{name} has been {status} for ", operator.status_since, f" with {chats}", detail
        )
    if kind == AlertKind.OPERATOR_OVER_CAPACITY and operator.max_chats is not None:
        return Words(f"{name} has {load} chats for {operator.max_chats} seats")
    return None


def portal_words(kind: str, portal: Portal) -> Words | None:
    if kind == AlertKind.WEBHOOK_SILENCE:
        # Silent since the later of the last delivery and the registration, as
        # selectors.webhook_silence counts it.
        last = max(
            (t for t in (portal.last_webhook_at, portal.webhook_registered_at) if t), default=None
        )
        if last:
            return Words(
                f"{portal.name}: no webhook from SalesIQ for ",
                last,
                "",
                "Chats are open but SalesIQ sends nothing; the dashboard relies on polling. "
                "Check the webhook on the portal page.",
            )
    return None


def words_now(alert: Alert, load: int | None = None) -> Words | None:
    """``alert``'s title and detail from its chat's, operator's or portal's state now
    (``load``: the operator's open chats). None: its stored title and detail serve."""
    if alert.chat_id:
        return chat_words(alert.kind, alert.chat) if alert.chat else None
    if alert.operator_id:
        return operator_words(alert.kind, alert.operator, load or 0) if alert.operator else None
    if alert.target == "portal":
        return portal_words(alert.kind, alert.portal)
    return None


def _condition(rule: AlertRule, target: str, words: Words, now: datetime, **about) -> Condition:
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
                and _in_scope(rule, [chat.department_id])
                and (now - since).total_seconds() > limit
                and (words := chat_words(rule.kind, chat))
            ):
                found.append(_condition(rule, target, words, now, chat=chat))
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
            and _in_scope(away, op.department_ids)
            and (now - (op.status_since or op.fact_at)).total_seconds() >= away.threshold * 60
            and (words := operator_words(away.kind, op, view.load))
        ):
            found.append(_condition(away, target, words, now, operator=op))
        if (
            over
            and over.enabled
            and view.capacity is not None
            and view.load > view.capacity + over.threshold
            and _in_scope(over, op.department_ids)
            and (words := operator_words(over.kind, op, view.load))
        ):
            found.append(_condition(over, target, words, now, operator=op))
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
        if quiet > silence.threshold * 60:
            words = portal_words(silence.kind, portal)
            if words:
                found.append(_condition(silence, "portal", words, now))
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
            words = chat_words(missed.kind, chat)
            alert = (
                _raise(_condition(missed, target, words, now, chat=chat), now) if words else None
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
            words = chat_words(low.kind, chat)
            alert = _raise(_condition(low, target, words, now, chat=chat), now) if words else None
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
            acknowledged_by_name=shown_name(user)[:150],
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
        snoozed_by_name=shown_name(user)[:150],
        changed_at=now,
    )
    alert.refresh_from_db()
    _publish(alert.portal, [alert])
    return alert


def _publish(portal: Portal, alerts: list[Alert]) -> None:
    from .realtime import publish  # renders templates

    transaction.on_commit(lambda: publish.publish_alerts(portal.pk, [a.pk for a in alerts]))


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
        record.error = f"{type(error).__name__}: {error}"[:200]
    record.save()
    return record


def _post_webhook(alert: Alert, url: str) -> Escalation:
    """POST to the rule's webhook through the outbound session (dashboard/outbound.py:
    public https addresses only, unless allowed by name); keep its status and a short
    reason, never what it answered."""
    record = Escalation(
        alert=alert, channel=Escalation.Channel.WEBHOOK, destination=url, sent_at=timezone.now()
    )
    reply = outbound.post_json(
        url, json.dumps(slack_body(alert, settings.PUBLIC_BASE_URL)).encode()
    )
    record.ok, record.http_status = reply.ok, reply.status
    record.error = "" if reply.ok else reply.reason
    record.save()
    return record


def _reword(alert: Alert, now: datetime) -> None:
    """The stored title and detail as the alert reads now (whoever has the chat now, how
    long it has waited by now): what the e-mail and the post say, and the history keeps."""
    load = None
    if alert.operator_id and alert.operator:
        load = (
            Chat.objects.filter(portal_id=alert.portal_id, status__in=OPEN_CHAT_STATUSES)
            .filter(operator_id=alert.operator.remote_id)
            .count()
        )
    words = words_now(alert, load)
    if words is None:
        return
    alert.title, alert.detail = words.title_at(now), words.detail
    Alert.objects.filter(pk=alert.pk).update(title=alert.title, detail=alert.detail)


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
    ).select_related("rule", "portal", "chat", "operator")
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
        _reword(alert, now)
        addresses = [a.strip() for a in rule.escalate_emails.split(",") if a.strip()]
        if addresses:
            sent.append(_send_email(alert, addresses))
        if rule.escalate_webhook_url:
            sent.append(_post_webhook(alert, rule.escalate_webhook_url))
        _publish(portal, [alert])
    return sent
