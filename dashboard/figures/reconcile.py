"""Reading today's ended chats back from SalesIQ after a gap in what the dashboard heard.

The figures are counted from the facts the dashboard stores (webhooks and polls), with no
SalesIQ call of their own. When facts may have been lost, the portal has a **gap**
(``PortalSync.figures_gap_from`` to ``figures_gap_until``):

- **The dashboard was down**: a worker takes a portal's lease and finds that nothing was
  heard of it (no event applied, no poll) for longer than ``health.WEBHOOKS_FLOWING_WITHIN``.
  The gap runs from the last thing heard to the taking (``note_lease_taken``).
- **Webhooks were silent while chats were open** (``selectors.webhook_silence``, the
  definition the page's banner and the alert rule share): the gap runs from the last
  delivery for as long as the silence lasts (``note_webhooks``).

Once a gap has ended, ``Reconciler`` lists SalesIQ's ended and missed chats that arrived
today and changed since the gap began, page by page, and hands each page to be applied
through ``state.apply`` like any poll (by the worker's side: the figures never apply facts
themselves). Counting is idempotent, so a chat the figures had already counts once. It
spends at most ``BUDGET_SHARE`` of the portal's background calls a minute, the share the
poll planner leaves unplanned (``polling.planner.HEADROOM``), so live polling goes first;
a listing cut short by its share goes on from the same page on a later round. When the
whole listing was read, the gap is cleared. ``incomplete`` says, in words, what the pages
should say meanwhile.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from siq_integration import budget, dialects
from siq_integration import exceptions as exc
from siq_integration.client import SalesIQClient
from siq_integration.health import WEBHOOKS_FLOWING_WITHIN
from siq_integration.models import Portal
from siq_integration.normalised import Conversation

from .. import times
from ..models import PortalSync, ServiceSettings
from .counting import zone_of
from .definitions import day_start

logger = logging.getLogger(__name__)

RECONCILE_EVERY = 30.0  # seconds between the job's rounds
# Of the background calls a minute allows (the budget minus what actions keep), the most
# reading back may take: the share the poll planner leaves unplanned (1 - HEADROOM), at least
# one call a minute.
BUDGET_SHARE = 0.2
# Asked for a little before the gap began: SalesIQ's clock and ours may differ by seconds.
OVERLAP = timedelta(minutes=5)
# After SalesIQ failed (or paged wrongly), the next attempt waits this long.
RETRY_AFTER_FAILURE = timedelta(minutes=5)

WAITING_FOR_BUDGET = "budget"
WAITING_FOR_SALESIQ = "salesiq"
# The call budget (ours, or SalesIQ asking us to slow down) says "not now", and when.
_NOT_NOW = (exc.BudgetExhausted, exc.RateLimited, exc.TokenRefreshLimited)


# --- recording a gap -------------------------------------------------------------------------


def record_gap(portal_id: Any, *, since: datetime, until: datetime | None) -> None:
    """Widen the portal's gap to cover ``since`` to ``until`` (None: it goes on)."""
    with transaction.atomic():
        sync = (
            PortalSync.objects.select_for_update()
            .filter(portal_id=portal_id)
            .only("figures_gap_from", "figures_gap_until")
            .first()
        )
        if sync is None:
            return
        start, end = since, until
        if sync.figures_gap_from is not None:
            start = min(sync.figures_gap_from, since)
            ongoing = until is None or sync.figures_gap_until is None
            end = None if ongoing else max(sync.figures_gap_until, until)
        if (start, end) == (sync.figures_gap_from, sync.figures_gap_until):
            return
        PortalSync.objects.filter(pk=sync.pk).update(figures_gap_from=start, figures_gap_until=end)
    logger.info("Portal %s: today's figures may be missing chats since %s", portal_id, start)


def _end_gap(portal_id: Any, at: datetime) -> None:
    """The gap that was going on (webhooks silent) ends at ``at``."""
    PortalSync.objects.filter(
        portal_id=portal_id, figures_gap_from__isnull=False, figures_gap_until__isnull=True
    ).update(figures_gap_until=at)


def last_heard(sync: PortalSync) -> datetime | None:
    """The last time the dashboard applied anything of the portal: an event or a poll."""
    known = [t for t in (sync.last_event_at, sync.chats_polled_at, sync.operators_polled_at) if t]
    return max(known, default=None)


