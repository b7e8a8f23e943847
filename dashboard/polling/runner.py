"""The worker's one runtime: each tick holds the leases, runs the jobs that are due and
starts the polls that are due, off the ticking thread (a 21-page listing never delays a
heartbeat).

Two ways to run it: ``run()`` (``manage.py siq_worker``: polls in daemon threads) and
``run_on_loop()`` (``manage.py serve``: on daphne's event loop, ticks and polls
offloaded with ``sync_to_async(thread_sensitive=False)``, so what they publish with
``async_to_sync`` reaches this process's in-memory channel layer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.db import connections
from django.utils import timezone

from .. import jobs as periodic
from .leases import LEASE_TTL, Leases, connected_portals
from .poller import MAX_PARALLEL_POLLS, Poller, PollJob

logger = logging.getLogger(__name__)

TICK_SECONDS = 1.0
STOP_GRACE = 5.0  # seconds a stopping worker waits for polls under way
# A starting worker says it is alive and looks around this long before taking leases, so
# workers started together each take their share at once instead of the first taking
# every portal and handing most of them back a tick later.
WARM_UP = 2.0


class Worker:
    def __init__(
        self,
        *,
        holder: str | None = None,
        lease_ttl: timedelta = LEASE_TTL,
        max_parallel: int = MAX_PARALLEL_POLLS,
    ) -> None:
        self.leases = Leases(holder=holder, ttl=lease_ttl)
        self.holder = self.leases.holder
        # Set to stop: the loops end, waits for budget give up, leases are released.
        self.stopping = threading.Event()
        self.health = periodic.Health()
        self.poller = Poller(
            stopping=self.stopping,
            max_parallel=max_parallel,
            on_health_change=lambda portal: self.health([portal], timezone.now(), changed=True),
        )
        self.jobs = {job.name: job for job in periodic.default_jobs(self.health)}

    # --- one round ----------------------------------------------------------------------

    def tick(self) -> list[PollJob]:
        """Take or renew leases, run the jobs that are due, and say which polls are due.

        Returns the polls to run (each marked in flight until ``poll`` finishes it); the
        caller runs them off this thread. ``run_once`` runs them here instead.
        """
        if self.stopping.is_set():
            return []
        # Which portals have a poll under way, before their sync rows are read: a poll
        # finishing after this point is still skipped, so no stale row makes it look due.
        busy = self.poller.busy()
        now = timezone.now()
        portals = {portal.pk: portal for portal in connected_portals()}
        held, taken = self.leases.hold(portals, now, busy)
        self.poller.taken(taken)
        mine = [portals[pk] for pk in held]
        for job in self.jobs.values():
            job.run_if_due(mine, now)
        return self.poller.due_jobs([p for p in mine if p.pk not in busy], busy, now)

    def poll(self, job: PollJob) -> None:
        """Run the polls of one job; never raises (the loop must go on)."""
        self.poller.poll(job)

    def run_once(self) -> list[PollJob]:
        """One round with its polls run here, one after the other (tests, scripts)."""
        jobs = self.tick()
        for job in jobs:
            self.poll(job)
        return jobs

    def release_leases(self) -> None:
        """Give every lease back at once, so another worker takes over on its next tick."""
        self.leases.release()

    # --- running ----------------------------------------------------------------------------

    def _tick_in_thread(self) -> list[PollJob]:
        try:
            return self.tick()
        finally:
            connections.close_all()  # this thread's connections only

    def _poll_in_thread(self, job: PollJob) -> None:
        try:
            self.poll(job)
        finally:
            connections.close_all()

    def _announce_in_thread(self) -> None:
        try:
            self.leases.live_workers(timezone.now())
        except Exception:
            logger.exception("Worker %s could not announce itself", self.holder)
        finally:
            connections.close_all()

    def run(
        self,
        *,
        tick_seconds: float = TICK_SECONDS,
        grace: float = STOP_GRACE,
        warm_up: float = WARM_UP,
    ) -> None:
        """Tick until ``stopping`` is set; then release every lease.

        Polls run in daemon threads: heartbeats never wait for them, and a stop can
        abandon a call under way (whatever it would have applied, the next holder
        reads again)."""
        threads: set[threading.Thread] = set()
        try:
            self._announce_in_thread()
            self.stopping.wait(warm_up)
            while not self.stopping.is_set():
                started = time.monotonic()
                try:
                    jobs = self.tick()
                except Exception:
                    logger.exception("Worker tick failed")
                    connections.close_all()  # a broken connection is reopened next tick
                    jobs = []
                for job in jobs:
                    thread = threading.Thread(
                        target=self._poll_in_thread,
                        args=(job,),
                        name=f"poll-{job.portal_id}",
                        daemon=True,
                    )
                    thread.start()
                    threads.add(thread)
                threads = {thread for thread in threads if thread.is_alive()}
                self.stopping.wait(max(0.0, tick_seconds - (time.monotonic() - started)))
        finally:
            self.stopping.set()
            deadline = time.monotonic() + grace
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            self.release_leases()
            connections.close_all()

    async def run_on_loop(
        self,
        stop: asyncio.Event,
        *,
        tick_seconds: float = TICK_SECONDS,
        grace: float = STOP_GRACE,
        warm_up: float = WARM_UP,
    ) -> None:
        """Tick on a running event loop (daphne's) until ``stop`` is set.

        Ticks and polls go to the loop's thread pool, never to the thread of
        thread-sensitive calls (it serves Django's sync views: a poll there would keep
        SalesIQ's webhook deliveries waiting). In those threads ``async_to_sync`` runs
        coroutines on this loop, which is what lets a poll publish to the in-memory
        channel layer.
        """
        tick = sync_to_async(self._tick_in_thread, thread_sensitive=False)
        poll = sync_to_async(self._poll_in_thread, thread_sensitive=False)
        polls: set[asyncio.Task] = set()
        try:
            await sync_to_async(self._announce_in_thread, thread_sensitive=False)()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=warm_up)
            while not stop.is_set() and not self.stopping.is_set():
                try:
                    jobs = await tick()
                except Exception:
                    logger.exception("Worker tick failed")
                    jobs = []
                for job in jobs:
                    task = asyncio.ensure_future(poll(job))
                    polls.add(task)
                    task.add_done_callback(polls.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=tick_seconds)
        finally:
            self.stopping.set()
            if polls:
                await asyncio.wait(set(polls), timeout=grace)
            await sync_to_async(self._release_in_thread, thread_sensitive=False)()

    def _release_in_thread(self) -> None:
        try:
            self.release_leases()
        finally:
            connections.close_all()
