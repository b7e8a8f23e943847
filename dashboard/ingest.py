"""Webhook deliveries into the inbox, and from the inbox into the live state.

A delivery is verified over its raw bytes, stored with its de-duplication key and
answered; applying it happens after the commit, off the request's path, exactly
once across processes (a conditional claim on the inbox row). The worker sweeps up
anything a crash left pending.

Under ``serve`` deliveries reach ``store`` straight from the ASGI application (no
middleware, no thread per request, see dashboard/views/webhooks.py): one thread per
server loop (``_Lane``) stores the ones that arrived together in one transaction,
answers them, then applies and publishes what it stored.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import uuid
import weakref
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import batched
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.db.models import F
from django.utils import timezone
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from siq_integration import dialects, webhook_keys, webhooks
from siq_integration.exceptions import (
    MalformedPayload,
    SalesIQError,
    SignatureInvalid,
    TokenDecryptionError,
)
from siq_integration.models import Portal, WebhookPublicKey
from siq_integration.normalised import EventKind, WebhookEvent

from .actions import outcomes
from .figures import counting
from .models import InboxEvent, PortalSync
from .realtime import publish
from .state import apply

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    status: int  # the HTTP status to answer SalesIQ with
    body: dict


NOT_OURS = Receipt(404, {"error": "unknown webhook address"})
TOO_LARGE = Receipt(413, {"error": "body too large"})
DUPLICATE = Receipt(200, {"ok": True, "duplicate": True})
NOT_STORED = Receipt(503, {"error": "not stored, please send again"})
# Too many refused deliveries from one address: answered without a database write.
TOO_MANY_REFUSED = Receipt(429, {"error": "too many refused deliveries"})


@dataclass(frozen=True)
class Delivery:
    """One POST to a portal's webhook address, as it came."""

    portal_id: uuid.UUID | str
    body: bytes
    headers: Mapping[str, str]
    size: int | None = None  # the declared length, when the body was not read for it
    address: str = ""  # the client's address (the proxy's, behind one)

    @property
    def length(self) -> int:
        return len(self.body) if self.size is None else self.size


def _record(portal_id, *, ok: bool, problem: str = "") -> None:
    Portal.objects.filter(pk=portal_id).update(
        last_webhook_at=timezone.now(), last_webhook_ok=ok, last_webhook_problem=problem[:500]
    )


def _as_uuid(value) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def receive_one(delivery: Delivery) -> Receipt:
    """Verify, parse and store one delivery; applied after the commit, off the caller's
    time where an event loop serves us."""
    receipts, stored = receive_many([delivery])
    for item in stored:
        transaction.on_commit(lambda item=item: schedule(item))
    return receipts[0]


def declared_length(headers: Mapping[str, str]) -> int:
    """The body size a request announces (0 when it says nothing usable)."""
    try:
        return max(0, int(headers.get("Content-Length") or 0))
    except ValueError:
        return 0


