"""Which portals this worker polls: a lease per portal on its PortalSync row.

Exactly one worker polls a portal at a time, however many run: a lease is taken and
renewed with one conditional UPDATE (so two workers can never both win) every tick. A
worker that dies stops renewing; the lease expires after ``LEASE_TTL`` and the next tick
of another worker takes it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from siq_integration.models import Portal

from ..models import PortalSync

logger = logging.getLogger(__name__)

LEASE_TTL = timedelta(seconds=10)


def new_holder() -> str:
    """Who holds a lease, in words an admin can trace to a process: host:pid:random."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


def connected_portals() -> list[Portal]:
    return list(
        Portal.objects.exclude(refresh_token_encrypted="").filter(connected_at__isnull=False)
    )


class Leases:
    """The leases one worker holds (never shared between workers)."""

    def __init__(self, *, holder: str | None = None, ttl: timedelta = LEASE_TTL) -> None:
        self.holder = holder or new_holder()
        self.ttl = ttl
        self.held: set[Any] = set()
        self._has_sync_row: set[Any] = set()
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

    def hold(
        self, portals: dict[Any, Portal], now: datetime, busy: set[Any] = frozenset()
    ) -> tuple[set[Any], set[Any]]:
        """Take or renew leases; returns (held, newly taken). ``busy``: portals with a
        poll under way."""
        with self._lock:
            if self._released:
                return set(), set()
            held: set[Any] = set()
            for portal_id, portal in portals.items():
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
            PortalSync.objects.filter(lease_holder=self.holder).update(
                lease_holder="", lease_expires_at=None
            )
            if self.held:
                logger.info("Worker %s released %d portal(s)", self.holder, len(self.held))
            self.held = set()
