"""The public keys a portal's v2 webhook is signed with, as SalesIQ lists them.

Zoho's key page: at most two public keys per webhook, and "the oldest key will be in
use always". Keys can be added or removed in SalesIQ's own settings, not only through
the API, so the dashboard trusts every key SalesIQ lists for the webhook, and when a
delivery's signature matches none of them it reads the list again (``reread``) before
refusing: at most once a minute per portal, across processes (the time is a column of
the portal, claimed with one conditional UPDATE), and within the portal's call budget
(background priority: a supervisor's click still finds its reserve).

Public keys are not secrets; they are identified on the page by SalesIQ's key id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import dialects
from . import exceptions as exc
from .budget import Priority
from .models import Portal, WebhookPublicKey
from .normalised import WebhookKey
from .webhooks import normalise_public_key

logger = logging.getLogger(__name__)

# The shortest time between two re-reads of one portal's key list.
REREAD_INTERVAL = timedelta(minutes=1)


def store(portal: Portal, keys: Iterable[WebhookKey]) -> list[WebhookPublicKey]:
    """Make ``keys`` (SalesIQ's whole list for the portal's webhook) the portal's trusted
    keys: those SalesIQ no longer lists are forgotten. Returns the stored keys.

    Raises ValueError when SalesIQ lists no key the dashboard can read (nothing changes).
    """
    readable: list[tuple[WebhookKey, str]] = []
    for key in keys:
        try:
            readable.append((key, normalise_public_key(key.public_key_pem)))
        except ValueError as failure:
            logger.warning("Portal %s: SalesIQ key %s unreadable: %s", portal.pk, key.id, failure)
    if not readable:
        raise ValueError("SalesIQ lists no public key the dashboard can read")
    with transaction.atomic():
        WebhookPublicKey.objects.filter(portal=portal).exclude(
            key_id__in=[key.id for key, _ in readable]
        ).delete()
        stored = [
            WebhookPublicKey.objects.update_or_create(
                portal=portal,
                key_id=key.id,
                defaults={
                    "public_key_pem": pem,
                    "created_time": key.created_at,
                    "creator_id": key.creator_id[:64],
                },
            )[0]
            for key, pem in readable
        ]
    return stored


def _claim(portal: Portal) -> bool:
    """Take this minute's re-read for ``portal``; False when another delivery (here or in
    another process) took it less than REREAD_INTERVAL ago."""
    now = timezone.now()
    due = Q(webhook_keys_read_at__isnull=True) | Q(webhook_keys_read_at__lte=now - REREAD_INTERVAL)
    return bool(Portal.objects.filter(due, pk=portal.pk).update(webhook_keys_read_at=now))


def reread(portal: Portal) -> list[WebhookPublicKey] | None:
    """Read the webhook's key list from SalesIQ again and trust exactly what it lists.

    Returns the keys now trusted, or None when the list was not read: not a connected v2
    portal with a webhook, read less than a minute ago, no call left in the budget, or
    SalesIQ did not answer with a usable list (the stored keys are kept then).
    """
    if (
        not dialects.get(portal.dialect).has_webhook_keys
        or not portal.webhook_id
        or not portal.is_connected
    ):
        return None
    if not _claim(portal):
        return None
    from .client import SalesIQClient  # the client imports budget and oauth: only when used

    try:
        client = SalesIQClient(portal, priority=Priority.BACKGROUND, attempts=1)
        hook = client.get_webhook(portal.webhook_id)
        stored = store(portal, hook.public_keys)
    except exc.SalesIQError as failure:
        logger.warning(
            "Portal %s: re-reading the webhook keys failed: %s", portal.pk, failure.technical()
        )
        return None
    except ValueError as failure:
        logger.warning("Portal %s: re-reading the webhook keys: %s", portal.pk, failure)
        return None
    logger.info(
        "Portal %s: webhook keys re-read from SalesIQ: %s",
        portal.pk,
        ", ".join(key.key_id for key in stored),
    )
    return stored