def receive_many(deliveries: Sequence[Delivery]) -> tuple[list[Receipt], list[Stored]]:
    """Verify, parse and store deliveries that arrived together, in one transaction.

    Returns each delivery's answer, in order, and the stored events to apply, in arrival
    order. Every delivery is judged on its own: one with a bad signature is refused and
    the others stored. The same delivery twice (a retry, a replay, here or in another
    process at the same moment) is stored once. One signed but unreadable (or that the
    database cannot take) is kept as rejected and acknowledged, never failing the others.

    Only a verified delivery is webhook activity (the portal's last webhook, what the
    silence alert hears): a refused one (no or a wrong signature, too large) is what anyone
    who knows the address can send, so it is counted apart on the portal's sync row, and
    past SIQ_WEBHOOK_REFUSALS_PER_MINUTE from one address it is answered 429 and not even
    counted: a flood of forgeries writes nothing. A valid delivery from the same address
    is never held back.
    """
    ids = {key for key in (_as_uuid(d.portal_id) for d in deliveries) if key is not None}
    portals = {portal.pk: portal for portal in Portal.objects.filter(pk__in=ids)}
    # Per portal: each trusted public key (PEM) and its SalesIQ key id.
    public_keys: dict[uuid.UUID, dict[str, str]] = defaultdict(dict)
    if any(dialects.get(portal.dialect).has_webhook_keys for portal in portals.values()):
        for portal_id, pem, key_id in WebhookPublicKey.objects.filter(
            portal__in=portals
        ).values_list("portal_id", "public_key_pem", "key_id"):
            public_keys[portal_id][pem] = key_id
    secrets: dict[uuid.UUID, str] = {}
    signed_by: dict[uuid.UUID, str] = {}  # the key id of each portal's last accepted delivery
    reread: set[uuid.UUID] = set()  # portals whose key list this call asked SalesIQ for

    receipts: list[Receipt] = [NOT_STORED] * len(deliveries)
    verified: set[uuid.UUID] = set()  # portals that heard from SalesIQ in this batch
    refused: dict[uuid.UUID, _Refused] = {}
    fresh: list[tuple[int, InboxEvent, WebhookEvent | None]] = []
    now = timezone.now()
    for index, delivery in enumerate(deliveries):
        portal = portals.get(_as_uuid(delivery.portal_id))
        if portal is None:
            receipts[index] = NOT_OURS
            continue
        if delivery.length > webhooks.MAX_BODY_BYTES:
            size = delivery.length
            problem = f"A delivery of {size:,} bytes was refused as too large."
            receipts[index] = _refuse(refused, portal, delivery, problem, TOO_LARGE)
            continue
        try:
            if portal.pk not in secrets:
                has_secret = bool(portal.webhook_secret_encrypted)
                secrets[portal.pk] = portal.get_webhook_secret() if has_secret else ""
            pem = _verify(portal, delivery, public_keys, secrets[portal.pk], reread)
        except (SignatureInvalid, TokenDecryptionError) as failure:
            secrets.pop(portal.pk, None)
            receipt = Receipt(401, {"error": "signature not valid"})
            receipts[index] = _refuse(refused, portal, delivery, failure.user_message, receipt)
            if receipts[index] is not TOO_MANY_REFUSED:
                logger.warning(
                    "Webhook for portal %s from %s refused: %s",
                    portal.pk,
                    delivery.address or "an unknown address",
                    failure.technical(),
                )
            continue
        verified.add(portal.pk)  # signed by SalesIQ: webhooks are flowing
        try:
            # Anything parsing raises is this delivery's own doing: it would raise again on
            # every retry, so it is kept as rejected and answered, never failing its batch.
            event = webhooks.parse(portal.dialect, delivery.body)
            unknown = event.kind is EventKind.UNKNOWN
            row = InboxEvent(
                portal=portal,
                dedupe_key=event.dedupe_key,
                event_name=event.name[:100],
                kind=str(event.kind),
                body=delivery.body.decode("utf-8", errors="replace"),
                attempt=event.attempt,
                received_at=now,
                state=InboxEvent.State.UNKNOWN if unknown else InboxEvent.State.PENDING,
            )
        except Exception as failure:
            logger.warning(
                "Webhook for portal %s rejected: %s (%d bytes)",
                portal.pk,
                _technical(failure),
                len(delivery.body),
            )
            fresh.append((index, rejected(portal, delivery.body, why(failure), now), None))
            continue
        if pem is not None:
            signed_by[portal.pk] = public_keys[portal.pk][pem]
        fresh.append((index, row, event))

    stored: list[tuple[int, InboxEvent, WebhookEvent | None]] = []
    if fresh:
        seen = set(
            InboxEvent.objects.filter(
                portal__in={row.portal_id for _, row, _ in fresh},
                dedupe_key__in={row.dedupe_key for _, row, _ in fresh},
            ).values_list("portal_id", "dedupe_key")
        )
        for index, row, event in fresh:
            if (row.portal_id, row.dedupe_key) in seen:
                receipts[index] = DUPLICATE
            else:
                seen.add((row.portal_id, row.dedupe_key))
                stored.append((index, row, event))
    if not (stored or verified or refused):
        # Nothing to write (a flood of refusals answered 429, unknown addresses): not even
        # a transaction, which takes SQLite's write lock.
        return receipts, []
    with transaction.atomic():
        _insert([row for _, row, _ in stored])
        unknown_events: dict[uuid.UUID, list[str]] = defaultdict(list)
        for index, row, _ in stored:
            if row.pk is None:
                receipts[index] = DUPLICATE  # another process stored it a moment ago
                continue
            if row.state == InboxEvent.State.REJECTED:
                # 2xx: SalesIQ retries anything else, and this one would never be stored.
                # Reference: https://help.zoho.com/portal/en/kb/salesiq-2-0/admin-guide/webhooks/articles/webhooksinsalesiq
                receipts[index] = Receipt(200, {"ok": False, "rejected": row.error})
                continue
            receipts[index] = Receipt(200, {"ok": True, "event": row.event_name})
            if row.state == InboxEvent.State.UNKNOWN:
                unknown_events[row.portal_id].append(row.event_name)
        for portal_id, names in unknown_events.items():
            sync, _ = PortalSync.objects.get_or_create(portal_id=portal_id)
            # Counted in the database: two web servers may store unknown events at once.
            PortalSync.objects.filter(pk=sync.pk).update(
                unknown_events=F("unknown_events") + len(names), last_unknown_event=names[-1]
            )
        # In the same transaction: one write, not one more per delivery.
        for portal_id in verified:
            _record(portal_id, ok=True)
        for portal_id, refusal in refused.items():
            sync, _ = PortalSync.objects.get_or_create(portal_id=portal_id)
            PortalSync.objects.filter(pk=sync.pk).update(
                refused_deliveries=F("refused_deliveries") + refusal.count,
                last_refused_at=now,
                last_refused_from=refusal.address[:64],
                last_refused_reason=refusal.problem[:300],
            )
        for portal_id, key_id in signed_by.items():
            if portals[portal_id].last_webhook_key_id != key_id:
                Portal.objects.filter(pk=portal_id).update(last_webhook_key_id=key_id)
    pending = InboxEvent.State.PENDING
    return receipts, [
        Stored(row.pk, row.portal, event, row.received_at)
        for _, row, event in stored
        if row.pk and row.state == pending
    ]


