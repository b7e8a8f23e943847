"""Webhook deliveries into the inbox, and from the inbox into the live state.

A delivery is verified over its raw bytes, stored with its de-duplication key and
answered; applying it happens after the commit, off the request's path, exactly
once across processes (a conditional claim on the inbox row). The worker sweeps up
anything a crash left pending.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

from asgiref.sync import SyncToAsync, sync_to_async
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from siq_integration import webhooks
from siq_integration.exceptions import MalformedPayload, SignatureInvalid, TokenDecryptionError
from siq_integration.models import Portal
from siq_integration.normalised import EventKind

from . import actions, live
from .models import InboxEvent, PortalSync

logger = logging.getLogger(__name__)

# An event stuck in "applying" this long was left by a process that died.
STALE_CLAIM = timedelta(seconds=60)


@dataclass(frozen=True)
class Receipt:
    status: int  # the HTTP status to answer SalesIQ with
    body: dict


def _record(portal: Portal, *, ok: bool, problem: str = "") -> None:
    Portal.objects.filter(pk=portal.pk).update(
        last_webhook_at=timezone.now(), last_webhook_ok=ok, last_webhook_problem=problem[:500]
    )


def too_large(portal: Portal, length: int) -> Receipt | None:
    """Refuse a body over the cap before anyone reads it into memory."""
    if length <= webhooks.MAX_BODY_BYTES:
        return None
    _record(portal, ok=False, problem=f"A delivery of {length} bytes was refused as too large.")
    return Receipt(413, {"error": "body too large"})


def receive(portal: Portal, body: bytes, headers) -> Receipt:
    """Verify, parse and store one delivery. Never applies it in the caller's time."""
    refused = too_large(portal, len(body))
    if refused is not None:
        return refused
    try:
        webhooks.verify(
            dialect=portal.dialect,
            body=body,
            headers=headers,
            public_keys=list(portal.webhook_keys.values_list("public_key_pem", flat=True)),
            secret=portal.get_webhook_secret() if portal.webhook_secret_encrypted else "",
        )
    except (SignatureInvalid, TokenDecryptionError) as failure:
        logger.warning("Webhook for portal %s refused: %s", portal.pk, failure.technical())
        _record(portal, ok=False, problem=failure.user_message)
        return Receipt(401, {"error": "signature not valid"})
    try:
        event = webhooks.parse(portal.dialect, body)
    except MalformedPayload as failure:
        _record(portal, ok=False, problem=failure.user_message)
        return Receipt(400, {"error": "malformed body"})

    now = timezone.now()
    unknown = event.kind is EventKind.UNKNOWN
    try:
        with transaction.atomic():
            stored = InboxEvent.objects.create(
                portal=portal,
                dedupe_key=event.dedupe_key,
                event_name=event.name[:100],
                kind=str(event.kind),
                body=body.decode("utf-8", errors="replace"),
                attempt=event.attempt,
                received_at=now,
                state=InboxEvent.State.UNKNOWN if unknown else InboxEvent.State.PENDING,
            )
            if unknown:
                sync, _ = PortalSync.objects.get_or_create(portal=portal)
                # Counted in the database: two web servers may store unknown events at once.
                PortalSync.objects.filter(pk=sync.pk).update(
                    unknown_events=F("unknown_events") + 1, last_unknown_event=event.name[:100]
                )
            else:
                transaction.on_commit(lambda: schedule(stored.pk))
            # In the same transaction: one write, not two, for every delivery.
            _record(portal, ok=True)
    except IntegrityError:
        # The same delivery again (a retry, a replay): already stored, change nothing.
        _record(portal, ok=True)
        return Receipt(200, {"ok": True, "duplicate": True})
    return Receipt(200, {"ok": True, "event": event.name})


# --- applying -------------------------------------------------------------------------------


