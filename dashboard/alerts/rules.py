"""The rule catalogue: every kind of alert, its default threshold and severity, and
each portal's rules made from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction

from siq_integration.models import Portal

from ..models import (
    AlertKind,
    AlertRule,
    Severity,
)

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