def _verify(
    portal: Portal,
    delivery: Delivery,
    public_keys: dict[uuid.UUID, dict[str, str]],
    secret: str,
    reread: set[uuid.UUID],
) -> str | None:
    """Check ``delivery``'s signature; returns the public key (PEM) that signed a v2 one.

    A signature none of the stored keys matches may be by a key added in SalesIQ's own
    settings: the key list is read again from SalesIQ (at most once a minute per portal,
    within its call budget, once per batch here) and the delivery checked against what
    SalesIQ lists now before it is refused. A delivery without a signature is refused at
    once: no key would change that.
    """
    try:
        return webhooks.verify(
            dialect=portal.dialect,
            body=delivery.body,
            headers=delivery.headers,
            public_keys=public_keys[portal.pk],
            secret=secret,
        )
    except SignatureInvalid:
        if (
            not dialects.get(portal.dialect).has_webhook_keys
            or portal.pk in reread
            or not webhooks.signature_of(portal.dialect, delivery.headers)
        ):
            raise
        reread.add(portal.pk)
        fresh = webhook_keys.reread(portal)
        if fresh is None:
            raise
        public_keys[portal.pk] = {key.public_key_pem: key.key_id for key in fresh}
    return webhooks.verify(
        dialect=portal.dialect,
        body=delivery.body,
        headers=delivery.headers,
        public_keys=public_keys[portal.pk],
    )


