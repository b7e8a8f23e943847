"""`python manage.py serve`: the dashboard (daphne) and the worker in one process.

The embedded default: with the in-memory channel layer, the webhook view, the worker
and every websocket consumer must share one process, so this is how to run it
without Redis. With Redis, `serve --no-worker` plus `siq_worker` processes works too.
"""

from __future__ import annotations

import socket

from django.core.management.base import BaseCommand, CommandError

from dashboard.server import run


class Command(BaseCommand):
    help = "Serve the dashboard with daphne and poll SalesIQ in the same process."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="serve pages only; run `manage.py siq_worker` (with REDIS_URL) to poll",
        )

    def handle(self, *args, **options):
        host, port = options["host"], options["port"]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                raise CommandError(f"Port {port} on {host} is taken.") from None
        worker = not options["no_worker"]
        self.stdout.write(
            f"Serving on http://{host}:{port}/ "
            f"({'with' if worker else 'without'} the worker); stop with Ctrl-C."
        )
        self.stdout.flush()
        run.serve(host=host, port=port, worker=worker)
