"""Which portals this worker polls: a lease per portal on its PortalSync row.

Exactly one worker polls a portal at a time, however many run: a lease is taken and
renewed with one conditional UPDATE (so two workers can never both win) every tick. A
worker that dies stops renewing; the lease expires after ``LEASE_TTL`` and the next tick
of another worker takes it.

Leases are balanced: each worker says it is alive with a heartbeat row every tick, and
with N live workers none holds more than its fair share, ceil(portals / N). A worker
holding more (it ran alone before the others started) hands the excess back, and the
others, below their share, take it on their next tick. When a worker dies, its heartbeat
and its leases go stale together after ``LEASE_TTL``: the survivors' share grows and they
take its portals on their next tick. Each worker tries the free portals in an order of
its own (rendezvous hashing of holder and portal), so workers starting together rarely
contend for the same rows.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
import socket
import threading
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from siq_integration.models import Portal

from ..models import PortalSync, WorkerHeartbeat

logger = logging.getLogger(__name__)

LEASE_TTL = timedelta(seconds=10)
FORGET_AFTER = timedelta(hours=1)  # heartbeat rows older than this are deleted


def new_holder() -> str:
    """Who holds a lease, in words an admin can trace to a process: host:pid:random."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


def connected_portals() -> list[Portal]:
    return list(
        Portal.objects.exclude(refresh_token_encrypted="").filter(connected_at__isnull=False)
    )


def fair_share(portals: int, workers: int) -> int:
    """The most portals one of ``workers`` live workers holds."""
    return math.ceil(portals / max(1, workers))


def preference(holder: str, portal_id: Any) -> int:
    """How much ``holder`` wants a portal (rendezvous hashing): stable, and different for
    each worker, so each tries the free portals in its own order."""
    return int.from_bytes(hashlib.sha256(f"{holder}|{portal_id}".encode()).digest()[:8], "big")


def excess(held: set[Any], share: int, holder: str, busy: set[Any] = frozenset()) -> set[Any]:
    """Which held portals to hand back to stay within ``share``: those this worker wants
    least, never one with a poll under way (handed back once it ends)."""
    spare = len(held) - share
    if spare <= 0:
        return set()
    idle = sorted(held - set(busy), key=lambda portal_id: preference(holder, portal_id))
    return set(idle[:spare])


class Leases:
    """The leases one worker holds (never shared between workers)."""

    def __init__(self, *, holder: str | None = None, ttl: timedelta = LEASE_TTL) -> None:
        self.holder = holder or new_holder()
        self.ttl = ttl
        self.held: set[Any] = set()
        self._has_sync_row: set[Any] = set()
        self._forgotten_at: datetime | None = None
        # Releasing and renewing never interleave: once released, a late tick takes nothing.
        self._lock = threading.Lock()
        self._released = False

    def _ensure_sync_row(self, portal_id: Any) -> None:
        if portal_id in self._has_sync_row:
            return
        if not PortalSync.objects.filter(portal_id=portal_id).exists():
            try:
                with transaction.atomic():
                    PortalSync.objects.create(portal_id=portal_id)
            except IntegrityError:
                pass  # another worker created it first: fine
        self._has_sync_row.add(portal_id)

    def _take_or_renew(self, portal_id: Any, now: datetime) -> bool:
        """One conditional UPDATE: only one worker can match, however many try at once."""
        return bool(
            PortalSync.objects.filter(portal_id=portal_id)
            .filter(
                Q(lease_holder=self.holder)
                | Q(lease_holder="")
                | Q(lease_expires_at__isnull=True)
                | Q(lease_expires_at__lt=now)
            )
            .update(lease_holder=self.holder, lease_expires_at=now + self.ttl, heartbeat_at=now)
        )

    def live_workers(self, now: datetime) -> int:
        """Beat, and count the workers seen within a lease's length (this one included)."""
        if not WorkerHeartbeat.objects.filter(holder=self.holder).update(seen_at=now):
            try:
                with transaction.atomic():
                    WorkerHeartbeat.objects.create(holder=self.holder, seen_at=now)
            except IntegrityError:
                pass  # a late tick of a stopping worker raced its release: harmless
        if self._forgotten_at is None or now - self._forgotten_at >= timedelta(minutes=1):
            self._forgotten_at = now
            WorkerHeartbeat.objects.filter(seen_at__lt=now - FORGET_AFTER).delete()
        seen = WorkerHeartbeat.objects.filter(seen_at__gte=now - self.ttl).exclude(
            holder=self.holder
        )
        return 1 + seen.count()

    def hold(
        self, portals: dict[Any, Portal], now: datetime, busy: set[Any] = frozenset()
    ) -> tuple[set[Any], set[Any]]:
        """Renew this worker's leases and take free ones up to its fair share; hand back
        what is beyond it. Returns (held, newly taken). ``busy``: portals with a poll
        under way (never handed back mid-poll)."""
        with self._lock:
            if self._released:
                return set(), set()
            share = fair_share(len(portals), self.live_workers(now))
            # Renew first, then the free ones in this worker's own order.
            order = sorted(
                portals,
                key=lambda pk: (pk not in self.held, -preference(self.holder, pk)),
            )
            held: set[Any] = set()
            for portal_id in order:
                portal = portals[portal_id]
                if portal_id not in self.held and len(held) >= share:
                    continue  # a full share: the other workers take the rest
                self._ensure_sync_row(portal_id)
                if self._take_or_renew(portal_id, now):
                    held.add(portal_id)
                    if portal_id not in self.held:
                        logger.info("Worker %s now polls portal %s", self.holder, portal)
                elif portal_id in self.held:
                    logger.warning(
                        "Worker %s lost the lease of portal %s; another worker polls it",
                        self.holder,
                        portal,
                    )
            handed = excess(held, share, self.holder, busy)
            if handed:
                PortalSync.objects.filter(portal_id__in=handed, lease_holder=self.holder).update(
                    lease_holder="", lease_expires_at=None
                )
                for portal_id in handed:
                    logger.info(
                        "Worker %s hands portal %s to a worker with room (a share is %d)",
                        self.holder,
                        portals[portal_id],
                        share,
                    )
                held -= handed
            gone = self.held - set(portals)
            if gone:
                # Disconnected (or deleted) since the last tick: nobody should poll them.
                PortalSync.objects.filter(portal_id__in=gone, lease_holder=self.holder).update(
                    lease_holder="", lease_expires_at=None
                )
            taken = held - self.held
            self.held = held
            return held, taken

    def release(self) -> None:
        """Give every lease back at once, so another worker takes over on its next tick."""
        with self._lock:
            self._released = True
            WorkerHeartbeat.objects.filter(holder=self.holder).delete()
            PortalSync.objects.filter(lease_holder=self.holder).update(
                lease_holder="", lease_expires_at=None
            )
            if self.held:
                logger.info("Worker %s released %d portal(s)", self.holder, len(self.held))
            self.held = set()
