"""Running daphne for the dashboard: no websocket cut-off, an access log without query strings,
and (``serve``) the worker in the same process.

The OAuth callback carries Zoho's authorization code in its query string; an access
log must not keep it. Supervisors keep the page open all day, so websockets never time
out (daphne's default closes them after 24 hours).

With the in-memory channel layer, whatever publishes must live in the process that
holds the websockets and send on daphne's event loop: ``serve`` runs the worker as a
task on that loop (see dashboard.polling.runner.Worker.run_on_loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

from daphne.access import AccessLogGenerator
from daphne.endpoints import build_endpoint_description_strings

logger = logging.getLogger(__name__)

# Something to run alongside the server: a coroutine function that returns once the
# event it is given is set (at shutdown).
Background = Callable[[asyncio.Event], Awaitable[None]]
# How long shutdown waits for background tasks to finish before cancelling them.
BACKGROUND_STOP_SECONDS = 10.0

WEBSOCKET_MAX_MESSAGE = 16 * 1024 * 1024


# Webhook deliveries are summed up this often (and once more at shutdown).
SUMMARY_EVERY = 300.0
WEBHOOK_PATHS = "/webhooks/"


class AccessLogWithoutQueries(AccessLogGenerator):
    """daphne's access log, without query strings; webhook deliveries only counted, unless
    ``each_webhook`` (a busy portal sends several a second: the log would be nothing else)."""

    def __init__(self, stream: TextIO, *, each_webhook: bool = False) -> None:
        super().__init__(stream)
        self.each_webhook = each_webhook
        self.webhooks = 0
        self.refused = 0

    def __call__(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        path = details.get("path")
        if isinstance(path, str) and "?" in path:
            details = {**details, "path": path.split("?", 1)[0] + "?…"}
            path = details["path"]
        if (
            not self.each_webhook
            and protocol == "http"
            and action == "complete"
            and isinstance(path, str)
            and path.startswith(WEBHOOK_PATHS)
        ):
            self.webhooks += 1
            status = details.get("status")
            if isinstance(status, int) and status >= 400:
                self.refused += 1  # dashboard.ingest says why, in a line of its own
            return
        super().__call__(protocol, action, details)

    def webhook_summary(self, seconds: float) -> str:
        """ "webhooks: 1,234 received, 2 refused in the last 5 min", and start counting
        again; "" when none came."""
        received, refused = self.webhooks, self.refused
        self.webhooks = self.refused = 0
        if not received:
            return ""
        span = f"{round(seconds)} s" if seconds < 90 else f"{round(seconds / 60)} min"
        return f"webhooks: {received:,} received, {refused:,} refused in the last {span}"


def _summaries(access: AccessLogWithoutQueries, reminder: str) -> Background:
    """Every SUMMARY_EVERY seconds, and at shutdown: the webhooks counted, then ``reminder``
    (the demo's address and login, which would otherwise have scrolled away)."""

    async def summarise(stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=SUMMARY_EVERY)
            now = loop.time()
            line = access.webhook_summary(now - began)
            began = now
            if line:
                logger.info("%s", line)
            if reminder and not stop.is_set():
                logger.info("%s", reminder)
            if stop.is_set():
                return

    return summarise


def _run_alongside(background: Sequence[Background]) -> None:
    """Start ``background`` on daphne's loop once the reactor runs; at shutdown, tell it
    to stop and keep the reactor going until it has (leases released, calls finished)."""
    from twisted.internet import defer, reactor  # daphne.server installed the asyncio reactor

    running: dict[str, Any] = {}

    def start() -> None:
        loop = asyncio.get_event_loop()
        stop = asyncio.Event()
        tasks = [loop.create_task(job(stop)) for job in background]
        for task in tasks:
            task.add_done_callback(_log_failure)
        running.update(stop=stop, tasks=tasks)

    def shutdown() -> defer.Deferred | None:
        if not running:
            return None
        running["stop"].set()

        async def finish() -> None:
            _, late = await asyncio.wait(running["tasks"], timeout=BACKGROUND_STOP_SECONDS)
            for task in late:
                logger.warning("A background task did not stop in time; cancelling it")
                task.cancel()

        return defer.Deferred.fromFuture(asyncio.ensure_future(finish()))

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", shutdown)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("A background task stopped with an error", exc_info=task.exception())


def run(
    *,
    host: str,
    port: int,
    stream: TextIO | None = sys.stdout,
    background: Sequence[Background] = (),
    reminder: str = "",
) -> None:
    """Serve dashboard.asgi:application on host:port until SIGINT/SIGTERM. ``reminder`` is
    repeated in the log every SUMMARY_EVERY seconds."""
    from django.conf import settings

    from dashboard import logs
    from dashboard.asgi import application
    from dashboard.server.bodycap import CappedServer

    access = None
    if stream:
        access = AccessLogWithoutQueries(stream, each_webhook=settings.ACCESS_LOG_WEBHOOKS)
        logs.access_log["on"] = True  # Django's own line for a refused request repeats it
        background = [*background, _summaries(access, reminder)]
    server = CappedServer(
        # Bodies over the cap are refused while Twisted reads them (dashboard/server/bodycap.py).
        max_request_body=settings.MAX_REQUEST_BODY_BYTES,
        application=application,
        endpoints=build_endpoint_description_strings(host=host, port=port),
        websocket_timeout=-1,
        # A snapshot of 2,000 chats and 500 operators is ~3 MB of HTML; daphne's default
        # cap (1 MiB) would close the socket on every (re)connect of a big portal.
        websocket_max_message_size=WEBSOCKET_MAX_MESSAGE,
        action_logger=access,
    )
    if background:
        _run_alongside(background)
    server.run()


def serve(
    *,
    host: str,
    port: int,
    worker: bool = True,
    stream: TextIO | None = sys.stdout,
    reminder: str = "",
) -> None:
    """The embedded default: daphne and (unless ``worker`` is False) the poller, one process."""
    background: list[Background] = []
    if worker:
        from dashboard import ingest
        from dashboard.polling.runner import Worker

        ingest.LANE_COUNTS = True  # the worker's queues job publishes what the lane counts
        poller = Worker()
        logger.info("Worker %s runs inside the server", poller.holder)
        background.append(poller.run_on_loop)
    run(host=host, port=port, stream=stream, background=background, reminder=reminder)
