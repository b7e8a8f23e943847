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
    definition: str = ""  # what the rule's figure means, under its settings
    # The service rules: judged over the chats of the last ``window`` minutes, once at
    # least ``minimum`` of them can be judged (None: not a service rule).
    window: int | None = None
    minimum: int | None = None

    @property
    def judges_a_window(self) -> bool:
        return self.window is not None


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
        RuleSpec(
            AlertKind.SERVICE_LEVEL_LOW,
            80,
            "%",
            Severity.WARNING,
            threshold_help="A department's service level over the window below this.",
            definition=(
                "Service level: the share of a department's chats picked up within its "
                "target time, out of the chats answered, missed, and waiting past that time "
                "now. Chats whose visitor left before the target time (abandoned) count on "
                "neither side. The same figure as the queues, over the chats that arrived in "
                "the window. One alert per department; none outside its business hours."
            ),
            window=30,
            minimum=5,
        ),
        RuleSpec(
            AlertKind.MISSED_SHARE_HIGH,
            15,
            "%",
            Severity.WARNING,
            threshold_help="A department's share of missed chats over the window above this.",
            definition=(
                "Missed share: missed chats out of the chats answered and missed. A chat is "
                "missed when nobody picked it up and the visitor waited at least the target "
                "time; one the visitor left sooner is abandoned and counts on neither side, as "
                "in the service level. Chats still waiting are not counted yet. One alert per "
                "department; none outside its business hours."
            ),
            window=30,
            minimum=5,
        ),
    )
}

# The rules judged over a window of recent chats, one alert per department in trouble.
SERVICE_KINDS = frozenset(kind for kind, spec in RULES.items() if spec.judges_a_window)


def ensure_rules(portal: Portal) -> dict[str, AlertRule]:
    """The portal's rules, with the defaults created for any kind it does not have yet."""
    rules = {rule.kind: rule for rule in AlertRule.objects.filter(portal=portal)}
    for kind, spec in RULES.items():
        if kind not in rules:
            try:
                with transaction.atomic():
                    rules[kind] = AlertRule.objects.create(
                        portal=portal,
                        kind=kind,
                        threshold=spec.threshold,
                        severity=spec.severity,
                        window_minutes=spec.window,
                        minimum_chats=spec.minimum,
                    )
            except IntegrityError:  # another process made it first
                rules[kind] = AlertRule.objects.get(portal=portal, kind=kind)
    return rules