def apply_stored(event_id: int) -> bool:
    """Apply one stored event if nobody else has; returns whether this call applied it."""
    now = timezone.now()
    claimed = InboxEvent.objects.filter(pk=event_id, state=InboxEvent.State.PENDING).update(
        state=InboxEvent.State.APPLYING, claimed_at=now
    )
    if not claimed:
        return False
    stored = InboxEvent.objects.select_related("portal").get(pk=event_id)
    try:
        event = webhooks.parse(stored.portal.dialect, stored.body.encode("utf-8"))
        live.apply_event(stored.portal, event, received_at=stored.received_at)
        actions.confirm(stored.portal, event)
    except Exception as error:
        logger.exception("Applying webhook event %s failed", event_id)
        InboxEvent.objects.filter(pk=event_id).update(
            state=InboxEvent.State.FAILED, error=f"{type(error).__name__}: {error}"[:1000]
        )
        return False
    InboxEvent.objects.filter(pk=event_id).update(
        state=InboxEvent.State.APPLIED, applied_at=timezone.now()
    )
    return True


def sweep(*, older_than: timedelta = timedelta(seconds=5), limit: int = 200) -> int:
    """Apply events a crash or a restart left behind; returns how many were applied."""
    now = timezone.now()
    InboxEvent.objects.filter(
        state=InboxEvent.State.APPLYING, claimed_at__lt=now - STALE_CLAIM
    ).update(state=InboxEvent.State.PENDING)
    waiting = (
        InboxEvent.objects.filter(state=InboxEvent.State.PENDING, received_at__lt=now - older_than)
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(1 for event_id in list(waiting) if apply_stored(event_id))


# The most events published together: the first of a batch waits for the last to be shown.
BATCH_LIMIT = 8


def apply_stored_together(event_ids: list[int]) -> int:
    """Apply several stored events in order, their changes published (and their alert rules
    run) once; returns how many this call applied. Each is claimed and applied in a
    transaction of its own, as ``apply_stored`` does alone, so SQLite's write lock is never
    held longer than one event while deliveries wait to be stored, and one event's failure
    is that event's alone."""
    if len(event_ids) == 1:
        return int(apply_stored(event_ids[0]))
    with live.publishing_together():
        return sum(1 for event_id in event_ids if apply_stored(event_id))


class _Queue:
    """Events this process stored and has yet to apply, in arrival order."""

    def __init__(self) -> None:
        self.waiting: deque[int] = deque()
        self.draining = False
        self.task: asyncio.Task | None = None  # held: the loop keeps only weak references


_queues: dict[object, _Queue] = {}


def _enqueue(event_id: int) -> None:
    """On the server's loop: queue the event, and start applying unless already under way."""
    loop = asyncio.get_running_loop()
    queue = _queues.setdefault(loop, _Queue())
    queue.waiting.append(event_id)
    if not queue.draining:
        queue.draining = True
        queue.task = loop.create_task(_drain(queue))


async def _drain(queue: _Queue) -> None:
    # One batch at a time per process keeps a portal's events in arrival order. Whatever
    # arrived while a batch was applied makes the next one: a quiet portal's event goes
    # alone and at once, a flood goes in batches at a fraction of the cost per event.
    try:
        while queue.waiting:
            batch = [queue.waiting.popleft() for _ in range(min(BATCH_LIMIT, len(queue.waiting)))]
            await sync_to_async(_apply_in_thread, thread_sensitive=False)(batch)
    finally:
        queue.draining = False


def _apply_in_thread(event_ids: list[int]) -> None:
    try:
        apply_stored_together(event_ids)
    except Exception:
        logger.exception("Applying webhook events failed; the sweep tries again")
    finally:
        close_old_connections()


def schedule(event_id: int) -> None:
    """Apply ``event_id`` now, off the request's path when an event loop serves us.

    Under daphne the view runs in a thread of the server's event loop: the event is
    applied by a task on that loop (so publishing reaches the in-memory channel layer of
    this process) and SalesIQ gets its answer at once. Elsewhere it is applied here.
    """
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is not None and loop.is_running():
        loop.call_soon_threadsafe(_enqueue, event_id)
    else:
        apply_stored(event_id)
