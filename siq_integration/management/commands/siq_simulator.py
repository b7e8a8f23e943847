"""``python manage.py siq_simulator``: the SalesIQ simulator with the demo world.

Prints the base URL and the SIQ_EXTRA_DATA_CENTERS value, and stops cleanly on
SIGTERM or SIGINT. The simulator itself has no Django dependency (see
``siq_integration.simulator.cli``); this command only parses options.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from siq_integration.simulator.cli import add_arguments, build, serve


class Command(BaseCommand):
    help = "Run the SalesIQ + Zoho Accounts simulator (demo world: zylker and acme-ref)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            sim = build(
                host=options["host"],
                port=options["port"],
                seed=options["seed"],
                no_life=options["no_life"],
                token_ttl=options["token_ttl"],
                chats=options["chats"],
                operators=options["operators"],
                auto_approve=options["auto_approve"],
                rate_per_minute=options["rate_per_minute"],
                dc=options["dc"],
                tick=options["tick"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        try:
            serve(sim, self.stdout)
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']} ({exc.strerror})."
            ) from None