# --- refused deliveries ----------------------------------------------------------------------


@dataclass
class _Refused:
    count: int = 0
    address: str = ""
    problem: str = ""


# One moving window per client address, in this process's memory: counting a refusal past
# the limit must cost no database write. (Each web process counts its own.)
_refusal_windows = MovingWindowRateLimiter(MemoryStorage())


def forget_refusals() -> None:
    """Empty every address's window (tests start each from nothing)."""
    _refusal_windows.storage.reset()


def _refuse(
    refused: dict[uuid.UUID, _Refused],
    portal: Portal,
    delivery: Delivery,
    problem: str,
    receipt: Receipt,
) -> Receipt:
    """``receipt``, and the refusal counted for ``portal``; TOO_MANY_REFUSED, uncounted,
    once the delivery's address has been refused too often in the last minute."""
    limit = RateLimitItemPerMinute(settings.SIQ_WEBHOOK_REFUSALS_PER_MINUTE)
    if not _refusal_windows.hit(limit, "webhook-refused", delivery.address or "unknown"):
        return TOO_MANY_REFUSED
    refusal = refused.setdefault(portal.pk, _Refused())
    refusal.count += 1
    refusal.address, refusal.problem = delivery.address, problem
    return receipt


def _insert(rows: list[InboxEvent]) -> None:
    """Store ``rows`` (their pk set); a row another process stored first keeps pk None.

    A row the database cannot take (text it cannot encode, a value out of its range) is
    stored as rejected in its place, on its own: its neighbours are stored all the same.
    Only a database that cannot write at all (locked, gone) raises, failing the batch:
    that is the one case where SalesIQ's retry will work.
    """
    if not rows:
        return
    if connection.features.can_return_rows_from_bulk_insert:
        try:
            with transaction.atomic():
                InboxEvent.objects.bulk_create(rows)
            return
        except OperationalError:
            raise
        except (DatabaseError, ValueError, UnicodeError):
            for row in rows:
                row.pk = None
    for row in rows:
        try:
            with transaction.atomic():
                row.save(force_insert=True)
        except IntegrityError:
            row.pk = None
        except OperationalError:
            raise
        except (DatabaseError, ValueError, UnicodeError) as failure:
            logger.warning("Webhook event not storable: %s", _technical(failure))
            row.pk = None
            body = row.body.encode("utf-8", errors="backslashreplace")
            stand_in = rejected(
                row.portal, body, "It holds text the database cannot store.", row.received_at
            )
            try:
                with transaction.atomic():
                    stand_in.save(force_insert=True)
            except IntegrityError:
                continue  # the same rejected delivery, stored a moment ago
            for field in ("pk", "dedupe_key", "event_name", "kind", "body", "state", "error"):
                setattr(row, field, getattr(stand_in, field))


# --- rejected deliveries ---------------------------------------------------------------------

# What a rejected delivery keeps of its body: enough to see what it was.
REJECTED_BODY_CHARS = 2000


def _technical(failure: BaseException) -> str:
    if isinstance(failure, SalesIQError):
        return failure.technical()[:200]
    return f"{type(failure).__name__}: {str(failure)[:200]}"


def why(failure: BaseException) -> str:
    """Why a signed delivery can never be stored, in words."""
    if isinstance(failure, RecursionError):
        return "Its JSON is nested too deeply to read."
    if isinstance(failure, UnicodeError):
        return "It holds text that is not valid Unicode (a lone surrogate or broken UTF-8)."
    if isinstance(failure, OverflowError | ValueError) and not isinstance(
        failure, MalformedPayload
    ):
        return "It holds a number or a date out of range (such as an event time in year 5000)."
    if isinstance(failure, MalformedPayload):
        return failure.user_message
    return "Its content could not be read."


