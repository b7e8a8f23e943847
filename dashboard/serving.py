"""Running daphne for the dashboard: no websocket cut-off, an access log without query strings,
and (``serve``) the worker in the same process.

The OAuth callback carries Zoho's authorization code in its query string; an access
log must not keep it. Supervisors keep the page open all day, so websockets never time
out (daphne's default closes them after 24 hours).

With the in-memory channel layer, whatever publishes must live in the process that
holds the websockets and send on daphne's event loop: ``serve`` runs the worker as a
task on that loop (see dashboard.worker.Worker.run_on_loop).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

from daphne.access import AccessLogGenerator
from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server

logger = logging.getLogger(__name__)

# Something to run alongside the server: a coroutine function that returns once the
# event it is given is set (at shutdown).
Background = Callable[[asyncio.Event], Awaitable[None]]
# How long shutdown waits for background tasks to finish before cancelling them.
BACKGROUND_STOP_SECONDS = 10.0

WEBSOCKET_MAX_MESSAGE = 16 * 1024 * 1024


class AccessLogWithoutQueries(AccessLogGenerator):
    def __call__(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        path = details.get("path")
        if isinstance(path, str) and "?" in path:
            details = {**details, "path": path.split("?", 1)[0] + "?…"}
        super().__call__(protocol, action, details)


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
) -> None:
    """Serve dashboard.asgi:application on host:port until SIGINT/SIGTERM."""
    from dashboard.asgi import application

    server = Server(
        application=application,
        endpoints=build_endpoint_description_strings(host=host, port=port),
        websocket_timeout=-1,
        # A snapshot of 2,000 chats and 500 operators is ~3 MB of HTML; daphne's default
        # cap (1 MiB) would close the socket on every (re)connect of a big portal.
        websocket_max_message_size=WEBSOCKET_MAX_MESSAGE,
        action_logger=AccessLogWithoutQueries(stream) if stream else None,
    )
    if background:
        _run_alongside(background)
    server.run()


def serve(*, host: str, port: int, worker: bool = True, stream: TextIO | None = sys.stdout) -> None:
    """The embedded default: daphne and (unless ``worker`` is False) the poller, one process."""
    background: list[Background] = []
    if worker:
        from dashboard.worker import Worker

        poller = Worker()
        logger.info("Worker %s runs inside the server", poller.holder)
        background.append(poller.run_on_loop)
    run(host=host, port=port, stream=stream, background=background)