def note_lease_taken(portal_ids: Iterable[Any], now: datetime) -> None:
    """A worker just took these portals (or started): whatever happened while nothing was
    heard of one for longer than webhooks may be quiet may be missing from its figures."""
    ids = list(portal_ids)
    if not ids:
        return
    for sync in PortalSync.objects.filter(portal_id__in=ids).only(
        "portal_id", "last_event_at", "chats_polled_at", "operators_polled_at"
    ):
        heard = last_heard(sync)
        if heard is not None and now - heard > WEBHOOKS_FLOWING_WITHIN:
            record_gap(sync.portal_id, since=heard, until=now)


def note_webhooks(portal: Portal, now: datetime, *, silent_since: datetime | None) -> None:
    """``silent_since``: webhooks are silent while chats are open, since then (None: not
    silent). A silence opens a gap; its end closes it."""
    if silent_since is not None:
        record_gap(portal.pk, since=silent_since, until=None)
    else:
        _end_gap(portal.pk, now)


# --- what the pages say ------------------------------------------------------------------------


def _zone(portal_id: Any) -> ZoneInfo:
    # Read only: a page render never creates the portal's settings.
    settings = ServiceSettings.objects.filter(portal_id=portal_id).first()
    return zone_of(settings) if settings is not None else ZoneInfo("UTC")


def incomplete(portal: Portal, now: datetime, *, clock: times.Clock | None = None) -> str | None:
    """A sentence for the pages while today's figures may be missing chats, else None.

    ``clock``: the viewer's (dashboard/times.py); by default the portal's business zone."""
    sync = (
        PortalSync.objects.filter(portal_id=portal.pk)
        .only(
            "figures_gap_from",
            "figures_gap_until",
            "figures_retry_at",
            "figures_waiting_for",
        )
        .first()
    )
    if sync is None or sync.figures_gap_from is None:
        return None
    zone = _zone(portal.pk)
    today = day_start(now, zone)
    until = sync.figures_gap_until
    if until is not None and until <= today:
        return None  # an earlier day's gap: today's figures lost nothing
    clock = clock or times.Clock(zone=zone)

    def at(moment: datetime) -> str:
        return times.when(moment, clock, now)

    since = max(sync.figures_gap_from, today)
    span = f"from {at(since)} to {at(until)}" if until is not None else f"since {at(since)}"
    head = f"Today's figures may be missing chats {span}"
    if not dialects.get(portal.dialect).lists_closed_conversations:
        return (
            f"{head}: they cannot be reconciled on this portal (its SalesIQ does not list "
            "ended chats)."
        )
    if until is None:
        return (
            f"{head}, while SalesIQ's webhooks are silent: they are read back from SalesIQ "
            "once webhooks arrive again."
        )
    retry_at = sync.figures_retry_at
    if retry_at is not None and retry_at > now:
        if sync.figures_waiting_for == WAITING_FOR_BUDGET:
            return (
                f"{head}: reading them back from SalesIQ once the call budget allows, "
                f"at {at(retry_at)}."
            )
        return f"{head}: SalesIQ did not give them back; trying again at {at(retry_at)}."
    return f"{head}: reading them back from SalesIQ."


# --- reading back ------------------------------------------------------------------------------


@dataclass
class _Listing:
    """A read-back under way: the gap it covers and how far it got."""

    gap: tuple[datetime, datetime]
    arrived_since: datetime  # the business day's start when it began
    changed_since: datetime
    began_at: datetime
    resume_at: tuple[int, int] = (0, 1)  # which query, which page of it


@dataclass
class _Spent:
    minute: datetime
    calls: int = 0


def _minute_share(portal: Portal) -> int:
    background = portal.calls_per_minute - budget.reserved(portal.calls_per_minute)
    if background <= 0:
        return 0
    return max(1, math.floor(BUDGET_SHARE * background))


def _wait(portal_id: Any, until: datetime, why: str) -> None:
    PortalSync.objects.filter(portal_id=portal_id).update(
        figures_retry_at=until, figures_waiting_for=why
    )


def _finish(portal_id: Any, listing: _Listing) -> bool:
    """Clear the gap the listing covered, unless it widened meanwhile (then it is read again,
    from the start)."""
    start, end = listing.gap
    cleared = PortalSync.objects.filter(
        portal_id=portal_id, figures_gap_from=start, figures_gap_until=end
    ).update(
        figures_gap_from=None,
        figures_gap_until=None,
        figures_reconciled_at=listing.began_at,
        figures_retry_at=None,
        figures_waiting_for="",
    )
    return bool(cleared)


