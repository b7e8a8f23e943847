"""The poller: runs the listings that keep one portal's live state true to SalesIQ.

v2 has no presence webhook, so operators are polled often (incrementally, with
``last_sync_time``); open chats are listed to reconcile what webhooks said (add what
is missing, close ghosts, fix what disagrees); departments now and then. How often is
the planner's business; what is polled is applied through dashboard.state.apply. Which portals
are polled is the leases' business: the poller only sees those its worker holds.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from siq_integration import budget, dialects
from siq_integration import exceptions as exc
from siq_integration.client import SalesIQClient
from siq_integration.models import Portal

from ..actions import outcomes, status_rules
from ..figures import reconcile
from ..models import OPEN_CHAT_STATUSES, Chat, Department, Operator, PortalSync
from ..state import apply
from . import planner

logger = logging.getLogger(__name__)

PLAN_EVERY = 5.0  # seconds a plan is reused before counting chats and budget again
MAX_PARALLEL_POLLS = 4  # portals polled at once by one worker
# A listing too long for one minute's budget waits for the next minute, never longer
# (a spent day budget is not worth holding a thread for).
LONGEST_BUDGET_WAIT = 65.0
BACKOFF_FIRST = 5.0
BACKOFF_MAX = 300.0
# While SalesIQ does not answer, polling stops and one cheap question (a one-item page, no
# retries) goes every this many seconds, so the pages hear SalesIQ is back within about that
# (a doubling back-off had grown to 41 s after a minute's outage). 6 calls a minute: 60% of a
# Free plan's 10, within the 7 it leaves background work (the 3 kept for actions stay free),
# and nothing else is called meanwhile; a smaller budget stretches it (60 s / its share).
UNREACHABLE_PROBE_EVERY = 10.0

DEPARTMENTS = "departments"
OPERATORS = "operators"
CHATS = "chats"
PROBE = "probe"  # is SalesIQ back? (only while it is unreachable)

# Refusals an admin must fix by reconnecting: polling again changes nothing.
_NEEDS_RECONNECT = (exc.TokenInvalid, exc.ScopeMissing, exc.TokenDecryptionError)
# "Not now": the exception says when.
_NOT_NOW = (exc.BudgetExhausted, exc.RateLimited, exc.TokenRefreshLimited)


def token_fingerprint(portal: Portal) -> str:
    """Changes whenever an admin reconnects the portal (new ciphertext, new connected_at)."""
    seed = f"{portal.refresh_token_encrypted}|{portal.connected_at}|{portal.granted_scopes}"
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PollJob:
    portal_id: Any
    kinds: tuple[str, ...]  # departments, operators, chats: in that order
    full_operators: bool
    plan: planner.Plan
    # PortalSync.last_poll_error was set (maybe by a worker that died): clear it on success.
    error_shown: bool = False


@dataclass
class _PortalState:
    """What one worker remembers about a portal between ticks (never shared)."""

    in_flight: bool = False
    retry_at: datetime | None = None
    failures: int = 0
    stopped_for: str = ""  # token fingerprint SalesIQ refused; "" while polling
    error_shown: bool = False  # last_poll_error holds words of this worker
    plan: planner.Plan | None = None
    planned_at: float = 0.0  # time.monotonic()
    not_before: dict[str, datetime] = field(default_factory=dict)
    # A listing that spanned minutes is not a snapshot: PortalSync.chats_polled_at
    # stays as it was, so remember here that chats were listed.
    chats_listed_at: datetime | None = None
    # Just took the lease: whatever happened while nobody (or a dying worker) held it,
    # webhooks included, is unknown here, so reconcile at once.
    reconcile_now: bool = False
    # SalesIQ did not answer the last call: only probes until it does.
    unreachable: bool = False


class _PatientClient(SalesIQClient):
    """Waits for the next minute's budget between pages, instead of giving up a listing
    longer than one minute allows (2,000 chats on a Free plan: 21 pages, 7 calls a minute).
    ``waited`` then says the listing spanned minutes. The plan's cost is a guess (the first
    listing of a portal knows of no chats), so every listing is patient."""

    def __init__(self, portal: Portal, *, stopping: threading.Event) -> None:
        super().__init__(portal)
        self.waited = False
        self._stopping = stopping

    def _request(self, call, *, url=None):
        while True:
            try:
                return super()._request(call, url=url)
            except exc.BudgetExhausted as refusal:
                if refusal.retry_at is None:
                    raise
                wait = (refusal.retry_at - timezone.now()).total_seconds() + 0.2
                if wait > LONGEST_BUDGET_WAIT or self._stopping.wait(max(wait, 0.0)):
                    raise
                self.waited = True


def _next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _seconds_left_today(now: datetime) -> float:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return (midnight - now).total_seconds()


def _is_due(last: datetime | None, every: float, now: datetime) -> bool:
    return last is None or (now - last).total_seconds() >= every


def _latest(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


class Poller:
    """Plans and runs the polls of the portals one worker holds; remembers each portal
    between ticks (never shared between workers)."""

    def __init__(
        self,
        *,
        stopping: threading.Event,
        max_parallel: int = MAX_PARALLEL_POLLS,
        on_health_change: Callable[[Portal], None] = lambda portal: None,
    ) -> None:
        self.stopping = stopping
        self.max_parallel = max_parallel
        # A poll saw SalesIQ stop or start answering: tell the pages now.
        self.on_health_change = on_health_change
        self.states: dict[Any, _PortalState] = {}

    def busy(self) -> set[Any]:
        """Portals with a poll under way."""
        return {pk for pk, state in list(self.states.items()) if state.in_flight}

    def taken(self, portal_ids: set[Any], now: datetime | None = None) -> None:
        """Just took these leases: whatever happened while nobody held them is unknown
        here, so reconcile at once."""
        for portal_id in portal_ids:
            self._state(portal_id).reconcile_now = True
        if not portal_ids:
            return
        try:
            # Nothing heard of a portal for a while: the dashboard was down, and today's
            # figures may be missing the chats that ended meanwhile (read back by the
            # figures' own job).
            reconcile.note_lease_taken(portal_ids, now or timezone.now())
        except Exception:
            logger.exception("Noting a gap in the figures of portals %s failed", portal_ids)

    def _state(self, portal_id: Any) -> _PortalState:
        return self.states.setdefault(portal_id, _PortalState())

    def _load(self, portal: Portal, sync: PortalSync, now: datetime) -> planner.Load:
        usage = budget.usage(portal, now=now)
        return planner.Load(
            dialect=portal.dialect,
            calls_per_minute=portal.calls_per_minute,
            calls_per_day=portal.calls_per_day,
            reserved_per_minute=budget.reserved(portal.calls_per_minute),
            reserved_per_day=budget.reserved(portal.calls_per_day),
            open_chats=Chat.objects.filter(portal=portal, status__in=OPEN_CHAT_STATUSES).count(),
            operators=Operator.objects.filter(portal=portal).count(),
            departments=Department.objects.filter(portal=portal).count(),
            webhooks=planner.webhook_state(
                registered=bool(portal.webhook_id),
                last_delivery_at=portal.last_webhook_at,
                last_delivery_ok=portal.last_webhook_ok,
                now=now,
            ),
            used_today=usage.day_used,
            seconds_left_today=_seconds_left_today(now),
            full_operators_age=(
                (now - sync.operators_full_at).total_seconds() if sync.operators_full_at else None
            ),
        )

    def _plan(self, portal: Portal, sync: PortalSync, state: _PortalState, now: datetime):
        if state.plan is None or time.monotonic() - state.planned_at >= PLAN_EVERY:
            state.plan = planner.plan(self._load(portal, sync, now))
            state.planned_at = time.monotonic()
        return state.plan

    def due_jobs(self, portals: list[Portal], busy: set[Any], now: datetime) -> list[PollJob]:
        room = self.max_parallel - len(busy)
        if room <= 0 or not portals:
            return []
        syncs = {
            sync.portal_id: sync
            for sync in PortalSync.objects.filter(portal_id__in=[p.pk for p in portals])
        }
        jobs: list[tuple[float, PollJob]] = []
        for portal in portals:
            state = self._state(portal.pk)
            sync = syncs.get(portal.pk)
            if sync is None or (state.retry_at and now < state.retry_at):
                continue
            if state.stopped_for:
                if state.stopped_for == token_fingerprint(portal):
                    continue  # still the refused sign-in: wait for an admin to reconnect
                logger.info("Portal %s was reconnected; polling it again", portal)
                state.stopped_for = ""
                state.plan = None
            plan = self._plan(portal, sync, state, now)
            if state.unreachable:
                # Waited since the last probe (retry_at): ask again, and nothing else.
                job = PollJob(portal.pk, (PROBE,), False, plan, error_shown=True)
                jobs.append((float("inf"), job))
                continue
            wanted = {
                DEPARTMENTS: (sync.departments_polled_at, plan.departments_every),
                OPERATORS: (sync.operators_polled_at, plan.operators_every),
                CHATS: (_latest(sync.chats_polled_at, state.chats_listed_at), plan.chats_every),
            }
            kinds = tuple(
                kind
                for kind, (last, every) in wanted.items()
                if (state.reconcile_now and kind in (OPERATORS, CHATS))
                or (
                    _is_due(last, every, now)
                    and not (state.not_before.get(kind) and now < state.not_before[kind])
                )
            )
            if not kinds:
                continue
            # The plan may be a few seconds old: judge the full list's age afresh.
            full_age = (
                (now - sync.operators_full_at).total_seconds() if sync.operators_full_at else None
            )
            full = (
                not dialects.get(portal.dialect).lists_operator_changes
                or not sync.operators_sync_time
                or full_age is None
                or full_age >= plan.full_operators_every
            )
            # Whoever waited longest goes first when there are more portals than room.
            overdue = max(
                (now - last).total_seconds() - every
                if last and not state.reconcile_now
                else float("inf")
                for kind, (last, every) in wanted.items()
                if kind in kinds
            )
            job = PollJob(portal.pk, kinds, full, plan, error_shown=bool(sync.last_poll_error))
            jobs.append((overdue, job))
        jobs.sort(key=lambda pair: pair[0], reverse=True)
        chosen = [job for _, job in jobs[:room]]
        for job in chosen:
            self._state(job.portal_id).in_flight = True
            self._state(job.portal_id).reconcile_now = False
        return chosen

    def poll(self, job: PollJob) -> None:
        """Run the polls of one job; never raises (the loop must go on)."""
        state = self._state(job.portal_id)
        portal: Portal | None = None
        try:
            portal = Portal.objects.filter(pk=job.portal_id).first()
            if portal is None:
                return
            notices: list[str] = []
            for kind in job.kinds:
                if self.stopping.is_set():
                    return
                notices += self._poll_kind(kind, portal, job, state)
            state.failures = 0
            state.retry_at = None
            if notices:
                # A listing SalesIQ paged wrongly: what was read is applied, and said so.
                self._show_error(job.portal_id, state, " ".join(dict.fromkeys(notices)))
            elif state.error_shown or job.error_shown:
                PortalSync.objects.filter(portal_id=job.portal_id).update(last_poll_error="")
                state.error_shown = False
            if state.unreachable:
                # SalesIQ answers again: say so now (not at the next look), and catch up
                # with what happened meanwhile at once.
                state.unreachable = False
                state.reconcile_now = True
                logger.info("Portal %s: SalesIQ answers again", portal)
                self.on_health_change(portal)
        except _NOT_NOW as pause:
            state.retry_at = pause.retry_at or timezone.now() + timedelta(seconds=30)
            logger.info("Portal %s: %s", portal, pause.user_message)
        except _NEEDS_RECONNECT as refusal:
            # Polling again would only be refused again: wait until the tokens change.
            state.stopped_for = token_fingerprint(portal) if portal else "?"
            self._show_error(job.portal_id, state, refusal.user_message)
            logger.warning("Portal %s: stopped polling: %s", portal, refusal.technical())
        except exc.Unavailable as failure:
            # The client has recorded the portal's health already; say why state is stale,
            # and ask again soon (probes only) rather than ever later.
            was_down = state.unreachable
            state.unreachable = True
            state.retry_at = timezone.now() + timedelta(seconds=self._probe_every(state))
            self._show_error(job.portal_id, state, failure.user_message)
            if not was_down:
                logger.warning("Portal %s: SalesIQ unreachable: %s", portal, failure.technical())
                if portal is not None:
                    self.on_health_change(portal)
            else:
                logger.debug("Portal %s: still unreachable: %s", portal, failure.technical())
        except exc.SalesIQError as failure:
            # The client has recorded the portal's health already; say why state is stale.
            self._back_off(state)
            self._show_error(job.portal_id, state, failure.user_message)
            logger.warning("Portal %s: poll failed: %s", portal, failure.technical())
        except Exception:
            self._back_off(state)
            self._show_error(
                job.portal_id,
                state,
                "The dashboard could not apply what SalesIQ answered; it keeps trying.",
            )
            logger.exception("Portal %s: poll failed", portal)
        finally:
            state.in_flight = False

    def _probe_every(self, state: _PortalState) -> float:
        share = state.plan.background_per_minute if state.plan else 0
        return max(UNREACHABLE_PROBE_EVERY, 60.0 / share) if share > 0 else 60.0

    def _poll_kind(self, kind: str, portal: Portal, job: PollJob, state: _PortalState) -> list[str]:
        """One poll; returns what SalesIQ's listings did wrong that was worked around, in
        words (a page repeating what came before)."""
        if kind == PROBE:
            SalesIQClient(portal, attempts=1).probe("departments")
            return []
        plan = job.plan
        client = _PatientClient(portal, stopping=self.stopping)
        cost = {
            DEPARTMENTS: plan.departments_cost,
            OPERATORS: plan.full_operators_cost if job.full_operators else plan.operators_cost,
            CHATS: plan.chats_cost,
        }[kind]
        if cost <= plan.background_per_minute:
            # Starting a listing the minute cannot finish only to wait mid-way: start it
            # with the next minute instead.
            used = budget.usage(portal).minute_used
            if plan.background_per_minute - used < cost:
                state.not_before[kind] = _next_minute(timezone.now())
                return []
        state.not_before.pop(kind, None)
        # Facts are as old as the moment the question was asked, not when it was answered.
        taken_at = timezone.now()
        if kind == DEPARTMENTS:
            departments = client.list_departments()
            complete = not client.incomplete
            apply.apply_departments(portal, departments, taken_at=taken_at, complete=complete)
            logger.debug("Portal %s: %d departments", portal, len(departments))
        elif kind == OPERATORS:
            sync = PortalSync.objects.get(portal=portal)
            since = None if job.full_operators else (sync.operators_sync_time or None)
            result = client.list_operators(since=since)
            apply.apply_operators(portal, result, taken_at=taken_at)
            outcomes.settle_by_operators(portal, read_at=taken_at)
            # Which operator the grant acts as (v2 lets it set only its own status): found
            # among the operators now stored, once; no SalesIQ call.
            status_rules.learn_connected_user(portal)
            logger.debug(
                "Portal %s: %d operators (%s)",
                portal,
                len(result.operators),
                "full list" if result.complete else "changes",
            )
        else:
            conversations = client.list_open_conversations()
            # Only a listing read inside one minute is a snapshot worth closing ghosts by;
            # one that waited for budget may have missed chats that moved between pages.
            # Nor is one that stopped where SalesIQ repeated a page.
            snapshot = not client.waited and not client.incomplete
            apply.apply_chats(portal, conversations, taken_at=taken_at, complete=snapshot)
            # Actions a dead process left unanswered: what SalesIQ now shows settles them.
            outcomes.settle_by_chats(portal, read_at=taken_at)
            if not snapshot:
                state.chats_listed_at = taken_at
            logger.debug("Portal %s: %d open chats", portal, len(conversations))
        return client.notices

    def _back_off(self, state: _PortalState) -> None:
        state.failures += 1
        pause = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (state.failures - 1))
        state.retry_at = timezone.now() + timedelta(seconds=pause)

    def _show_error(self, portal_id: Any, state: _PortalState, words: str) -> None:
        PortalSync.objects.filter(portal_id=portal_id).update(last_poll_error=words[:500])
        state.error_shown = True
