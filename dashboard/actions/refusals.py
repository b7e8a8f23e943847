"""Who may act: a user who may see a portal but not act on it is refused, counted, and past
a limit slowed down (429)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.core.exceptions import PermissionDenied as Forbidden
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from siq_integration.models import Portal

from .. import access
from ..models import RefusalTally
from ..users import shown_name

logger = logging.getLogger(__name__)

# Refusals by role are counted, not stored (``RefusalTally``): a run of attempts is one row
# while they come less than TALLY_GAP apart; past REFUSALS_PER_MINUTE a minute (all kinds and
# portals of one user) the answer is 429 instead of 403.
TALLY_GAP = timedelta(minutes=10)
REFUSALS_PER_MINUTE = 10


class TooManyRefusals(Exception):
    """A user refused by role keeps trying: slow down (429)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many refused attempts")
        self.retry_after = retry_after


def _forbidden(user: Any, portal: Portal, kind: str) -> None:
    """Refuse a user who may see the portal but not act on it (a Viewer): count the try
    (nothing of what was typed is kept) and say no, or, past the limit, slow them down."""
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    with transaction.atomic():
        tally = (
            RefusalTally.objects.select_for_update()
            .filter(user=user, portal=portal, kind=kind, last_at__gte=now - TALLY_GAP)
            .order_by("-last_at", "-pk")
            .first()
        )
        if tally is None:
            role = access.role_of(user)
            tally = RefusalTally(
                user=user,
                username=shown_name(user)[:150],
                role=str(role.label) if role else "",
                portal=portal,
                kind=kind,
                first_at=now,
                minute=minute,
            )
            logger.info("User %s refused by role on portal %s (%s)", user.pk, portal.pk, kind)
        if tally.minute != minute:
            tally.minute, tally.in_minute = minute, 0
        tally.count += 1
        tally.in_minute += 1
        tally.last_at = now
        tally.save()
    tried = (
        RefusalTally.objects.filter(user=user, minute=minute).aggregate(n=Sum("in_minute"))["n"]
        or 0
    )
    if tried > REFUSALS_PER_MINUTE:
        raise TooManyRefusals(retry_after=60 - now.second)
    raise Forbidden("Your role may not act on this portal.")


def check_access(user: Any, portal: Portal, kind: str) -> None:
    if not access.can_view(user, portal):
        raise Forbidden("No such portal.")
    if not access.can_act(user, portal):
        _forbidden(user, portal, kind)


# --- sentences -------------------------------------------------------------------------------
