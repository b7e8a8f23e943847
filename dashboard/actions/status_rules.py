"""Whose status SalesIQ lets the dashboard set, and who the portal's grant acts as.

Where the dialects differ (v2 lets the connected user set only their own status, and only
Available or Busy), their capability flags say so.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from siq_integration import dialects, oauth
from siq_integration import exceptions as exc
from siq_integration.models import Portal

from ..models import Operator, OperatorStatus

logger = logging.getLogger(__name__)


def settable_statuses(portal: Portal) -> list[OperatorStatus]:
    """The statuses ``portal``'s SalesIQ can set, in the order the panel offers them."""
    return [OperatorStatus(status) for status in dialects.get(portal.dialect).settable_statuses]


@dataclass(frozen=True)
class StatusRule:
    """Whether the status buttons are offered for an operator, and what to say before the
    click (v2 lets the connected user set only their own status; SalesIQ still decides)."""

    offered: bool
    note: str = ""
    known: bool = True  # whether the dashboard knows who the portal is connected as


def connected_operator(portal: Portal) -> Operator | None:
    """The operator this portal's grant acts as in SalesIQ, when the dashboard knows."""
    if portal.connected_user_id:
        found = Operator.objects.filter(portal=portal, remote_id=portal.connected_user_id).first()
        if found is not None:
            return found
    if portal.connected_user_email:
        return (
            Operator.objects.filter(portal=portal, email__iexact=portal.connected_user_email)
            .order_by("pk")
            .first()
        )
    return None


def status_rule(operator: Operator, *, open_chats: int = 0) -> StatusRule:
    """What the panel offers for ``operator``'s status, said before anyone clicks."""
    portal = operator.portal
    if dialects.get(portal.dialect).can_set_others_status:
        return StatusRule(offered=True)
    me = connected_operator(portal)
    if me is not None and me.pk == operator.pk:
        return StatusRule(offered=True)
    if me is None and not portal.connected_user_email:
        return StatusRule(
            offered=True,
            known=False,
            note=(
                "SalesIQ lets the user this portal is connected as change only their own "
                "status, and the dashboard does not know who that is: for anyone else SalesIQ "
                "refuses. Reconnecting the portal lets the dashboard find out."
            ),
        )
    connected = me.shown_name if me else portal.connected_user_name or portal.connected_user_email
    instead = f"Ask {operator.shown_name} to change it in SalesIQ"
    if open_chats:
        instead += ", or drain their chats"
    return StatusRule(
        offered=False,
        note=(
            f"SalesIQ lets only {connected}, the user this portal is connected as, change "
            f"their own status here. {instead}."
        ),
    )


# Zoho Accounts is asked at most this often per portal and process while it gives no answer.
ASK_AGAIN_SECONDS = 600.0
_asked: dict[Any, float] = {}


def learn_connected_user(portal: Portal) -> Operator | None:
    """Find which operator ``portal``'s grant acts as (v2), once: by the e-mail Zoho Accounts
    gave when the portal connected, else by asking Zoho Accounts now (grants made before the
    dashboard asked for the profile scope cannot say). The worker calls this after each
    operators poll; it costs no SalesIQ call."""
    if (
        dialects.get(portal.dialect).can_set_others_status
        or portal.connected_user_id
        or not portal.is_connected
    ):
        return None
    this_grant = Portal.objects.filter(pk=portal.pk, connected_at=portal.connected_at)
    if not portal.connected_user_email:
        if not oauth.may_read_profile(portal):
            return None
        asked = _asked.get(portal.pk)
        if asked is not None and time.monotonic() - asked < ASK_AGAIN_SECONDS:
            return None
        _asked[portal.pk] = time.monotonic()
        try:
            user = oauth.connected_user(portal)
        except exc.SalesIQError as failure:
            logger.info("Portal %s: who the grant acts as is unknown: %s", portal.pk, failure)
            return None
        this_grant.update(connected_user_name=user.name, connected_user_email=user.email)
        portal.connected_user_name, portal.connected_user_email = user.name, user.email
    me = connected_operator(portal)
    if me is not None:
        this_grant.update(connected_user_id=me.remote_id)
        portal.connected_user_id = me.remote_id
    return me


# --- drain ---------------------------------------------------------------------------------