def rejected(portal: Portal, body: bytes, reason: str, now: datetime) -> InboxEvent:
    """The inbox row of a delivery that can never be stored or applied: its size, its
    SHA-256 (a retry of it is a duplicate), its reason and the start of its body, escaped
    so that any database takes it."""
    digest = hashlib.sha256(body).hexdigest()
    text = body[: REJECTED_BODY_CHARS * 4].decode("ascii", errors="backslashreplace")
    return InboxEvent(
        portal=portal,
        dedupe_key=digest,
        event_name="",
        kind="rejected",
        body=text[:REJECTED_BODY_CHARS].replace("\x00", "\\x00"),
        received_at=now,
        state=InboxEvent.State.REJECTED,
        error=f"{reason} ({len(body):,} bytes, SHA-256 {digest[:16]}…)",
    )


# --- applying -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """An event just stored, with what storing it already knew: applying it in this
    process needs neither its row nor its parsing again."""

    pk: int
    portal: Portal
    event: WebhookEvent
    received_at: datetime


def apply_stored(item: int | Stored) -> bool:
    """Apply one stored event if nobody else has; returns whether this call applied it.

    Claimed, applied and marked in one transaction: another process's claim waits for it
    and then finds the event applied; a crash half-way leaves it pending for the sweep,
    and a failure marks it failed with its error.
    """
    event_id = item.pk if isinstance(item, Stored) else item
    pending = InboxEvent.objects.filter(pk=event_id, state=InboxEvent.State.PENDING)
    try:
        # The event's changes and its action's confirmation: one publication.
        with publish.together(), transaction.atomic():
            now = timezone.now()
            if not pending.update(state=InboxEvent.State.APPLIED, claimed_at=now, applied_at=now):
                return False
            if isinstance(item, Stored):
                portal, event, received_at = item.portal, item.event, item.received_at
            else:
                stored = InboxEvent.objects.select_related("portal").get(pk=event_id)
                portal, received_at = stored.portal, stored.received_at
                event = webhooks.parse(portal.dialect, stored.body.encode("utf-8"))
            apply.apply_event(portal, event, received_at=received_at)
            outcomes.confirm(portal, event)
    except Exception as error:
        logger.exception("Applying webhook event %s failed", event_id)
        pending.update(
            state=InboxEvent.State.FAILED, error=f"{type(error).__name__}: {error}"[:1000]
        )
        return False
    return True


def sweep(*, older_than: timedelta = timedelta(seconds=5), limit: int = 200) -> int:
    """Apply events a crash or a restart left behind; returns how many were applied."""
    now = timezone.now()
    waiting = (
        InboxEvent.objects.filter(state=InboxEvent.State.PENDING, received_at__lt=now - older_than)
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(apply_stored_together(batch) for batch in batched(waiting, BATCH_LIMIT))


# --- pruning -------------------------------------------------------------------------------

# Done with: applied, rejected (kept to be seen on the portal page), of a kind not used.
# Pending and failed ones stay whatever their age: they still need a look.
PRUNABLE = (InboxEvent.State.APPLIED, InboxEvent.State.REJECTED, InboxEvent.State.UNKNOWN)
PRUNE_BATCH = 500  # rows a DELETE removes at once: SQLite's write lock held briefly
PRUNE_BATCHES = 20  # at most this many batches a call: the rest waits for the next


def prune(
    *,
    now: datetime | None = None,
    keep: timedelta | None = None,
    batch: int = PRUNE_BATCH,
    batches: int = PRUNE_BATCHES,
) -> int:
    """Delete inbox rows done with for longer than ``keep`` (SIQ_INBOX_KEEP_DAYS), a batch
    per transaction; returns how many went. Each delivery is ~0.76 KB, forever without."""
    keep = keep if keep is not None else timedelta(days=settings.SIQ_INBOX_KEEP_DAYS)
    before = (now or timezone.now()) - keep
    done = InboxEvent.objects.filter(state__in=PRUNABLE, received_at__lt=before)
    removed = 0
    for _ in range(batches):
        ids = list(done.values_list("pk", flat=True)[:batch])
        if not ids:
            break
        removed += InboxEvent.objects.filter(pk__in=ids, state__in=PRUNABLE).delete()[0]
        if len(ids) < batch:
            break
    return removed


# The most events the sweep applies in one go, their changes published together.
BATCH_LIMIT = 8


def apply_stored_together(event_ids: Sequence[int | Stored]) -> int:
    """Apply several stored events in order (the sweep's leftovers), their changes published
    (and their alert rules run) once; returns how many this call applied. Each is claimed
    and applied in a transaction of its own, as ``apply_stored`` does alone, so SQLite's
    write lock is never held longer than one event while deliveries wait to be stored, and
    one event's failure is that event's alone."""
    if len(event_ids) <= 1:
        return sum(1 for event_id in event_ids if apply_stored(event_id))
    with publish.together():
        return sum(1 for event_id in event_ids if apply_stored(event_id))


# --- the webhook lane: one thread stores and applies, deliveries first ----------------------

# The most deliveries verified and stored in one transaction.
STORE_LIMIT = 64
# The lane's thread gives its database connection back after this long without work.
IDLE_CLOSE_SECONDS = 2.0


# Whether the lane counts the figures of what it applied (dashboard/figures/counting.py): in a
# process that runs the worker too (`manage.py serve`, the embedded default), whose queues job
# publishes what the lane's counts moved. Elsewhere the worker's own count does it all.
LANE_COUNTS = False


class _Lane:
    """Under a server loop, one thread does the webhook path's database work: storing what
    arrived (SalesIQ waits for that answer, and sends a webhook's next delivery only then),
    applying what was stored, and publishing what was applied.

    One thread, so storing and applying never wait for each other's write lock: SQLite
    makes a writer that finds the lock taken sleep and try again after 1, 2, 5, 10 ms…,
    which put ~20 ms into every answer while events were applied. (A thread of its own for
    publishing was tried too: with one GIL it slowed the other two down.)

    What waits goes in this order: deliveries (stored together, one transaction, then
    answered; but at least one stored event is applied after each such batch), stored
    events (one at a time, their changes held by the publisher's ``Hold``), and
    publishing what is held (rendered and pushed once per portal, the event alert rules
    run). Publishing waits while deliveries or events are waiting, as long as the
    publisher's rule allows (dashboard/realtime/publish.py, ``Hold``): a delivery arriving
    while its predecessor's change is published would otherwise wait for the rendering
    and the push, and under a flood the changes of several events go out as one message.

    The thread keeps its database connection while there is work (a web request opens and
    closes one) and closes it after a while idle, or when something failed (the connection
    may be what failed).
    """

    def __init__(self) -> None:
        self.applied: set[Any] = set()  # portals whose chats the lane applied, to count
        self.deliveries: deque[tuple[Delivery, asyncio.Future]] = deque()
        self.events: deque[int | Stored] = deque()
        self.held = publish.Hold()  # applied, not yet published
        self.task: asyncio.Task | None = None  # held: the loop keeps only weak references
        self.idle_since = 0.0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhooks")
        self.call = sync_to_async(self._work, thread_sensitive=False, executor=self.executor)

    def add(self, queue: deque, item) -> None:
        queue.append(item)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._drain())

    def _pending(self) -> bool:
        return bool(self.deliveries or self.events or self.held)

    async def _drain(self) -> None:
        # On the loop, where items are added: nothing added is ever left without a drain.
        loop = asyncio.get_running_loop()
        try:
            while self._pending():
                await self.call(loop)
        finally:
            self.task = None
            self.idle_since = loop.time()
            loop.call_later(IDLE_CLOSE_SECONDS, self._close_if_idle, loop)

    def _work(self, loop) -> None:
        """In the lane's thread, until nothing waits (the loop adds meanwhile); then, where
        this process runs the worker too, the figures of what it applied are counted."""
        stored_last = False
        try:
            while self._pending():
                if self.deliveries and not (stored_last and self.events):
                    count = min(STORE_LIMIT, len(self.deliveries))
                    batch = [self.deliveries.popleft() for _ in range(count)]
                    self.events.extend(_store_batch(loop, batch))  # applied next, here
                    stored_last = True
                elif self.events and not self.held.due():
                    # At least one event after every batch stored: under a flood of
                    # deliveries the page still moves, one event per batch answered.
                    self._apply_one()
                    stored_last = False
                else:
                    self.held.release()
                    stored_last = False
        except Exception:
            logger.exception("The webhook lane failed; the sweep applies what is left")
            self.held.clear()
            connections.close_all()
        if LANE_COUNTS:
            self._count()

    def _count(self) -> None:
        """Count the chats the lane applied (nothing waits: the next delivery waits for a
        chat or two at most) and hand what moved to the worker's queues job."""
        while self.applied:
            portal_id = self.applied.pop()
            try:
                counting.handed.add(portal_id, *apply.count_pending(portal_id))
            except Exception:
                # Still marked: the worker's queues job counts them.
                logger.exception("Counting the figures of portal %s failed", portal_id)
                connections.close_all()

    def _apply_one(self) -> None:
        try:
            item = self.events.popleft()
            if isinstance(item, Stored):
                self.applied.add(item.portal.pk)
            with self.held.collecting():
                apply_stored(item)
        except Exception:
            logger.exception("Applying a webhook event failed; the sweep tries again")
            connections.close_all()

    def _close_if_idle(self, loop) -> None:
        if self.task is None and loop.time() - self.idle_since >= IDLE_CLOSE_SECONDS - 0.01:
            self.executor.submit(connections.close_all)


_lanes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _lane() -> _Lane:
    loop = asyncio.get_running_loop()
    lane = _lanes.get(loop)
    if lane is None:
        lane = _lanes[loop] = _Lane()
    return lane


async def store(delivery: Delivery) -> Receipt:
    """Store one delivery with whatever else arrived meanwhile; its answer once committed.
    Applying follows off the answer's path."""
    future = asyncio.get_running_loop().create_future()
    lane = _lane()
    lane.add(lane.deliveries, (delivery, future))
    return await future


def _store_batch(loop, batch: list[tuple[Delivery, asyncio.Future]]) -> list[Stored]:
    """Store ``batch`` and have the loop answer each sender; returns what to apply."""
    try:
        receipts, stored = receive_many([delivery for delivery, _ in batch])
    except Exception:
        logger.exception("Storing %d webhook deliveries failed; SalesIQ sends again", len(batch))
        receipts, stored = [NOT_STORED] * len(batch), []
        connections.close_all()
    loop.call_soon_threadsafe(_answer, batch, receipts)
    return stored


def _answer(batch, receipts: list[Receipt]) -> None:
    for (_, future), receipt in zip(batch, receipts, strict=True):
        if not future.done():  # the sender may have gone
            future.set_result(receipt)


def _enqueue(item: int | Stored) -> None:
    """On the server's loop: queue a stored event for the lane to apply."""
    lane = _lane()
    lane.add(lane.events, item)


# The event loop serving the current request, for the code it runs in a thread: the ASGI
# receiver (dashboard/views/webhooks.py) sets it, and asgiref carries context variables
# into the threads of sync_to_async.
serving_loop: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "serving_loop", default=None
)


def schedule(event_id: int | Stored) -> None:
    """Apply ``event_id`` now, off the request's path when an event loop serves us.

    Under daphne the view runs in a thread of the server's event loop: the event is
    applied by the loop's applying lane (so publishing reaches the in-memory fan-out of
    this process) and SalesIQ gets its answer at once. Elsewhere it is applied here.
    """
    loop = serving_loop.get()
    if loop is not None and loop.is_running():
        loop.call_soon_threadsafe(_enqueue, event_id)
    else:
        apply_stored(event_id)
