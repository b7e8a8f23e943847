"""The cost of one live message to many pages under the real daphne: frame-once off and on.

``python -m bench.fanout [--pages 200] [--messages 400] [--rounds 3]``

The event-to-screen figure (bench.screen) is a latency: on a machine others load too, it
moves with them. This measures work instead: a daphne process (the dashboard's fan-out,
dashboard.realtime.fanout, with a page consumer that registers its send as the live page's
does) sends the same 3 kB of HTML ``--messages`` times to ``--pages`` open websockets that a
second process reads, and reports the server's own CPU time (user + system) per message and
per page. Rounds alternate frame-once off and on (SIQ_FRAME_ONCE), each a fresh server.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import time

GROUP = "bench.fanout"
HTML = '<tr id="chat-1" hx-swap-oob="true">' + "<td>Zoë Ångström</td>" * 140 + "</tr>"


# --- the server (a child process) ------------------------------------------------------------


def serve(port: int, pages: int, messages: int, rate: float) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 50)
    import django

    django.setup()
    import asyncio

    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import URLRouter
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server
    from django.conf import settings
    from django.urls import path

    from dashboard.realtime import fanout
    from dashboard.realtime.consumers import frame_once_writer
    from dashboard.server.frame_once import KeepSocket

    async def drive() -> None:
        await asyncio.sleep(0.5)
        started, cpu = time.monotonic(), time.process_time()
        for _ in range(messages):
            await fanout.group_send(GROUP, {"type": "live.html", "portal": "x", "html": HTML})
            await asyncio.sleep(1 / rate)
        await asyncio.sleep(1.0)  # what Twisted still buffers goes out
        spent = time.process_time() - cpu
        print(
            json.dumps(
                {
                    "frame_once": settings.SIQ_FRAME_ONCE,
                    "cpu_ms_per_message": round(spent * 1000 / messages, 3),
                    "cpu_us_per_page": round(spent * 1e6 / messages / pages, 2),
                    "seconds": round(time.monotonic() - started, 1),
                }
            ),
            flush=True,
        )
        from twisted.internet import reactor

        reactor.stop()

    driving: list = []

    class Page(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept()
            page = fanout.Page(send=self.send_html, fast=frame_once_writer(self.scope))
            fanout.join(page, [GROUP])
            await page.open()
            if len(fanout.pages_of(GROUP)) == pages:
                driving.append(asyncio.ensure_future(drive()))

        async def send_html(self, html: str) -> None:
            await self.send(text_data=html)

    app = URLRouter([path("ws/", Page.as_asgi())])
    if settings.SIQ_FRAME_ONCE:
        app = KeepSocket(app)
    Server(
        application=app,
        endpoints=build_endpoint_description_strings(host="127.0.0.1", port=port),
        websocket_timeout=-1,
        signal_handlers=False,
    ).run()


# --- the pages (this process) ----------------------------------------------------------------


def _open(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head[:100]
    sock.setblocking(False)
    return sock


def one_round(frame_once: bool, pages: int, messages: int, rate: float) -> dict:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SIQ_FRAME_ONCE": "1" if frame_once else "0", "LOG_LEVEL": "WARNING"}
    args = ["--serve", str(port), str(pages), str(messages), str(rate)]
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.fanout", *args],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or child.poll() is not None:
                child.kill()
                raise RuntimeError("the fan-out server did not start") from None
            time.sleep(0.1)
    socks = [_open(port) for _ in range(pages)]
    chooser = selectors.DefaultSelector()
    for sock in socks:
        chooser.register(sock, selectors.EVENT_READ)
    received = 0
    while child.poll() is None:
        for key, _ in chooser.select(timeout=0.2):
            with contextlib.suppress(BlockingIOError):
                received += len(key.fileobj.recv(1 << 16))
    for sock in socks:
        sock.close()
    result = json.loads(child.stdout.read().strip().splitlines()[-1])
    result["received_mb"] = round(received / 1e6, 1)
    result["expected_mb"] = round(len(HTML.encode()) * messages * pages / 1e6, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--serve":
        port, pages, messages, rate = argv[1:5]
        serve(int(port), int(pages), int(messages), float(rate))
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rate", type=float, default=50.0, help="messages a second")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    by_mode: dict[bool, list[float]] = {False: [], True: []}
    for n in range(args.rounds):
        for frame_once in (False, True) if n % 2 == 0 else (True, False):
            result = one_round(frame_once, args.pages, args.messages, args.rate)
            print(json.dumps(result), flush=True)
            by_mode[frame_once].append(result["cpu_us_per_page"])
    for frame_once, values in by_mode.items():
        print(
            f"frame-once {'on ' if frame_once else 'off'}: CPU per page and message "
            f"median {statistics.median(values):.1f} µs (rounds: {', '.join(map(str, values))})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
