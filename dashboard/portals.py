"""Portals as a whole: what deleting one takes with it, and deleting it.

Connecting and disconnecting live at the SalesIQ boundary (siq_integration.connecting);
what a portal's deletion means for the dashboard's own records lives here, so the
confirmation page and the deletion count the same things.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from siq_integration.models import Portal

from .models import (
    Action,
    Alert,
    AlertRule,
    Chat,
    ChatMessage,
    Department,
    Escalation,
    InboxEvent,
    Operator,
    Profile,
)
from .realtime import publish

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class History:
    """Everything of a portal the dashboard keeps, counted."""

    chats: int
    messages: int  # transcript lines
    operators: int
    departments: int
    alerts: int
    escalations: int
    alert_rules: int
    actions: int  # audit entries of supervisors' actions on the portal (their steps included)
    deliveries: int  # webhook deliveries kept in the inbox
    members: int  # users given access to it (Admins see every portal anyway)


def portal_history(portal: Portal) -> History:
    return History(
        chats=Chat.objects.filter(portal=portal).count(),
        messages=ChatMessage.objects.filter(chat__portal=portal).count(),
        operators=Operator.objects.filter(portal=portal).count(),
        departments=Department.objects.filter(portal=portal).count(),
        alerts=Alert.objects.filter(portal=portal).count(),
        escalations=Escalation.objects.filter(alert__portal=portal).count(),
        alert_rules=AlertRule.objects.filter(portal=portal).count(),
        actions=Action.objects.filter(portal=portal).count(),
        deliveries=InboxEvent.objects.filter(portal=portal).count(),
        members=Profile.objects.filter(portals=portal).count(),
    )


def portal_delete(*, portal: Portal, by_user: Any) -> History:
    """Delete ``portal`` and everything of it here, for good (the caller has let go of
    SalesIQ first: siq_integration.connecting.release). Pages watching it are told
    after commit and stop showing it; a worker polling it finds it gone and lets go
    (its lease row goes with it). Returns what was deleted."""
    history = portal_history(portal)
    portal_id, name = portal.pk, portal.name
    with transaction.atomic():
        # Every foreign key to a portal cascades: live state, transcripts, alerts and their
        # escalations, rules, audit entries, the inbox, the lease, the call budget, keys.
        portal.delete()
        publish.portal_gone(portal_id)
    logger.info(
        "%s deleted portal %s (%s): %s",
        getattr(by_user, "username", "?"),
        portal_id,
        name,
        history,
    )
    return history
