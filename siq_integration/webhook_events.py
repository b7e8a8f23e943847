"""The events SalesIQ sends the dashboard's webhook, kept up with what the dashboard needs.

SalesIQ keeps the event list a webhook was registered with. When the dashboard needs new
events (issue 16 added who joins or leaves a chat, and lines edited or deleted), a portal
registered before keeps the old list, and its chat drawers never learn those things. So
the worker looks, once per list of needed events, at the registered webhook and adds what
it lacks:

- with a grant that has v2's ``SalesIQ.webhooks.UPDATE``: Zoho's "Update a Webhook" in
  one call (the webhook, its address and its signing keys stay as they are);
- with an older grant (the dashboard asked for that scope only later): by registering the
  webhook again, as the portal page's "Register again" button does.

Either way within the portal's call budget at background priority (a supervisor's click
keeps its reserve), logged, and once: a refusal is not tried again on every pass. It is
kept on the portal instead (``webhook_events_missing``) and the portal page says in words
which events are missing and offers "Register again". A pass that could not ask (no call
left in the budget, SalesIQ not answering) tries again on a later pass.

A webhook SalesIQ no longer has (deleted in its settings, perhaps on purpose) is logged,
not brought back. Reference-dialect portals are left alone: their events never changed.
"""

from __future__ import annotations

import enum
import logging

from django.db.models import Q

from . import budget, connecting, dialects, oauth
from . import exceptions as exc
from .budget import Priority
from .client import SalesIQClient
from .models import Portal

logger = logging.getLogger(__name__)

# What each event the dashboard asks v2 for brings to a supervisor, for the sentence that
# names those missing. An event not listed here is named by SalesIQ's own name alone.
EVENT_WORDS = {
    "conversation.created": "new chats",
    "conversation.attender.updated": "chats picked up or reassigned",
    "conversation.visitor.replied": "visitors' messages",
    "conversation.operator.replied": "operators' messages",
    "conversation.transfer.initiated": "transfers asked for",
    "conversation.transfer.accepted": "transfers accepted",
    "conversation.transfer.rejected": "transfers declined",
    "conversation.completed": "chats ended",
    "conversation.missed": "chats missed",
    "conversation.rated": "ratings",
    "operator.updated": "operators' profile changes",
    "conversation.supervisor.added": "a supervisor joining a chat",
    "conversation.participants.added": "someone joining a chat",
    "conversation.participants.deleted": "someone leaving a chat",
    "conversation.message.edited": "a message edited",
    "conversation.message.deleted": "a message deleted",
}


class Outcome(enum.StrEnum):
    LEFT_ALONE = "left alone"  # not a connected v2 portal with a webhook, or checked already
    COMPLETE = "complete"  # the webhook had every event
    UPDATED = "updated"  # the missing events were added in place
    REGISTERED_AGAIN = "registered again"  # …by registering the webhook again
    REFUSED = "refused"  # SalesIQ said no: the portal page says which events are missing
    LATER = "later"  # could not ask now (budget, SalesIQ not answering): a later pass asks


def needed_events(dialect: str) -> list[str]:
    """The events the dashboard needs a portal's webhook to have ([] when it never checks)."""
    if not dialects.get(dialect).webhook_update_scope:
        return []
    return list(connecting.V2_WEBHOOK_EVENTS)


def missing_from(portal: Portal) -> list[str]:
    """The events the portal's webhook was found to lack, as kept on the portal."""
    return [event for event in portal.webhook_events_missing.split(",") if event]


def in_words(events: list[str]) -> str:
    """``events`` as a supervisor reads them: "someone joining a chat
    (conversation.participants.added) and a message edited (conversation.message.edited)"."""
    named = [
        f"{EVENT_WORDS[event]} ({event})" if event in EVENT_WORDS else event for event in events
    ]
    if len(named) <= 1:
        return "".join(named)
    return f"{', '.join(named[:-1])} and {named[-1]}"


def missing_sentence(portal: Portal) -> str:
    """What the portal page says while the webhook lacks events ("" when it lacks none)."""
    missing = missing_from(portal)
    if not missing:
        return ""
    return (
        f"SalesIQ does not send this portal's webhook {in_words(missing)}: it was registered "
        "before the dashboard needed them, and adding them failed. Until then the chat "
        "drawers cannot show who else is in a chat or which lines were edited or deleted. "
        "An admin can add them with “Register again”."
    )


def _claim(portal: Portal, mark: str) -> bool:
    """Take the check of this list for ``portal``; False when it was made already (here or
    by another worker)."""
    taken = Portal.objects.filter(~Q(webhook_events_checked=mark), pk=portal.pk).update(
        webhook_events_checked=mark
    )
    if taken:
        portal.webhook_events_checked = mark
    return bool(taken)


