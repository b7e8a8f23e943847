"""Run the simulator as a long-lived process: ``python -m salesiq_simulator --port 8765``.

Free of Django (and of the dashboard): ``make demo``, the tests and the bench start it as
a child process of their own.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TextIO

from .server import Simulator, demo_world


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to bind (0: any free port)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the world's randomness")
    parser.add_argument("--no-life", action="store_true", help="nothing happens unless stepped")
    parser.add_argument("--token-ttl", type=float, default=3600, help="access-token TTL, seconds")
    parser.add_argument("--chats", type=int, default=None, help="open chats at start (zylker)")
    parser.add_argument("--operators", type=int, default=None, help="operators of zylker")
    parser.add_argument(
        "--auto-approve", action="store_true", help="approve OAuth consent without a page"
    )
    parser.add_argument(
        "--rate-per-minute", type=int, default=None, help="API calls per minute per portal"
    )
    parser.add_argument(
        "--dc",
        action="append",
        default=[],
        metavar="CODE",
        help="an extra data centre besides sim and sim-eu (repeatable)",
    )
    parser.add_argument("--tick", type=float, default=1.0, help="seconds between life steps")


def build(
    *,
    host: str,
    port: int,
    seed: int,
    no_life: bool,
    token_ttl: float,
    chats: int | None,
    operators: int | None,
    auto_approve: bool,
    rate_per_minute: int | None,
    dc: Sequence[str],
    tick: float,
) -> Simulator:
    codes = ["sim", "sim-eu", *[c.strip().lower() for c in dc if c.strip()]]
    sim = Simulator(
        seed=seed,
        life=not no_life,
        host=host,
        port=port,
        data_centers=list(dict.fromkeys(codes)),
        token_ttl=token_ttl,
        tick_seconds=tick,
        auto_approve=auto_approve,
    )
    demo_world(sim, operators=operators, chats=chats, rate_limit_per_minute=rate_per_minute)
    return sim


def serve(sim: Simulator, out: TextIO, *, stop: threading.Event | None = None) -> None:
    """Start, print the addresses, run until SIGTERM/SIGINT (or ``stop``), stop cleanly."""
    stop = stop or threading.Event()
    previous: dict[int, Callable | int | None] = {}

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        sim.start()
        out.write(f"SalesIQ simulator on {sim.base_url}  (state: {sim.base_url}/_sim/state)\n")
        out.write(f"SIQ_EXTRA_DATA_CENTERS='{sim.extra_data_centers_json()}'\n")
        out.flush()
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        out.write("SalesIQ simulator stopped.\n")
        out.flush()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m salesiq_simulator",
        description="Run the SalesIQ + Zoho Accounts simulator (demo world: zylker and acme-ref).",
    )
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    try:
        sim = build(**options)
    except ValueError as exc:
        parser.exit(1, f"{exc}\n")
    try:
        serve(sim, sys.stdout)
    except OSError as exc:
        parser.exit(1, f"Cannot listen on {options['host']}:{options['port']} ({exc.strerror}).\n")
