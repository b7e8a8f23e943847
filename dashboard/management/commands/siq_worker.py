"""`python manage.py siq_worker`: poll every connected portal until SIGTERM or SIGINT.

Run as many as you like: a lease per portal makes exactly one of them poll it, the
portals are shared out evenly among the live workers, and
another takes over within about ten seconds when that one dies. A clean stop gives
the leases back at once.
"""

from __future__ import annotations

import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from dashboard.polling.runner import TICK_SECONDS, Worker

logger = logging.getLogger("dashboard.polling")


def in_memory_channel_layer() -> bool:
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    return backend.endswith("InMemoryChannelLayer")


class Command(BaseCommand):
    help = "Poll every connected SalesIQ portal (operators, open chats, departments)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--tick", type=float, default=TICK_SECONDS, help="seconds between rounds"
        )

    def handle(self, *args, **options):
        if in_memory_channel_layer():
            # What this process publishes can only reach browsers connected to it: none.
            self.stderr.write(
                "Warning: the channel layer is the in-memory one, so browsers connected to "
                "other processes will not see updates; set REDIS_URL or run `manage.py serve`."
            )
        worker = Worker()

        def stop(signum, frame) -> None:
            worker.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        logger.info("Worker %s started", worker.holder)
        worker.run(tick_seconds=options["tick"])
        logger.info("Worker %s stopped", worker.holder)