def _unclaim(portal: Portal) -> None:
    """Nothing was learnt: a later pass checks again."""
    Portal.objects.filter(pk=portal.pk).update(webhook_events_checked="")
    portal.webhook_events_checked = ""


def _keep_missing(portal: Portal, missing: list[str]) -> None:
    portal.webhook_events_missing = ",".join(missing)
    Portal.objects.filter(pk=portal.pk).update(webhook_events_missing=portal.webhook_events_missing)


def ensure(portal: Portal) -> Outcome:
    """Make sure the portal's registered webhook has every event the dashboard needs, once
    per list of needed events. Never raises a SalesIQError: the outcome says what happened."""
    needed = needed_events(portal.dialect)
    if not needed or not portal.is_connected or not portal.webhook_id:
        return Outcome.LEFT_ALONE
    mark = connecting.events_fingerprint(needed)
    if portal.webhook_events_checked == mark or not _claim(portal, mark):
        return Outcome.LEFT_ALONE
    client = SalesIQClient(portal, priority=Priority.BACKGROUND, attempts=1)
    try:
        hook = client.get_webhook(portal.webhook_id)
    except exc.NotFound:
        # Deleted in SalesIQ's settings, perhaps on purpose: not this job's to undo (the
        # webhook-silence alert and the portal page's "Register again" are there for it).
        logger.warning(
            "Portal %s: SalesIQ no longer has its webhook %s", portal.pk, portal.webhook_id
        )
        return Outcome.REFUSED
    except exc.SalesIQError as failure:
        if _passing(failure):
            return _later(portal, failure)
        # Which events it lacks is unknown: the failure itself is on the health page.
        logger.warning(
            "Portal %s: reading its webhook's events failed: %s", portal.pk, failure.technical()
        )
        return Outcome.REFUSED
    missing = [event for event in needed if event not in set(hook.events)]
    if not missing:
        _keep_missing(portal, [])
        return Outcome.COMPLETE
    if oauth.may_update_webhook(portal):
        # SalesIQ replaces the list: keep whatever else the webhook has.
        events = [*hook.events, *missing]
        try:
            updated = client.update_webhook_events(hook.id, events)
        except exc.ScopeMissing:
            pass  # the grant lacks the scope after all: register again, below
        except exc.SalesIQError as failure:
            return _failed(portal, missing, failure)
        else:
            still = [event for event in needed if event not in set(updated.events)]
            if still:
                return _failed(portal, still, None)
            _keep_missing(portal, [])
            logger.info(
                "Portal %s: added %s to its webhook %s", portal.pk, ", ".join(missing), hook.id
            )
            return Outcome.UPDATED
    return _register_again(portal, missing)


def _room_for(portal: Portal, calls: int) -> bool:
    """Whether ``calls`` background calls fit in the portal's budget now (a registration
    stopped half-way by the budget would leave the portal with no webhook at all)."""
    use = budget.usage(portal)
    background = use.minute_limit - use.reserved_per_minute
    return use.minute_used + calls <= background and use.day_used + calls <= use.day_limit


def _register_again(portal: Portal, missing: list[str]) -> Outcome:
    if not portal.webhook_url:
        return _failed(portal, missing, None)
    if not _room_for(portal, connecting.REGISTER_CALLS):
        return _later(portal, exc.BudgetExhausted())
    if connecting.register_webhooks(portal, url=portal.webhook_url, priority=Priority.BACKGROUND):
        logger.info(
            "Portal %s: registered its webhook again to add %s", portal.pk, ", ".join(missing)
        )
        return Outcome.REGISTERED_AGAIN
    logger.warning(
        "Portal %s: registering its webhook again to add %s failed: %s",
        portal.pk,
        ", ".join(missing),
        portal.webhook_error,
    )
    _keep_missing(portal, missing)
    return Outcome.REFUSED


def _passing(failure: exc.SalesIQError) -> bool:
    """Held back (the budget, a back-off) or no clear answer: worth asking again later."""
    return isinstance(failure, exc.TryLater) or failure.never_sent or failure.unanswered


def _later(portal: Portal, failure: exc.SalesIQError) -> Outcome:
    logger.info(
        "Portal %s: checking its webhook's events waits: %s", portal.pk, failure.technical()
    )
    _unclaim(portal)
    return Outcome.LATER


def _failed(portal: Portal, missing: list[str], failure: exc.SalesIQError | None) -> Outcome:
    if failure is not None and _passing(failure):
        return _later(portal, failure)
    logger.warning(
        "Portal %s: its webhook still lacks %s: %s",
        portal.pk,
        ", ".join(missing),
        failure.technical() if failure is not None else "SalesIQ kept the old list",
    )
    _keep_missing(portal, missing)
    return Outcome.REFUSED
