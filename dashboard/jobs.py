"""The worker's periodic jobs besides polling, each on its own period.

A job runs on the runner's tick once its period has passed, with the portals the worker
holds (so each portal's alerts and health have exactly one evaluator however many
workers run). A job never raises: a failure is logged and the next period tries again.

- ``sweep``: webhook events a crash left pending, a few at a time.
- ``settle``: actions whose process died, or that SalesIQ never answered.
- ``prune``: the webhook inbox beyond ``SIQ_INBOX_KEEP_DAYS``.
- ``health``: tell the pages when a portal's health or webhook state changes.
- ``alerts``: the time-based alert rules.
- ``escalate``: escalations, which may wait on SMTP or a slow webhook: off the tick's thread.
- ``queues``: counts the chats applied since its last run into the service figures, then
  publishes the queue rows and operator figures that changed (chats, operators, a wait
  crossing its target, a new business day) once a second at most.
- ``reconcile``: note when webhooks fall silent and resume (a gap in today's figures), and
  read the ended chats of a gap back from SalesIQ: calls to SalesIQ, so off the tick's thread.
- ``hookevents``: once per list of events the dashboard needs, make sure each portal's
  registered webhook has them all, adding those it lacks (siq_integration/webhook_events.py):
  calls to SalesIQ, so off the tick's thread.
- ``crm``: look the visitors of open chats up in Zoho CRM (dashboard/crm.py) and mark the
  rows of those who matter: calls to CRM, so off the tick's thread, never while applying.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connections
from django.utils import timezone

from siq_integration import webhook_events
from siq_integration.health import WEBHOOKS_FLOWING_WITHIN
from siq_integration.models import Portal
from siq_integration.normalised import Conversation

from . import crm, ingest, selectors
from .actions import stuck
from .alerts import escalation, lifecycle
from .figures import clock, counting, queues, reconcile
from .models import OPEN_CHAT_STATUSES, Chat, Source
from .realtime import publish
from .state import apply
from .state.changes import Changes

logger = logging.getLogger(__name__)

SWEEP_EVERY = 5.0  # seconds between sweeps of webhook events a crash left pending
SWEEP_LIMIT = 50
SETTLE_EVERY = 5.0  # seconds between settlings of actions left pending
PRUNE_EVERY = 600.0  # seconds between prunings of the webhook inbox (SIQ_INBOX_KEEP_DAYS)
HEALTH_EVERY = 5.0  # seconds between checks whether a portal's health changed
ALERTS_EVERY = 3.0  # seconds between evaluations of the time-based alert rules
ESCALATE_EVERY = 3.0  # seconds between looks for alerts due to escalate
QUEUES_EVERY = 1.0  # seconds between publications of the queue rows that changed
# Seconds between looks at whether a portal's webhook needs events added. Each portal is
# checked at SalesIQ once per list of needed events; a look between reads the portals alone.
WEBHOOK_EVENTS_EVERY = 60.0

# A job taking longer than this (seconds) is logged: every job and poll of the tick waits.
SLOW_JOB = 0.5

Run = Callable[[Sequence[Portal], datetime], None]


@dataclass
class Job:
    name: str
    every: float  # seconds
    run: Run
    last: float = float("-inf")  # time.monotonic() of the last run: the first tick runs it

    def due(self, at: float) -> bool:
        return at - self.last >= self.every

    def run_if_due(self, portals: Sequence[Portal], now: datetime) -> None:
        if not self.due(time.monotonic()):
            return
        self.last = time.monotonic()
        try:
            self.run(portals, now)
        except Exception:
            logger.exception("The %s job failed; its next period tries again", self.name)
        took = time.monotonic() - self.last
        if took > SLOW_JOB:
            # The tick waits for it: polls and the other jobs are late by as much.
            logger.warning("The %s job took %.0f ms", self.name, took * 1000)


def sweep(portals: Sequence[Portal], now: datetime) -> None:
    # A few at a time: the next heartbeat waits for this.
    applied = ingest.sweep(limit=SWEEP_LIMIT)
    if applied:
        logger.info("Applied %d webhook event(s) left pending", applied)


def settle(portals: Sequence[Portal], now: datetime) -> None:
    # Actions whose process died, or that SalesIQ never answered: "No clear answer".
    stuck.sweep_stuck()


def prune(portals: Sequence[Portal], now: datetime) -> None:
    removed = ingest.prune()
    if removed:
        logger.info("Pruned %d webhook deliveries older than the inbox keeps", removed)


def evaluate_alerts(portals: Sequence[Portal], now: datetime) -> None:
    for portal in portals:
        try:
            lifecycle.evaluate(portal, now)
        except Exception:
            logger.exception("Evaluating the alerts of portal %s failed", portal)


class Health:
    """Tells the pages when a portal's health or webhook state changes: a failing poll
    applies nothing, so nothing else would carry "SalesIQ unreachable" to them."""

    def __init__(self) -> None:
        # The health last told to the pages (state, webhooks, stale, banner), per portal.
        self.announced: dict[Any, tuple] = {}

    def __call__(self, portals: Sequence[Portal], now: datetime, *, changed: bool = False) -> None:
        """``changed``: a poll just saw it change, so tell them even before a first look."""
        for portal in portals:
            try:
                fresh = selectors.freshness(portal, now)
                signature = (fresh.health.state, fresh.webhooks, fresh.stale, fresh.banner)
                if signature != self.announced.get(portal.pk):
                    if portal.pk in self.announced or changed:
                        publish.meta(portal.pk)
                    self.announced[portal.pk] = signature
            except Exception:
                logger.exception("Announcing the health of portal %s failed", portal)


class OffTheTick:
    """A job whose rounds may wait on the network (SMTP, a slow webhook, SalesIQ): each round
    runs in a thread of its own, one at a time, so the tick and its polls never wait for it.
    A subclass says what a round does for one portal (``for_portal``)."""

    name = "job"

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        self.running: Future | None = None

    def __call__(self, portals: Sequence[Portal], now: datetime) -> None:
        if portals and (self.running is None or self.running.done()):
            self.running = self._executor.submit(self.round, [p.pk for p in portals])

    def round(self, portal_ids: list[Any]) -> None:
        try:
            for portal in Portal.objects.filter(pk__in=portal_ids):
                self.for_portal(portal)
        except Exception:
            logger.exception("A round of the %s job failed", self.name)
        finally:
            connections.close_all()

    def for_portal(self, portal: Portal) -> None:
        raise NotImplementedError


class Escalation(OffTheTick):
    """Escalates due alerts."""

    name = "escalate"

    def for_portal(self, portal: Portal) -> None:
        escalation.escalate_due(portal)


class Queues:
    """Counts the chats applied since the last count, then publishes the departments whose
    figures that counting, the chats and operators applied, or time alone changed
    (figures/clock.py), and the operators whose figures the counting moved."""

    def __init__(self) -> None:
        self.crossings = clock.Crossings()

    def __call__(self, portals: Sequence[Portal], now: datetime) -> None:
        counted: dict[Any, tuple[set[str], set[int]]] = {}
        for portal in portals:
            try:
                counted[portal.pk] = apply.count_pending(portal.pk)
            except Exception:
                # Its chats stay marked: the next run counts them. Other portals go on.
                logger.exception("Counting the service figures of portal %s failed", portal.pk)
                counted[portal.pk] = (set(), set())
        due = self.crossings.due(portals, now)
        for portal in portals:
            departments = set(due.get(portal.pk, ()))
            touched, operators = counted[portal.pk]
            lane_touched, lane_moved = counting.handed.take(portal.pk)
            touched, operators = touched | lane_touched, operators | lane_moved
            if "*" in departments:
                departments = {q.department_id for q in queues.queue_rows([portal], now)}
            else:
                departments |= touched
            if departments or operators:
                publish.changed(Changes(portal.pk, queues=departments, figures=operators))


def silent_since(portal: Portal, now: datetime) -> datetime | None:
    """When SalesIQ's webhooks fell silent while chats are open (the page's definition), or
    None while they are not silent."""
    has_open = Chat.objects.filter(portal=portal, status__in=OPEN_CHAT_STATUSES).exists()
    silence = selectors.webhook_silence(portal, now, has_open=has_open)
    if silence is None or silence <= WEBHOOKS_FLOWING_WITHIN:
        return None
    return now - silence


def apply_ended(portal: Portal, conversations: list[Conversation], taken_at: datetime) -> None:
    """Apply a page of ended chats as a poll would. A chat whose end the dashboard only
    inferred (a complete poll no longer listed it) takes SalesIQ's own account of the end,
    dated as read: the guess was dated later than the end itself, and an older fact would
    otherwise leave the guessed end time and outcome in place."""
    if not conversations:
        return
    guessed = set(
        Chat.objects.filter(
            portal=portal,
            remote_id__in=[c.id for c in conversations],
            inferred_end=True,
        ).values_list("remote_id", flat=True)
    )
    for conversation in conversations:
        if conversation.id in guessed:
            apply.apply_conversation(portal, conversation, fact_at=taken_at, source=Source.POLL)
    rest = [c for c in conversations if c.id not in guessed]
    if rest:
        apply.apply_chats(portal, rest, taken_at=taken_at, complete=False)


class ReconcileFigures(OffTheTick):
    """Gaps in today's figures: noted as webhooks fall silent and resume, and read back from
    SalesIQ (dashboard/figures/reconcile.py). The pages are told when what they should say
    about the figures changes."""

    name = "reconcile"

    def __init__(self) -> None:
        super().__init__()
        self.reconciler = reconcile.Reconciler(apply_ended)

    def for_portal(self, portal: Portal) -> None:
        self.reconcile(portal)

    def reconcile(self, portal: Portal) -> None:
        try:
            now = timezone.now()
            said = reconcile.incomplete(portal, now)
            reconcile.note_webhooks(portal, now, silent_since=silent_since(portal, now))
            self.reconciler.reconcile(portal, now)
            if reconcile.incomplete(portal, timezone.now()) != said:
                publish.meta(portal.pk, figures_note=True)
        except Exception:
            logger.exception("Reconciling the figures of portal %s failed", portal)


class WebhookEvents(OffTheTick):
    """Adds the events the dashboard needs to webhooks registered before it needed them."""

    name = "hookevents"

    def for_portal(self, portal: Portal) -> None:
        try:
            outcome = webhook_events.ensure(portal)
        except Exception:
            logger.exception("Checking the webhook events of portal %s failed", portal)
            return
        if outcome in (
            webhook_events.Outcome.UPDATED,
            webhook_events.Outcome.REGISTERED_AGAIN,
            webhook_events.Outcome.REFUSED,
        ):
            # The portal page and the live page's banner say what the webhook does.
            publish.meta(portal.pk)


class CrmLookups(OffTheTick):
    """Zoho CRM lookups of the visitors of open chats, and the rows' marker."""

    name = "crm"

    def for_portal(self, portal: Portal) -> None:
        try:
            crm.lookups_round(portal)
        except Exception:
            logger.exception("The CRM lookups of portal %s failed", portal)


def default_jobs(health: Health) -> list[Job]:
    """Every job a worker runs, in the order a tick runs those due."""
    return [
        Job("sweep", SWEEP_EVERY, sweep),
        Job("settle", SETTLE_EVERY, settle),
        Job("prune", PRUNE_EVERY, prune),
        Job("health", HEALTH_EVERY, health),
        Job("alerts", ALERTS_EVERY, evaluate_alerts),
        Job("escalate", ESCALATE_EVERY, Escalation()),
        Job("queues", QUEUES_EVERY, Queues()),
        Job("reconcile", reconcile.RECONCILE_EVERY, ReconcileFigures()),
        Job("crm", crm.CRM_EVERY, CrmLookups()),
        Job("hookevents", WEBHOOK_EVENTS_EVERY, WebhookEvents()),
    ]
