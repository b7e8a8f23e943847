"""Escalation: an alert nobody acknowledged in time goes out by e-mail and to a Slack (or
any) webhook, through the one outbound session (dashboard/outbound.py).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from siq_integration.models import Portal

from .. import outbound
from ..models import (
    OPEN_CHAT_STATUSES,
    Alert,
    Chat,
    Escalation,
)
from .lifecycle import announce
from .words import words_now

logger = logging.getLogger(__name__)


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
        announce(portal, [alert])
    return sent