# Applies a page of ended chats read back (``portal``, ``conversations``, ``taken_at``): the
# worker's side hands it in (dashboard/jobs.py), since the figures never apply facts
# themselves; state.apply counts what it applies.
ApplyPage = Callable[[Portal, list[Conversation], datetime], None]


class Reconciler:
    """Reads the ended chats of the portals' gaps back, within each one's share of the
    budget, and hands each page to ``apply_page``; remembers, per portal, how far a listing
    got (one worker's own, never shared: another worker that takes the portal over starts
    the listing again)."""

    def __init__(self, apply_page: ApplyPage) -> None:
        self.apply_page = apply_page
        self.listings: dict[Any, _Listing] = {}
        self.spent: dict[Any, _Spent] = {}

    def calls_left(self, portal: Portal, now: datetime) -> int:
        """Calls reading back may still make for ``portal`` this minute."""
        minute = now.replace(second=0, microsecond=0)
        spent = self.spent.get(portal.pk)
        if spent is None or spent.minute != minute:
            spent = self.spent[portal.pk] = _Spent(minute)
        return _minute_share(portal) - spent.calls

    def reconcile(self, portal: Portal, now: datetime) -> None:
        """One round for ``portal``: read what its share allows, apply it, and clear the gap
        once the listing is whole."""
        sync = PortalSync.objects.filter(portal_id=portal.pk).first()
        if sync is None or sync.figures_gap_from is None or sync.figures_gap_until is None:
            # No gap, or webhooks still silent: read back once they arrive again.
            self.listings.pop(portal.pk, None)
            return
        gap = (sync.figures_gap_from, sync.figures_gap_until)
        today = day_start(now, _zone(portal.pk))
        if gap[1] <= today:
            # An earlier day's gap: today's figures lost nothing.
            self.listings.pop(portal.pk, None)
            PortalSync.objects.filter(
                portal_id=portal.pk, figures_gap_from=gap[0], figures_gap_until=gap[1]
            ).update(figures_gap_from=None, figures_gap_until=None, figures_retry_at=None)
            return
        if not dialects.get(portal.dialect).lists_closed_conversations:
            return  # ``incomplete`` says it cannot be done here
        if sync.figures_retry_at is not None and now < sync.figures_retry_at:
            return
        listing = self.listings.get(portal.pk)
        if listing is None or listing.gap != gap:
            listing = self.listings[portal.pk] = _Listing(
                gap=gap,
                arrived_since=today,
                changed_since=max(gap[0], today) - OVERLAP,
                began_at=now,
            )
        self._read(portal, listing, now)

    def _read(self, portal: Portal, listing: _Listing, now: datetime) -> None:
        left = self.calls_left(portal, now)
        if left <= 0:
            return
        client = SalesIQClient(portal, attempts=1)
        pages = client.closed_conversation_pages(
            arrived_since=listing.arrived_since,
            changed_since=listing.changed_since,
            resume_at=listing.resume_at,
        )
        spent = self.spent[portal.pk]
        whole = False
        try:
            while client.calls < left:
                taken_at = timezone.now()
                page = next(pages, None)
                if page is None:
                    whole = True
                    break
                self.apply_page(portal, page.conversations, taken_at)
                if page.resume_at is None:
                    whole = True
                    break
                listing.resume_at = page.resume_at
        except _NOT_NOW as pause:
            retry_at = pause.retry_at or timezone.now() + RETRY_AFTER_FAILURE
            _wait(portal.pk, retry_at, WAITING_FOR_BUDGET)
            logger.info("Portal %s: reading back waits: %s", portal, pause.user_message)
            return
        except exc.SalesIQError as failure:
            _wait(portal.pk, timezone.now() + RETRY_AFTER_FAILURE, WAITING_FOR_SALESIQ)
            logger.warning("Portal %s: reading back failed: %s", portal, failure.technical())
            return
        finally:
            spent.calls += client.calls
            pages.close()
        if not whole:
            return  # this minute's share is spent: the next round goes on from here
        self.listings.pop(portal.pk, None)
        if client.incomplete:
            # SalesIQ repeated a page: what was read is applied; the whole is asked again.
            _wait(portal.pk, timezone.now() + RETRY_AFTER_FAILURE, WAITING_FOR_SALESIQ)
            logger.warning("Portal %s: reading back stopped: %s", portal, client.notices)
            return
        if _finish(portal.pk, listing):
            logger.info("Portal %s: today's figures are whole again", portal)
