"""Actions nobody will answer: their process died, or SalesIQ never replied. The worker's
sweep (``sweep_stuck``) settles them as "No clear answer" so their chat or operator is free."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from ..models import Action, ActionKind, ActionOutcome
from .outcomes import ABANDONED, SWEEP_LIMIT, publish, settle_drain
from .runners import runner_gone, runner_name
from .wording import VERBS, drain_summary

logger = logging.getLogger(__name__)

# A pending action older than this has no clear answer: no SalesIQ call (its timeouts and
# retries) takes this long, so its process died or lost it. The worker's sweep says so.
STUCK_AFTER = timedelta(minutes=2)


def stuck_after() -> timedelta:
    """STUCK_AFTER, or longer when the HTTP settings let one call take longer: every attempt
    timing out, the pauses between them, and a token refresh first."""
    one_try = settings.SIQ_HTTP_CONNECT_TIMEOUT + settings.SIQ_HTTP_READ_TIMEOUT
    attempts = settings.SIQ_RETRY_ATTEMPTS
    longest = attempts * one_try + (attempts - 1) * settings.SIQ_RETRY_MAX_DELAY + one_try + 15
    return max(STUCK_AFTER, timedelta(seconds=longest))


def stuck(action: Action, now: datetime | None = None) -> bool:
    """A pending action that will get no answer: its process is dead, or it is too old."""
    if action.outcome != ActionOutcome.PENDING:
        return False
    now = now or timezone.now()
    if runner_gone(action.runner):
        return True
    if action.created_at >= now - stuck_after():
        return False
    if action.kind == ActionKind.DRAIN:
        # A drain makes one call after another: it is stuck once its newest step is.
        newest = action.steps.aggregate(at=Max("created_at"))["at"]
        if newest is not None and newest >= now - stuck_after():
            return False
    return True


def abandon(action: Action, *, failed_here: bool = False) -> Action | None:
    """Settle an action nobody will answer as "No clear answer", in words; SalesIQ's
    confirming webhook or a later read of the chat can still settle it. None if it was
    settled meanwhile. ``failed_here``: this process hit an unexpected error running it."""
    with transaction.atomic():
        current = (
            Action.objects.select_for_update()
            .filter(pk=action.pk, outcome=ActionOutcome.PENDING)
            .first()
        )
        if current is None:
            return None
        gone = runner_gone(current.runner)
        verb = VERBS[current.kind]
        if failed_here:
            said = (
                "Something went wrong in the dashboard while it did this, so it cannot tell "
                f"whether SalesIQ managed to {verb}."
            )
        elif gone:
            said = (
                "The dashboard stopped before SalesIQ answered, so it cannot tell whether it "
                f"managed to {verb}."
            )
        else:
            minutes = round(stuck_after().total_seconds() / 60)
            said = (
                f"SalesIQ gave no answer within {minutes} minutes, so the dashboard cannot "
                f"tell whether it managed to {verb}."
            )
        if current.kind == ActionKind.DRAIN:
            said += " " + drain_summary(current, list(current.steps.order_by("pk")))
        else:
            said += " The live view shows it within seconds; try again only if nothing changed."
        current.outcome = ActionOutcome.FAILED
        current.finished_at = timezone.now()
        current.error_code = ABANDONED
        if failed_here:
            current.error_detail = "An unexpected error in the dashboard (see its log)."
        else:
            current.error_detail = f"Runner {current.runner or 'unknown'} " + (
                "is no longer running." if gone else f"recorded no answer in {stuck_after()}."
            )
        current.message = said
        current.save()
    publish(current)
    if current.parent_id:
        settle_drain(current.parent_id)
    return current


def abandon_after_error(key: str) -> None:
    """An unexpected error ran through the action of ``key`` (and its steps) here: settle
    what it left pending now, rather than hold its chat or operator until the sweep."""
    left = Action.objects.filter(
        Q(key=key[:64]) | Q(parent__key=key[:64]),
        outcome=ActionOutcome.PENDING,
        runner=runner_name(),
    )
    for action in left.order_by("-pk"):
        abandon(action, failed_here=True)


def sweep_stuck(now: datetime | None = None) -> int:
    """Settle pending actions that will get no answer (the worker's tick calls this). Steps
    before their drain, so the drain's words say what became of them."""
    now = now or timezone.now()
    settled = 0
    pending = Action.objects.filter(outcome=ActionOutcome.PENDING).order_by("-created_at", "-pk")
    for action in pending[:SWEEP_LIMIT]:
        if stuck(action, now) and abandon(action) is not None:
            logger.info("Action %s had no answer from its runner; settled as unclear", action.pk)
            settled += 1
    return settled
